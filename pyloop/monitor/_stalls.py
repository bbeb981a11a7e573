"""Stall reports: a watchdog thread that catches the loop blocked, *while* it is blocked.

``watch_stalls(threshold)`` starts a thread that notices when the loop has been
inside one callback (a task step is one) for ``threshold`` seconds, and then --
the loop still blocked -- reads the loop thread's Python stack with
``sys._current_frames()``: the report names the file and line of the
``time.sleep``, the CPU-bound loop or the blocking socket call, the callback or
task, and how long it has been blocked so far.  When the loop moves on, a second
report carries the final duration.  One stall, two reports; never one per tick.

How it watches, and what it costs:

* **pyloop loops**: the thread sleeps in ``pyloop._core.metrics.wait_stall``
  *without the GIL*, reading every tick (threshold / 8, between 1 and 50 ms) the
  counters the loop's C core keeps anyway -- whether it is asleep in the reactor,
  and which iteration and callback it is in.  The loop pays nothing; the thread
  takes the GIL only to write a report.  Durations are exact to one tick (the
  start of a stall is bounded by the iteration's own clock read too, so a watchdog
  starved of CPU still dates it right).
* **other asyncio loops**: no counters, so the thread sends the loop a heartbeat
  callback (``call_soon_threadsafe``) every tick and reports when one has waited
  ``threshold`` -- the loop ran no callback for that long: one blocking callback,
  or a flood of them.  That costs the loop one callback per tick while watched.

Reports go to ``on_stall(report)`` -- called in the watchdog thread, since the
loop is the thing that is blocked -- or, by default, to a warning on the
``pyloop.monitor`` logger.  An exception from ``on_stall`` is logged and the
watch goes on.
"""

from __future__ import annotations

import asyncio
import linecache
import logging
import os
import sys
import threading
import time
import weakref
from dataclasses import dataclass, replace
from typing import Any, Callable

from pyloop._core import metrics as _counters

from ._metrics import resolve_loop
from ._tasks import _is_library

__all__ = ["StallReport", "StallWatch", "current_watch", "watch_stalls"]

logger = logging.getLogger("pyloop.monitor")

# How often the watchdog looks, as a fraction of the threshold, and its bounds.
_TICKS_PER_THRESHOLD = 8
_MIN_TICK = 0.001
_MAX_TICK = 0.05
# The longest the watchdog sleeps without looking at its stop flag.
_SLICE = 0.2
_MAX_FRAMES = 64

# The latest watch of each loop, so that the monitor socket can show its stalls.
_watches: weakref.WeakKeyDictionary[Any, StallWatch] = weakref.WeakKeyDictionary()
_watches_lock = threading.Lock()


