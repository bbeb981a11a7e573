# Part of loop.pyx (included there, at module level): the loop's clock and
# virtual time.
#
# Virtual time (``pyloop.time.pause``): every read of the loop's clock for
# scheduling goes through ``_loop_now``, which returns the monotonic clock plus
# an offset, or a frozen value while the clock is paused.  The offset is 0 until
# the clock was first paused and resumed, so ``loop.time()`` agrees with
# ``time.monotonic()`` in every program that never pauses; after a resume, time
# goes on from the virtual value it reached (it never runs backwards, so
# deadlines computed while paused keep their meaning).  While paused, time moves
# only when ``pyloop.time.advance`` moves it or, with auto-advance, when the loop
# has nothing else to do (``_paused_timeout``): then it jumps straight to the
# next timer's deadline.  The busy-poll throttle and debug-mode slow-callback
# timing keep reading the real clock: they measure the machine, not the program.

cdef inline int64_t _loop_now(BaseLoop loop) noexcept:
    # The one place scheduling reads the clock.  The branch is never taken
    # outside tests, so it predicts perfectly.
    if loop.clock_paused:
        return loop.clock_virtual_ns
    return pl_clock_now_ns() + loop.clock_offset_ns


cdef int64_t _paused_timeout(BaseLoop loop) except? -3:
    """The poll timeout of an idle iteration (nothing ready, not
    stopping) while the clock is paused: 0 if a timer is due, -1 to wait
    for I/O alone, or -2 when this already polled (and perhaps moved the
    clock to the next deadline, which auto-advance does when a zero-timeout
    poll finds nothing and no blocking call is in flight)."""
    cdef const pl_timer_t *first = NULL
    if loop.timers.len:
        first = _first_live_timer(loop)
    if first != NULL and first.deadline_ns <= loop.clock_virtual_ns:
        return 0
    if not loop.clock_auto_advance or loop.clock_holds or first == NULL:
        # Time cannot move by itself: only I/O, another thread or a
        # blocking call's completion can wake the program.
        return -1
    _poll(loop, 0)
    loop.last_poll_ns = pl_clock_now_ns()
    if loop.ready.len or loop.clock_holds or not loop.clock_paused:
        return -2
    first = _first_live_timer(loop)
    if first != NULL and first.deadline_ns > loop.clock_virtual_ns:
        loop.clock_virtual_ns = first.deadline_ns
    return -2
