# Part of loop.pyx (included there, at module level): the timer heap's side of
# the loop -- deadlines in nanoseconds, the heap's callbacks and the graveyard
# they fill (see "Ownership" in loop.pyx's docstring), and step 3 of an
# iteration, moving due timers to the ready queue.

cdef inline int64_t _when_to_ns(double when):
    # Rounded up so that "deadline_ns <= now_ns" implies "when <= loop.time()":
    # a timer never runs before loop.time() reaches its when().
    cdef double ns
    if isnan(when):
        return INT64_MAX
    ns = ceil(when * 1e9)
    if ns >= <double>INT64_MAX:
        return INT64_MAX
    if ns <= -<double>INT64_MAX:
        return -INT64_MAX
    return <int64_t>ns


# ---- timer heap callbacks (run with the GIL held, inside heap calls) ------

cdef int _timer_is_cancelled(void *token, void *ctx) noexcept:
    return (<Handle>token)._cancelled


cdef void _timer_release(void *token, void *ctx) noexcept:
    # ctx is the loop's graveyard queue, not the loop: this also runs from
    # the loop's __dealloc__, where taking a reference to the loop would
    # resurrect and free it a second time.
    (<TimerHandle>token)._scheduled = False
    # Parked, not decref'd: see "Ownership" in loop.pyx's docstring.
    if pl_ready_queue_push(<pl_ready_queue_t *>ctx, token) < 0:
        # Out of memory: leaking one handle beats re-entering the heap.
        pass


cdef void _bury(BaseLoop loop) noexcept:
    cdef void *p
    while loop.graveyard.len:
        p = pl_ready_queue_pop(&loop.graveyard)
        (<Handle>p)._forget()
        Py_DECREF(<object>p)


cdef inline const pl_timer_t *_first_live_timer(BaseLoop loop) noexcept:
    # The earliest timer not cancelled, or NULL.  Peeking drops cancelled
    # timers into the graveyard, and burying them can run Python code (a
    # __del__) that schedules timers: settle that before trusting the answer.
    cdef const pl_timer_t *first = pl_timer_heap_peek(&loop.timers)
    while loop.graveyard.len:
        _bury(loop)
        first = pl_timer_heap_peek(&loop.timers)
    return first


cdef int _expire_timers(BaseLoop loop, int64_t clock_ns) except -1:
    # clock_ns: pl_clock_now_ns() as the iteration read it just now (after
    # its poll, or to decide to skip one), turned into the loop's time by
    # _loop_time_at: one clock read fewer per iteration with timers pending
    # (~30 ns here; a call_soon chain with a timer pending went from ~240 to
    # ~225 ns per iteration).
    cdef const pl_timer_t *first
    cdef pl_timer_t timer
    cdef int64_t now
    if loop.timers.len == 0:
        return 0
    now = _loop_time_at(loop, clock_ns)
    try:
        while True:
            first = pl_timer_heap_peek(&loop.timers)
            if first == NULL or first.deadline_ns > now:
                break
            pl_timer_heap_pop(&loop.timers, &timer)
            (<TimerHandle>timer.token)._scheduled = False
            loop.metrics.timers_fired += 1
            # The heap's reference moves to the ready queue.
            if pl_ready_queue_push(&loop.ready, timer.token) < 0:
                Py_DECREF(<object>timer.token)
                raise MemoryError()
    finally:
        _bury(loop)
    return 0