@dataclass(frozen=True)
class StallReport:
    """The loop blocked inside one callback: where, in what, and for how long.

    The first report of a stall comes while the loop is still blocked
    (``ended`` False, ``blocked_for`` so far); the second when it moved on
    (``ended`` True, ``blocked_for`` the final duration, the same stack).
    """

    blocked_for: float
    """Seconds the loop had been blocked when this report was made (lower bound,
    exact to one watchdog tick)."""
    ended: bool
    """False while the loop is still blocked; True in the report of its end."""
    started_at: float
    """``time.monotonic()`` when the watchdog first saw the loop in that callback."""
    callback: str | None
    """When it is not a task's step: the callback the loop called, as ``function
    (file:line)``."""
    task: str | None
    """The name of the task whose step it is, if it is a task's step."""
    thread_id: int | None
    """Ident of the loop's thread."""
    stack: tuple[tuple[str, int, str, str], ...]
    """The loop thread's Python stack when the stall was seen, outermost first:
    ``(filename, lineno, function, source line)``."""

    @property
    def where(self) -> str | None:
        """The innermost frame -- the blocking line -- as ``file:line in function``."""
        if not self.stack:
            return None
        filename, lineno, name, _ = self.stack[-1]
        return f"{filename}:{lineno} in {name}"

    def format(self) -> str:
        """The report as text: a headline, then the stack like a traceback."""
        what = f"task {self.task!r}" if self.task else (self.callback or "the loop itself")
        if self.ended:
            head = f"event loop was blocked for {self.blocked_for:.3f} s in {what}"
        else:
            head = f"event loop blocked for {self.blocked_for:.3f} s so far in {what}"
        lines = [head]
        if self.stack:
            lines.append("  stack of the loop thread (most recent call last):")
            for filename, lineno, name, line in self.stack:
                lines.append(f'    File "{filename}", line {lineno}, in {name}')
                if line:
                    lines.append(f"      {line}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """The report as plain JSON-able types (``stack``: lists)."""
        return {"blocked_for": self.blocked_for, "ended": self.ended, "started_at": self.started_at,
                "callback": self.callback, "task": self.task, "thread_id": self.thread_id,
                "where": self.where, "stack": [list(f) for f in self.stack]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StallReport:
        """The report ``as_dict()`` described."""
        return cls(blocked_for=data["blocked_for"], ended=data["ended"], started_at=data["started_at"],
                   callback=data["callback"], task=data["task"], thread_id=data["thread_id"],
                   stack=tuple((str(f[0]), int(f[1]), str(f[2]), str(f[3])) for f in data["stack"]))


_Frame = tuple[str, int, str, str]


def _stack_of(thread_id: int | None, run_frame: Any = None) -> tuple[tuple[_Frame, ...], _Frame | None]:
    """The Python stack of a thread, outermost first, and the frame of the
    callback the loop called: the one called from ``run_frame`` (a pyloop loop's
    ``run_forever`` has no frame of its own), else the first frame after asyncio's
    or pyloop's own code."""
    if thread_id is None:
        return (), None
    frame = sys._current_frames().get(thread_id)
    frames: list[_Frame] = []
    entry: _Frame | None = None
    while frame is not None and len(frames) < _MAX_FRAMES:
        code = frame.f_code
        lineno = frame.f_lineno or 0
        line = linecache.getline(code.co_filename, lineno).strip()
        frames.append((code.co_filename, lineno, code.co_name, line))
        if run_frame is not None and frame.f_back is run_frame:
            entry = frames[-1]
        frame = frame.f_back
    frames.reverse()
    if entry is None and run_frame is None:
        entry = next((inner for outer, inner in zip(frames, frames[1:])
                      if _is_library(outer[0]) and not _is_library(inner[0])), None)
    return tuple(frames), entry


def _what(loop: Any, entry: _Frame | None) -> tuple[str | None, str | None]:
    """(callback, task) the loop is in: the current task's name if it is a task's
    step, else the callback's function and where it is."""
    task = asyncio.current_task(loop)
    if task is not None:
        return None, task.get_name()
    if entry is not None:
        return f"{entry[2]} ({entry[0]}:{entry[1]})", None
    return None, None


def _default_report(report: StallReport) -> None:
    if report.ended:
        logger.warning("%s", report.format().splitlines()[0])
    else:
        logger.warning("%s", report.format())


class StallWatch:
    """A running stall watchdog (what :func:`watch_stalls` returns).

    Use it as a context manager, or call :meth:`stop`.  ``current`` is the stall
    going on now (a report with ``ended`` False) or None; ``last`` the last one
    that ended; ``count`` how many stalls it saw.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, threshold: float,
                 on_stall: Callable[[StallReport], object] | None) -> None:
        self.threshold = threshold
        self.on_stall = on_stall
        self.current: StallReport | None = None
        self.last: StallReport | None = None
        self.count = 0
        self._loop_ref = weakref.ref(loop)
        self._tick = min(max(threshold / _TICKS_PER_THRESHOLD, _MIN_TICK), _MAX_TICK)
        self._stopping = threading.Event()
        body = self._watch_core if _counters.supports(loop) else self._watch_heartbeat
        self._thread = threading.Thread(target=body, name="pyloop-monitor-stalls", daemon=True)
        self._thread.start()
        with _watches_lock:
            _watches[loop] = self

    @property
    def active(self) -> bool:
        """True until the watch stopped (``stop()``, or its loop was closed)."""
        return self._thread.is_alive()

    def stop(self) -> None:
        """Stop watching (idempotent).  No report starts after this returns.

        From another thread it also waits for the watchdog thread to finish; on
        the loop's own thread it does not wait (the thread may sleep up to 0.2 s
        before it sees the request, and the loop must not), and the thread ends
        by itself.
        """
        self._stopping.set()
        loop = self._loop_ref()
        on_loop = loop is not None and asyncio._get_running_loop() is loop
        if not on_loop and self._thread is not threading.current_thread():
            self._thread.join()

    def __enter__(self) -> StallWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "active" if self.active else "stopped"
        return f"<StallWatch threshold={self.threshold} {state} stalls={self.count}>"

    # ---- reporting ---------------------------------------------------------

    def _emit(self, report: StallReport) -> None:
        if self._stopping.is_set() and not report.ended:
            return
        if report.ended:
            self.current = None
            self.last = report
        else:
            self.current = report
            self.count += 1
        callback = self.on_stall or _default_report
        try:
            callback(report)
        except Exception:
            logger.exception("pyloop.monitor: on_stall raised")

    # ---- pyloop loops: the core counters, read without the GIL ------------------

    def _watch_core(self) -> None:
        threshold_ns = int(self.threshold * 1e9)
        tick_ns = int(self._tick * 1e9)
        slice_ns = int(_SLICE * 1e9)
        reported = -1
        cursor = _counters.stall_cursor()
        while not self._stopping.is_set():
            loop = self._loop_ref()
            if loop is None or loop.is_closed():
                return
            found = _counters.wait_stall(loop, cursor, threshold_ns, tick_ns, slice_ns, reported)
            if found is None:
                continue
            step, since_ns = found
            # Holding the GIL now: the loop's thread is stopped where it is.
            busy, step_now, thread_id, run_frame = _counters.probe(loop)
            if not busy or step_now != step:
                continue            # it moved on while we took the GIL: too short to tell
            stack, entry = _stack_of(thread_id, run_frame)
            del run_frame
            callback, task = _what(loop, entry)
            report = StallReport(blocked_for=(time.monotonic_ns() - since_ns) / 1e9, ended=False,
                                 started_at=since_ns / 1e9, callback=callback, task=task,
                                 thread_id=thread_id, stack=stack)
            self._emit(report)
            reported = step
            end_ns = None
            while end_ns is None and not self._stopping.is_set():
                end_ns = _counters.wait_step_end(loop, step, tick_ns, slice_ns)
            del loop
            if end_ns is None:
                return              # stopped while the loop was still blocked
            self._emit(replace(report, blocked_for=(end_ns - since_ns) / 1e9, ended=True))

    # ---- other loops: a heartbeat callback ----------------------------------

    def _watch_heartbeat(self) -> None:
        beat: list[int] = []

        def heartbeat(ns: list[int]) -> None:
            ns.append(time.monotonic_ns())

        while not self._stopping.wait(self._tick):
            loop = self._loop_ref()
            if loop is None or loop.is_closed():
                return
            if not loop.is_running():
                continue
            beat = []
            sent = time.monotonic_ns()
            try:
                loop.call_soon_threadsafe(heartbeat, beat)
            except RuntimeError:    # closed meanwhile
                return
            deadline = sent + int(self.threshold * 1e9)
            while not beat and time.monotonic_ns() < deadline:
                if self._stopping.wait(self._tick):
                    return
            if beat or not loop.is_running():
                continue
            thread_id = getattr(loop, "_thread_id", None)
            stack, entry = _stack_of(thread_id)
            callback, task = _what(loop, entry)
            report = StallReport(blocked_for=(time.monotonic_ns() - sent) / 1e9, ended=False,
                                 started_at=sent / 1e9, callback=callback, task=task,
                                 thread_id=thread_id, stack=stack)
            self._emit(report)
            while not beat:
                if self._stopping.wait(self._tick) or loop.is_closed():
                    return
                if not loop.is_running():
                    beat.append(time.monotonic_ns())
            self._emit(replace(report, blocked_for=(beat[0] - sent) / 1e9, ended=True))
            del loop


def watch_stalls(threshold: float = 0.1, *, loop: asyncio.AbstractEventLoop | None = None,
                 on_stall: Callable[[StallReport], object] | None = None) -> StallWatch:
    """Report each time the loop stays blocked in one callback for ``threshold`` seconds.

    Starts a watchdog thread and returns its :class:`StallWatch` (a context
    manager; ``stop()`` ends it).  The report of a stall is made while the loop
    is still blocked, with the loop thread's stack at that moment, so it names
    the blocking line; a second report gives the final duration once the loop
    moves on.  Reports go to ``on_stall(report)`` (called in the watchdog
    thread) or, by default, to a warning on the ``pyloop.monitor`` logger.

    Free on pyloop loops (the watchdog reads the core's counters without the
    GIL); on other asyncio loops it costs one heartbeat callback per tick.

    >>> with monitor.watch_stalls(0.1):
    ...     await serve_forever()
    WARNING:pyloop.monitor:event loop blocked for 0.104 s so far in task 'handler'
      ...
        File "app.py", line 12, in handler
          time.sleep(1)
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise TypeError(f"threshold must be a number of seconds, got {threshold!r}")
    if not threshold > 0 or threshold == float("inf"):
        raise ValueError(f"threshold must be a positive number of seconds, got {threshold!r}")
    if on_stall is not None and not callable(on_stall):
        raise TypeError(f"on_stall must be callable, got {on_stall!r}")
    loop = resolve_loop(loop)
    if loop.is_closed():
        raise RuntimeError("Event loop is closed")
    return StallWatch(loop, float(threshold), on_stall)


def _after_fork_in_child() -> None:
    global _watches_lock
    _watches_lock = threading.Lock()    # another thread may have held it at the fork


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def current_watch(loop: asyncio.AbstractEventLoop) -> StallWatch | None:
    """The latest active watch of ``loop``, if any."""
    with _watches_lock:
        watch = _watches.get(loop)
    return watch if watch is not None and watch.active else None
