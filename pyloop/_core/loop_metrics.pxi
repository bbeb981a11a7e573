# Part of loop.pyx (included there, at module level): the loop's counters, as
# pyloop.monitor sees them, through the seam pyloop/_core/metrics.py.
#
# What is counted, and where (csrc/pl_metrics.h has the struct):
#
# * in the iteration (loop_iteration.pxi): iterations, handles run (a task
#   step is one), fd events dispatched, the largest batch of ready handles,
#   the time asleep in the reactor and the loop lag histogram -- all plain C
#   stores; the clock reads are the ones the iteration makes anyway, plus one
#   before a poll that may block (only such a wait can be idle time);
# * in the loop: timers scheduled (``_call_at``), fired (``_expire_timers``)
#   and cancelled (``_on_timer_cancelled``), and the time spent inside
#   ``run_forever``, read once when a run starts and once when it ends.
#
# Loop lag is the time the loop was busy before it could start a batch of
# ready handles: an upper bound of how late anything that became ready
# meanwhile starts.  The definition and the fixed histogram buckets are in
# csrc/pl_metrics.h.
#
# Stalls.  The loop counts iterations and handles; their sum is its "step".
# A watchdog thread waits in ``_metrics_wait_stall`` *without the GIL*,
# checking the step and the loop's ``waiting`` flag every tick, so watching
# costs the loop nothing.  Once the loop has been busy in one step for the
# threshold, the watchdog takes the GIL and calls ``_metrics_probe`` to see
# that it is still there; what it is doing is then read from the loop
# thread's Python stack (``sys._current_frames``): the callback is the frame
# called from ``_run_frame``, the frame that called ``run_forever``, which
# ``run_forever`` notes once per run.
#
# Task ages.  asyncio records no creation time; while a monitor asks for it
# (``_metrics_track_task_births``), ``create_task`` notes one in a weak
# dictionary -- a cost paid only then.

from weakref import WeakKeyDictionary as _WeakKeyDictionary

cdef bint _track_task_births = False
_task_births = _WeakKeyDictionary()


cdef int _note_task_birth(object task) except -1:
    try:
        _task_births[task] = pl_clock_now_ns()
    except TypeError:       # a task factory's object without weakref support
        pass
    return 0


def _metrics_track_task_births(enabled):
    """Note the creation time of tasks created by pyloop loops from now on."""
    global _track_task_births
    _track_task_births = bool(enabled)


def _metrics_task_birth_ns(task):
    """The clock (ns) when ``task`` was created, if it was noted, else None."""
    try:
        return _task_births.get(task)
    except TypeError:
        return None


def _metrics_snapshot(BaseLoop loop):
    """Every counter, as a dict of ints (times in ns of the monotonic clock).

    Read with the GIL held, as one consistent snapshot: the loop's thread
    writes them with the GIL held too.  Safe on a closed loop.
    """
    cdef pl_metrics_t *m = loop.metrics
    cdef int64_t now = pl_clock_now_ns()
    cdef int64_t running_ns = m.run_ns
    cdef int64_t idle_ns = m.idle_ns
    cdef unsigned i
    if m.running:
        running_ns += now - m.run_start_ns
        if loop.waiting:
            idle_ns += now - m.poll_start_ns
    # Bucket 0 is counted by difference (csrc/pl_metrics.h).
    buckets = tuple([pl_metrics_lag_bucket0(m)] + [m.lag_buckets[i] for i in range(1, PL_LAG_BUCKETS)])
    return {
        "now_ns": now,
        "running": bool(m.running),
        "iterations": m.iterations,
        "callbacks": m.callbacks,
        "fd_events": m.fd_events,
        "timers_scheduled": m.timers_scheduled,
        "timers_fired": m.timers_fired,
        "timers_cancelled": m.timers_cancelled,
        "max_ready": m.max_ready,
        "ready": loop.ready.len,
        "timers": loop.timers.len,
        "running_ns": running_ns,
        "idle_ns": idle_ns,
        "lag_sum_ns": m.lag_sum_ns,
        "lag_max_ns": m.lag_max_ns,
        "lag_buckets": buckets,
    }


def _metrics_lag_bounds_ns():
    """Upper bounds of the lag buckets in ns; the last one is None (unbounded)."""
    cdef unsigned i
    return tuple([pl_metrics_lag_bound_ns(i) if pl_metrics_lag_bound_ns(i) >= 0 else None
                  for i in range(PL_LAG_BUCKETS)])


def _metrics_probe(BaseLoop loop):
    """``(busy, step, thread_id, run_frame)``: whether the loop is running and
    not asleep in the reactor, its step (see ``_metrics_wait_stall``), the
    ident of its thread, and the Python frame that called ``run_forever``
    (the callbacks it runs are called from there, as far as Python frames go)."""
    cdef pl_metrics_t *m = loop.metrics
    busy = pl_metrics_busy(m, <const int *>&loop.waiting)
    step = pl_metrics_step(m)
    return (bool(busy), step, loop._thread_id, loop._run_frame)


cdef class _StallCursor:
    """What a stall watch remembers between two waits (csrc/pl_metrics.h)."""
    cdef pl_stall_cursor_t c

    def __cinit__(self):
        pl_stall_cursor_init(&self.c)


def _metrics_stall_cursor():
    """A new cursor for ``_metrics_wait_stall``: one per watch."""
    return _StallCursor()


def _metrics_wait_stall(BaseLoop loop, _StallCursor cursor, int64_t threshold_ns, int64_t tick_ns,
                        int64_t timeout_ns, uint64_t ignore):
    """Sleep, without the GIL, until the loop has been busy in one step for
    ``threshold_ns`` (checking every ``tick_ns``): ``(step, since_ns)``, or
    None after ``timeout_ns``.  A step equal to ``ignore`` is not reported."""
    cdef uint64_t step = 0
    cdef int64_t since = 0
    cdef int rc
    if threshold_ns < 0 or tick_ns <= 0 or timeout_ns < 0:
        raise ValueError("threshold and timeout must be >= 0 and tick > 0")
    # `loop` and `cursor` stay referenced by this frame while the wait runs.
    with nogil:
        rc = pl_metrics_wait_stall(loop.metrics, <const int *>&loop.waiting, &cursor.c,
                                   threshold_ns, tick_ns, timeout_ns, ignore, &step, &since)
    return (step, since) if rc else None


def _metrics_wait_step_end(BaseLoop loop, uint64_t step, int64_t tick_ns, int64_t timeout_ns):
    """Sleep, without the GIL, until the loop left ``step``: the time (ns) it
    was seen to, or None after ``timeout_ns``."""
    cdef int64_t end = 0
    cdef int rc
    if tick_ns <= 0 or timeout_ns < 0:
        raise ValueError("timeout must be >= 0 and tick > 0")
    with nogil:
        rc = pl_metrics_wait_step_end(loop.metrics, <const int *>&loop.waiting, step,
                                      tick_ns, timeout_ns, &end)
    return end if rc else None


def _metrics_live_loops():
    """Every pyloop loop alive in this process and not closed."""
    return [loop for loop in list(_live_loops) if not (<BaseLoop>loop)._closed]
