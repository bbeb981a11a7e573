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


cdef inline int64_t _loop_time_at(BaseLoop loop, int64_t clock_ns) noexcept:
    # _loop_now() for a pl_clock_now_ns() reading the caller already made
    # (the iteration's: one clock read per iteration, loop_iteration.pxi).
    if loop.clock_paused:
        return loop.clock_virtual_ns
    return clock_ns + loop.clock_offset_ns


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


# ---- the primitives behind pyloop/_core/clock.py ----------------------------
# Code above _core reaches virtual time through that module only: it takes any
# asyncio loop, documents the API and its types.  Plain Python-callable
# functions: none of this is on a hot path.

def _clock_pause(BaseLoop loop not None, bint auto_advance):
    if loop.clock_paused:
        raise RuntimeError("the clock is already paused")
    loop.clock_virtual_ns = _loop_now(loop)
    loop.clock_auto_advance = auto_advance
    loop.clock_paused = True


def _clock_resume(BaseLoop loop not None):
    if not loop.clock_paused:
        raise RuntimeError("the clock is not paused")
    loop.clock_offset_ns = loop.clock_virtual_ns - pl_clock_now_ns()
    loop.clock_paused = False


def _clock_is_paused(BaseLoop loop not None):
    return bool(loop.clock_paused)


def _clock_now_ns(BaseLoop loop not None):
    return _loop_now(loop)


def _clock_set_ns(BaseLoop loop not None, int64_t ns):
    """Move the paused clock forward to ``ns`` (never backwards)."""
    if not loop.clock_paused:
        raise RuntimeError("the clock is not paused")
    if ns > loop.clock_virtual_ns:
        loop.clock_virtual_ns = ns


def _clock_next_deadline_ns(BaseLoop loop not None):
    """The deadline of the earliest live timer, or None."""
    cdef const pl_timer_t *first
    if not loop.timers.len:
        return None
    first = _first_live_timer(loop)
    return None if first == NULL else first.deadline_ns


def _clock_hold(BaseLoop loop not None):
    """A blocking call started: auto-advance waits until it is released."""
    loop.clock_holds += 1


def _clock_release(BaseLoop loop not None):
    if loop.clock_holds > 0:
        loop.clock_holds -= 1


def _ready_len(BaseLoop loop not None):
    """How many callbacks are queued to run (for pyloop.time.advance)."""
    return loop.ready.len
