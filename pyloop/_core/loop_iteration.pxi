# Part of loop.pyx (included there, at module level): one iteration of the loop.
#
# One iteration (``_run_once``) is a list of named steps, as in libuv:
#
# 1. compute the poll timeout: 0 if callbacks are ready or ``stop()`` was
#    called, else the time to the nearest live timer, else forever (with the
#    virtual clock paused, ``_paused_timeout`` in loop_clock.pxi decides);
# 2. ``_poll``: one ``pl_reactor_wait`` (the GIL is released only when the wait
#    can block) and dispatch of every ready fd to its reader/writer handle;
# 3. ``_expire_timers`` (loop_timers.pxi): move timers whose deadline has
#    passed to the ready queue;
# 4. ``_run_ready``: run the handles that were ready when this step began --
#    callbacks scheduled while it runs wait for the next iteration, as asyncio
#    guarantees.
#
# These are module-level cdef functions taking the loop, called directly (no
# vtable, no Python call): ``run_forever`` calls ``_run_once(self)``.
#
# The steps keep the counters of ``loop.metrics`` (loop_metrics.pxi says what
# they mean): plain C stores, timed with the clock reads the steps make
# anyway, plus one read before a poll that may block.
#
# Clock reads (clock_gettime, ~30 ns here: an eighth of a call_soon chain's
# iteration): one per iteration, ``now``, taken after the poll or, when a busy
# loop skips the poll, to decide so.  Timer expiry, the busy-poll throttle and
# the lag metric all use it; only a poll that may block adds one before it.

# How many kernel events one wait returns at most.  More ready fds than this
# are simply reported by the next (zero-timeout) wait: the reactor is
# level-triggered.
cdef enum:
    MAX_EVENTS = 1024

# While callbacks are ready the loop would poll the kernel with a zero
# timeout on every iteration -- one syscall per iteration, which doubled the
# cost of a call_soon chain.  Instead a busy loop polls when at least this
# long has passed since the last poll: I/O latency stays bounded by 50 us plus
# one callback, and a chain of cheap callbacks pays for ~1 poll per 200
# iterations.  The first iteration of every run, an iteration after stop(),
# and any iteration that could block always poll.
cdef int64_t BUSY_POLL_INTERVAL_NS = 50000


cdef int _run_once(BaseLoop loop) except -1:
    cdef int64_t timeout = -1
    cdef int64_t now, busy_end, poll_start = 0
    cdef const pl_timer_t *first
    if loop._forked:
        # fork() was called from a callback of this very loop: the child
        # must not go on polling the epoll object it shares with the parent.
        loop._check_not_forked()
    if loop._stopping:
        timeout = 0
    elif loop.ready.len:
        timeout = 0
        now = pl_clock_now_ns()
        if now - loop.last_poll_ns < BUSY_POLL_INTERVAL_NS:
            timeout = -2      # skip this poll
    elif loop.clock_paused:
        timeout = _paused_timeout(loop)
        if timeout == -2:
            now = loop.last_poll_ns     # it polled: read just after that poll
    elif loop.timers.len:
        first = _first_live_timer(loop)
        if first != NULL:
            # The read doubles as the poll's start.
            poll_start = pl_clock_now_ns()
            now = _loop_time_at(loop, poll_start)
            # Compare first: a deadline clamped near INT64_MIN would
            # overflow the subtraction into a very long wait.
            timeout = 0 if first.deadline_ns <= now else first.deadline_ns - now
    if timeout != -2:
        if timeout != 0:
            if timeout < 0:
                # The one clock read the metrics add: only a wait that may
                # block can be idle time, and it costs a syscall anyway.
                poll_start = pl_clock_now_ns()
            loop.metrics.poll_start_ns = poll_start    # for a snapshot meanwhile
        _poll(loop, timeout)
        now = pl_clock_now_ns()
        loop.last_poll_ns = now
        if timeout != 0:
            busy_end = poll_start
            loop.metrics.idle_ns += now - poll_start
        else:
            busy_end = now
    else:
        busy_end = now
    _expire_timers(loop, now)
    # `now` is when this batch starts: the loop lag (csrc/pl_metrics.h).
    pl_metrics_batch(loop.metrics, now, busy_end, loop.ready.len)
    if loop._debug:
        _run_ready_debug(loop)
    else:
        _run_ready(loop)
    if loop._sock_parked or loop._sock_parked_prev:
        _sock_flush_parked(loop, loop._stopping)     # loop_sock.pxi
    return 0


