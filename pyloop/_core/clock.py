"""The virtual-clock seam: the one door from the layers above ``_core`` to a loop's clock.

A pyloop loop's clock can be paused for tests (``pyloop.time.pause``); how it then
moves is described under "Virtual time" in ``loop_clock.pxi``.  The code above
``_core`` that deals with it -- ``pyloop.time`` (pause, resume, advance), the
executor (``run_in_executor``) and ``pyloop.task.spawn_blocking`` -- goes through the
functions here, never through ``BaseLoop``'s internals, and the toolbox imports
nothing else from ``pyloop._core`` (the layer rules in pyproject.toml and
tests/test_style.py).

Every function takes any asyncio event loop:

* the **holds** tell a paused clock that blocking work is in flight, so that
  auto-advance does not jump over the time it takes: a result still to come is not
  "nothing to do".  On a loop that is not a pyloop loop they do nothing, so code that
  runs on any loop calls them unconditionally::

      fut = wrap_future(pool.submit(fn), loop=loop)
      clock.hold_until_done(loop, fut)

* the **clock controls** (``pause``, ``resume``, ``now_ns``, ``set_ns``,
  ``next_deadline_ns``, ``ready_len``) need a pyloop loop and raise ``RuntimeError``
  for another; ``is_paused`` is False for one.

Loop time is in integer nanoseconds here (``loop.time()`` is the same in float
seconds).  All of it runs on the loop's thread, like the rest of the asyncio API.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pyloop._core.loop import (
    BaseLoop,
    _clock_hold,
    _clock_is_paused,
    _clock_next_deadline_ns,
    _clock_now_ns,
    _clock_pause,
    _clock_release,
    _clock_resume,
    _clock_set_ns,
    _ready_len,
)

__all__ = ["hold", "hold_until_done", "is_paused", "next_deadline_ns", "now_ns", "pause",
           "ready_len", "release", "require", "resume", "set_ns", "supports"]


def supports(loop: asyncio.AbstractEventLoop) -> bool:
    """True if ``loop`` is a pyloop loop, whose clock can be paused."""
    return isinstance(loop, BaseLoop)


def require(loop: asyncio.AbstractEventLoop) -> None:
    """Raise ``RuntimeError`` unless ``loop`` is a pyloop loop."""
    _pyloop(loop)


def _pyloop(loop: asyncio.AbstractEventLoop) -> BaseLoop:
    if not isinstance(loop, BaseLoop):
        raise RuntimeError(
            f"virtual time needs a pyloop loop, and this loop is "
            f"{type(loop).__module__}.{type(loop).__qualname__}: run the program with "
            f"pyloop.run(main()) or asyncio.Runner(loop_factory=pyloop.new_event_loop)")
    return loop


# ---- blocking work in flight (any loop) ----------------------------------------

def hold(loop: asyncio.AbstractEventLoop) -> bool:
    """Blocking work for ``loop`` started: a paused clock does not auto-advance
    until it is released.

    Returns True if the loop is a pyloop loop -- then every ``hold`` needs one
    :func:`release` -- and False (and does nothing) for another loop.
    """
    if not isinstance(loop, BaseLoop):
        return False
    _clock_hold(loop)
    return True


def release(loop: asyncio.AbstractEventLoop) -> None:
    """Blocking work held by :func:`hold` finished (nothing for another loop)."""
    if isinstance(loop, BaseLoop):
        _clock_release(loop)


def hold_until_done(loop: asyncio.AbstractEventLoop, fut: asyncio.Future[Any]) -> None:
    """Hold ``loop``'s clock until ``fut`` is done: its result is work the loop is
    still waiting for (nothing for another loop)."""
    if isinstance(loop, BaseLoop):
        _clock_hold(loop)
        fut.add_done_callback(lambda _: _clock_release(loop))


# ---- clock controls (pyloop loops only) ----------------------------------------

def pause(loop: asyncio.AbstractEventLoop, auto_advance: bool = True) -> None:
    """Freeze the clock; with ``auto_advance`` it jumps to the next timer's deadline
    whenever the loop has nothing else to do.  RuntimeError if already paused."""
    _clock_pause(_pyloop(loop), bool(auto_advance))


def resume(loop: asyncio.AbstractEventLoop) -> None:
    """Let the clock run again from where it got to (it never goes back).
    RuntimeError if it is not paused."""
    _clock_resume(_pyloop(loop))


def is_paused(loop: asyncio.AbstractEventLoop) -> bool:
    """True if the clock is paused (never, for a loop that is not a pyloop loop)."""
    return isinstance(loop, BaseLoop) and _clock_is_paused(loop)


def now_ns(loop: asyncio.AbstractEventLoop) -> int:
    """The loop's time in nanoseconds (``loop.time()`` as an integer)."""
    return _clock_now_ns(_pyloop(loop))


def set_ns(loop: asyncio.AbstractEventLoop, ns: int) -> None:
    """Move the paused clock forward to ``ns``; a time in its past leaves it where
    it is.  RuntimeError if the clock is not paused."""
    _clock_set_ns(_pyloop(loop), ns)


def next_deadline_ns(loop: asyncio.AbstractEventLoop) -> int | None:
    """The deadline of the earliest timer not cancelled, or None without one."""
    return _clock_next_deadline_ns(_pyloop(loop))


def ready_len(loop: asyncio.AbstractEventLoop) -> int:
    """How many callbacks are queued to run in the loop's next iteration."""
    return _ready_len(_pyloop(loop))
