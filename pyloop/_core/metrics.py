"""The counters seam: the one door from ``pyloop.monitor`` to a loop's core counters.

A pyloop loop counts, as plain C increments in the steps of its iteration, what
``pyloop.monitor`` reports: iterations, callbacks, fd events, timers, idle time
and the loop lag histogram (``loop_metrics.pxi`` says what each one means, and
``csrc/pl_metrics.h`` how lag is measured).  ``pyloop.monitor`` reads them here
and nowhere else (the layer rules in pyproject.toml and tests/test_style.py);
everything else it knows about tasks comes from public asyncio APIs.

The functions take a pyloop loop and raise ``RuntimeError`` for another, except
``supports`` and ``live_loops``.  Times are integer nanoseconds of the monotonic
clock (``time.monotonic_ns()``).

Threads: ``snapshot``, ``probe`` and the task-birth functions need the GIL only
(any thread may call them; a snapshot is consistent because the loop writes
with the GIL held).  ``wait_stall`` and ``wait_step_end`` sleep *without* the
GIL, reading the counters from another thread: that is what lets a stall
watchdog cost the loop nothing.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from pyloop._core.loop import (
    BaseLoop,
    _metrics_lag_bounds_ns,
    _metrics_live_loops,
    _metrics_probe,
    _metrics_snapshot,
    _metrics_stall_cursor,
    _metrics_task_birth_ns,
    _metrics_track_task_births,
    _metrics_wait_stall,
    _metrics_wait_step_end,
)

__all__ = ["LAG_BOUNDS_NS", "live_loops", "probe", "snapshot", "stall_cursor", "supports",
           "task_birth_ns", "track_task_births", "wait_stall", "wait_step_end"]

LAG_BOUNDS_NS: tuple[int | None, ...] = _metrics_lag_bounds_ns()
"""Exclusive upper bounds of the lag histogram's buckets; the last is None (unbounded)."""


def supports(loop: asyncio.AbstractEventLoop) -> bool:
    """True if ``loop`` is a pyloop loop, which keeps core counters."""
    return isinstance(loop, BaseLoop)


def _pyloop(loop: asyncio.AbstractEventLoop) -> BaseLoop:
    if not isinstance(loop, BaseLoop):
        raise RuntimeError(
            f"core counters need a pyloop loop, and this loop is "
            f"{type(loop).__module__}.{type(loop).__qualname__}")
    return loop


def snapshot(loop: asyncio.AbstractEventLoop) -> dict[str, Any]:
    """Every counter of ``loop`` at this instant, as a dict of ints (``lag_buckets``:
    a tuple of counts, one per bucket of ``LAG_BOUNDS_NS``)."""
    return _metrics_snapshot(_pyloop(loop))


def probe(loop: asyncio.AbstractEventLoop) -> tuple[bool, int, int | None, Any]:
    """``(busy, step, thread_id, run_frame)``: whether the loop is running and not
    asleep in the reactor, its step (changes whenever an iteration or a handle
    starts), the ident of its thread, and the Python frame that called
    ``run_forever`` -- the callbacks it runs are called from there."""
    return _metrics_probe(_pyloop(loop))


def stall_cursor() -> Any:
    """What one stall watch carries from one ``wait_stall`` to the next (opaque)."""
    return _metrics_stall_cursor()


def wait_stall(loop: asyncio.AbstractEventLoop, cursor: Any, threshold_ns: int, tick_ns: int,
               timeout_ns: int, ignore: int = -1) -> tuple[int, int] | None:
    """Sleep without the GIL until the loop has been busy in one step for
    ``threshold_ns``, looking every ``tick_ns``: ``(step, since_ns)`` (when that step
    began, to one tick), or None after ``timeout_ns``.  A step equal to ``ignore``
    (one already reported) is not reported again.  ``cursor`` comes from
    ``stall_cursor()``, one per watch."""
    return _metrics_wait_stall(_pyloop(loop), cursor, threshold_ns, tick_ns, timeout_ns,
                               ignore & 0xFFFFFFFFFFFFFFFF)


def wait_step_end(loop: asyncio.AbstractEventLoop, step: int, tick_ns: int,
                  timeout_ns: int) -> int | None:
    """Sleep without the GIL until the loop left ``step``: when it was seen to, or
    None after ``timeout_ns``."""
    return _metrics_wait_step_end(_pyloop(loop), step, tick_ns, timeout_ns)


def live_loops() -> list[asyncio.AbstractEventLoop]:
    """Every pyloop loop of this process that is not closed."""
    # Loop subclasses BaseLoop and AbstractEventLoop; the stub of BaseLoop knows only the first.
    return cast("list[asyncio.AbstractEventLoop]", _metrics_live_loops())


def track_task_births(enabled: bool = True) -> None:
    """From now on, pyloop loops note when each task is created (a weak dictionary
    insert in ``create_task``, paid only while this is on)."""
    _metrics_track_task_births(enabled)


def task_birth_ns(task: asyncio.Future[Any]) -> int | None:
    """When ``task`` was created, if that was noted (see ``track_task_births``)."""
    return _metrics_task_birth_ns(task)
