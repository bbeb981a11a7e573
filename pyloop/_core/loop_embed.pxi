# Part of loop.pyx (included there, at module level): driving the loop from a
# host's event loop -- a C server's own epoll loop, Qt, GLib, Tk -- with no
# second thread.  What libuv offers Node and Electron with uv_backend_fd,
# uv_backend_timeout and uv_run(UV_RUN_NOWAIT), and the same contract:
#
# * ``backend_fd()``: the reactor's epoll (kqueue) fd.  Every fd the loop
#   watches -- sockets, pipes, the signal socket, the wakeup eventfd that
#   call_soon_threadsafe writes -- is registered in it, so it polls readable
#   (poll/select/epoll of the host) whenever one of them is ready.
# * ``backend_timeout()``: how long the host may wait on that fd: 0 when
#   callbacks are ready, a stop() is pending or a timer is due (none of these
#   is an fd event), else the time to the nearest timer, else None (wait for
#   the fd alone).
# * ``run_nowait()``: one iteration that never blocks: poll with timeout 0,
#   expire due timers, run the callbacks that were ready when it began.
#
# The step is the iteration of loop_iteration.pxi minus the waiting: the busy
# poll throttle does not apply (the host calls us because something happened,
# so the kernel is always asked), and with the virtual clock paused and
# auto-advance on, the step that finds nothing to do jumps the clock to the
# next deadline, as an idle run_forever would (_paused_timeout).
#
# During a step the loop is running as under run_forever: it is claimed
# (_thread_id: close(), run_forever() and a nested run_nowait() refuse),
# asyncio.get_running_loop() returns it, the async generator hooks and debug
# mode's coroutine origin tracking are installed; all of it is undone when the
# step returns.  stop() asks the current step to end, and a step ends after
# one iteration anyway: like libuv's uv_stop with UV_RUN_NOWAIT it is consumed
# at the end of the step (a stop() made between steps by the next step).
#
# Between steps a host may be blocked on the backend fd, where the loop's own
# wait is otherwise: so a step, and backend_timeout() (which a host calls
# before every wait, the first one included), leave ``waiting`` set, and
# call_soon_threadsafe then writes the wakeup eventfd, which makes the backend
# fd readable.  (Plain call_soon from the host's own code does not: the host
# asks backend_timeout() again before it waits, which sees the callback.)


cdef int64_t _embed_timeout_ns(BaseLoop loop) except? -2:
    """The host's wait before the next step, in ns: -1 for no timer."""
    cdef const pl_timer_t *first
    cdef int64_t now
    if not loop.resources_ready:
        raise RuntimeError("Event loop is closed")
    if loop._thread_id is None:
        # A host asks before it waits on the backend fd: from now on a
        # thread's call_soon_threadsafe must write the wakeup fd.  Set before
        # ready.len is read, so a callback queued just before is seen below.
        loop.waiting = True
    if loop._stopping or loop.ready.len:
        return 0
    if loop.timers.len == 0:
        return -1
    first = _first_live_timer(loop)
    if first == NULL:
        return -1
    if loop.clock_paused:
        if first.deadline_ns <= loop.clock_virtual_ns:
            return 0
        if loop.clock_auto_advance and not loop.clock_holds:
            # The next step jumps the clock if it finds nothing else to do.
            return 0
        return -1
    now = _loop_now(loop)
    return 0 if first.deadline_ns <= now else first.deadline_ns - now


cdef int _embed_step(BaseLoop loop) except -1:
    cdef int64_t timeout, now
    if loop._forked:
        loop._check_not_forked()
    # From here until the step returns the loop is not waiting: a thread's
    # call_soon_threadsafe only queues (this step or the host's next
    # backend_timeout() sees it).  A wakeup already sent is drained by the poll.
    loop.waiting = False
    loop.wakeup_pending = False
    timeout = 0
    if loop.clock_paused and not loop._stopping and loop.ready.len == 0:
        timeout = _paused_timeout(loop)      # may poll and move the clock itself: -2
    if timeout != -2:
        _poll(loop, 0)
    now = pl_clock_now_ns()
    loop.last_poll_ns = now
    _expire_timers(loop, now)
    # The iteration's counters (loop_metrics.pxi); a step never sleeps.
    pl_metrics_batch(loop.metrics, now, now, loop.ready.len)
    if loop._debug:
        _run_ready_debug(loop)
    else:
        _run_ready(loop)
    return 0


cdef object _embed_run_nowait(BaseLoop loop):
    loop._check_closed()
    loop._check_running()
    loop._check_not_forked()
    # Claimed as run_forever claims it (see there): no Python code between
    # the re-check and the claim.
    if loop._thread_id is not None:
        raise RuntimeError("This event loop is already running")
    if loop._closed:
        raise RuntimeError("Event loop is closed")
    loop._thread_id = _get_ident()
    old_hooks = None
    try:
        loop._set_coroutine_origin_tracking(loop._debug)
        old_hooks = sys.get_asyncgen_hooks()
        sys.set_asyncgen_hooks(firstiter=loop._asyncgen_firstiter_hook,
                               finalizer=loop._asyncgen_finalizer_hook)
        _set_running_loop(loop)
        # A step is a short run, for the counters and a stall report's stack.
        loop._run_frame = sys._getframe(0)
        pl_metrics_run_begin(loop.metrics, pl_clock_now_ns())
        _embed_step(loop)
    finally:
        if loop.metrics.running:
            pl_metrics_run_end(loop.metrics, pl_clock_now_ns())
        loop._run_frame = None
        loop._stopping = False
        loop._thread_id = None
        _set_running_loop(None)
        loop._set_coroutine_origin_tracking(False)
        if old_hooks is not None:
            sys.set_asyncgen_hooks(*old_hooks)
        # The host may block on the backend fd from now on (see above).
        loop.wakeup_pending = False
        loop.waiting = True
    return loop.resources_ready and _embed_timeout_ns(loop) == 0