cdef int _poll(BaseLoop loop, int64_t timeout_ns) except -1:
    cdef int n, i
    cdef pl_event_t *ev
    cdef FdWatch *w
    cdef uint32_t bits
    cdef uint64_t queued = 0
    if timeout_ns == 0:
        n = pl_reactor_wait(loop.reactor, loop.events, loop.max_events, 0)
    else:
        loop.waiting = True
        if loop.ready.len:
            # A callback arrived after the timeout was computed but before
            # `waiting` was set (code run while computing it may release
            # the GIL): its sender saw no waiter and sent no wakeup.
            timeout_ns = 0
        with nogil:
            n = pl_reactor_wait(loop.reactor, loop.events, loop.max_events,
                                timeout_ns)
        loop.waiting = False
        loop.wakeup_pending = False
    if n < 0:
        if n == -EINTR:
            # Let Python run its signal handlers now (KeyboardInterrupt
            # propagates from here, as from asyncio's select()).
            PyErr_CheckSignals()
            return 0
        raise _oserror(-n)
    for i in range(n):
        ev = &loop.events[i]
        if ev.fd < 0 or ev.fd >= loop.watches_len:
            continue
        w = &loop.watches[ev.fd]
        # A different token means the fd was unregistered and registered
        # again since the kernel queued this event: it is stale.
        if w.events == 0 or w.token != ev.token:
            continue
        if w.internal:
            pl_wakeup_drain(&loop.wakeup)
            continue
        bits = ev.events
        if bits & (PL_EV_ERROR | PL_EV_HUP):
            # An error or hang-up is news for both directions; callbacks
            # find out what it is when they read or write.
            bits |= w.events
        if bits & PL_EV_READ and w.reader != NULL:
            if not (<Handle>w.reader)._cancelled:
                loop._push_ready(<Handle>w.reader)
                queued += 1
        if bits & PL_EV_WRITE and w.writer != NULL:
            if not (<Handle>w.writer)._cancelled:
                loop._push_ready(<Handle>w.writer)
                queued += 1
    loop.metrics.fd_events += queued
    return 0


cdef int _run_ready(BaseLoop loop) except -1:
    cdef size_t ntodo = loop.ready.len
    cdef void *p
    cdef Handle handle
    while ntodo:
        ntodo -= 1
        p = pl_ready_queue_pop(&loop.ready)
        if p == NULL:
            break
        handle = <Handle>p
        Py_DECREF(handle)
        if handle._cancelled:
            continue
        pl_metrics_callback(loop.metrics)
        handle.run_callback()
        if not handle._persistent:
            handle._forget()
    return 0


cdef int _run_ready_debug(BaseLoop loop) except -1:
    cdef size_t ntodo = loop.ready.len
    cdef void *p
    cdef Handle handle
    cdef int64_t t0, dt
    while ntodo:
        ntodo -= 1
        p = pl_ready_queue_pop(&loop.ready)
        if p == NULL:
            break
        handle = <Handle>p
        Py_DECREF(handle)
        if handle._cancelled:
            continue
        loop._current_handle = handle
        pl_metrics_callback(loop.metrics)
        try:
            t0 = pl_clock_now_ns()
            handle.run_callback()
            dt = pl_clock_now_ns() - t0
            if dt / 1e9 >= loop.slow_callback_duration:
                logger.warning("Executing %s took %.3f seconds",
                               _format_handle_for_log(handle), dt / 1e9)
        finally:
            loop._current_handle = None
        if not handle._persistent:
            handle._forget()
    return 0


cdef object _format_handle_for_log(Handle handle):
    # A task's step is best described by the task itself.
    owner = getattr(handle._callback, "__self__", None)
    if isinstance(owner, _Task):
        return repr(owner)
    return str(handle)
