"""monitor.watch_stalls(): the report comes while the loop is still blocked and names the line.

The blocking callbacks below sleep in a loop until the test's ``on_stall`` lets them go:
if the report came only after the fact, they would never end (the test would time out),
so each passing test proves the report was made while the loop was blocked.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time

import pytest

from pyloop import monitor
from pyloop.monitor import StallReport

LONG = 30.0         # generous: a blocked callback gives up after this (a failing test, not a hang)


def _ours(report: StallReport) -> bool:
    """A report of the test's own stall: on a loaded machine the loop may also be
    caught busy elsewhere for a threshold (the process was not scheduled)."""
    return any(name == "_block_until" for _, _, name, _ in report.stack)


class Recorder:
    """on_stall that lets the blocked callback go once the ongoing report arrived."""

    def __init__(self) -> None:
        self.reports: list[StallReport] = []
        self.release = threading.Event()
        self.ended = threading.Event()
        self.still_blocked_when_reported: bool | None = None

    def __call__(self, report: StallReport) -> None:
        if not _ours(report):
            return
        if not report.ended:
            self.still_blocked_when_reported = not self.release.is_set()
        self.reports.append(report)
        if report.ended:
            self.ended.set()
        else:
            self.release.set()


def _block_until(release: threading.Event) -> int:
    """Block the calling (loop) thread until released; return the blocking line's number."""
    deadline = time.monotonic() + LONG
    while not release.is_set() and time.monotonic() < deadline:
        time.sleep(0.005)   # BLOCKING LINE
    return 0


BLOCKING_LINE = next(n for n, line in enumerate(inspect.getsource(inspect.getmodule(_block_until))
                                                .splitlines(), 1) if line.endswith("# BLOCKING LINE"))


def test_report_names_the_blocking_line_while_still_blocked(loop):
    rec = Recorder()

    async def handler():
        await asyncio.sleep(0.01)
        _block_until(rec.release)

    async def main():
        with monitor.watch_stalls(0.05, on_stall=rec) as watch:
            await asyncio.create_task(handler(), name="the-handler")
            assert await asyncio.to_thread(rec.ended.wait, LONG)
            return watch

    watch = loop.run_until_complete(main())
    assert rec.still_blocked_when_reported is True
    first, last = rec.reports
    assert not first.ended and last.ended
    assert first.where == f"{__file__}:{BLOCKING_LINE} in _block_until"
    assert first.stack[-1][3] == "time.sleep(0.005)   # BLOCKING LINE"
    assert any(name == "handler" for _, _, name, _ in first.stack)
    assert first.task == "the-handler"
    assert first.blocked_for >= 0.05
    assert last.blocked_for >= first.blocked_for
    assert last.stack == first.stack and last.started_at == first.started_at
    assert watch.count == 1 and watch.current is None and watch.last == last
    assert "_block_until" in first.format() and "BLOCKING LINE" in first.format()
    assert StallReport.from_dict(first.as_dict()) == first


def test_one_report_per_stall_not_one_per_tick(loop):
    reports = []
    stop = threading.Event()

    def on_stall(report):
        if any(name == "block_for" for _, _, name, _ in report.stack):
            reports.append(report)

    def block_for(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(0.002)

    async def main():
        with monitor.watch_stalls(0.04, on_stall=on_stall):
            await asyncio.sleep(0.05)
            block_for(0.6)          # 15 thresholds long
            await asyncio.sleep(0.3)
            while len(reports) < 2 and not stop.is_set():
                await asyncio.sleep(0.01)

    timer = threading.Timer(LONG, stop.set)
    timer.start()
    try:
        loop.run_until_complete(main())
    finally:
        timer.cancel()
    assert [r.ended for r in reports] == [False, True]
    assert reports[0].started_at == reports[1].started_at
    assert 0.5 <= reports[1].blocked_for <= 5.0


def test_an_idle_loop_is_not_stalled(loop):
    reports = []

    async def main():
        with monitor.watch_stalls(0.1, on_stall=reports.append):
            await asyncio.sleep(1.0)    # asleep in the poll, ten thresholds long: not blocked

    loop.run_until_complete(main())
    assert reports == [], "\n".join(r.format() for r in reports)


def test_default_report_is_a_warning_on_the_monitor_logger(loop, caplog):
    release = threading.Event()

    class Releaser(logging.Handler):
        def emit(self, record):
            if "_block_until" in record.getMessage():
                release.set()

    handler = Releaser()
    logger = logging.getLogger("pyloop.monitor")
    logger.addHandler(handler)

    async def main():
        with monitor.watch_stalls(0.05):
            await asyncio.sleep(0.01)
            _block_until(release)
            await asyncio.sleep(0.2)

    try:
        with caplog.at_level(logging.WARNING, logger="pyloop.monitor"):
            loop.run_until_complete(main())
    finally:
        logger.removeHandler(handler)
    messages = [r.getMessage() for r in caplog.records
                if r.name == "pyloop.monitor" and "_block_until" in r.getMessage()]
    assert messages, "no stall was logged"
    assert "blocked for" in messages[0] and f"line {BLOCKING_LINE}, in _block_until" in messages[0]


def test_on_stall_errors_are_logged_and_the_watch_goes_on(loop, caplog):
    calls = []
    release = threading.Event()

    def on_stall(report):
        if _ours(report) or report.ended:
            calls.append(report)
        if _ours(report):
            release.set()
        raise ValueError("boom")

    async def main():
        with monitor.watch_stalls(0.05, on_stall=on_stall) as watch:
            await asyncio.sleep(0.01)
            _block_until(release)
            await asyncio.sleep(0.3)
            return watch.active

    with caplog.at_level(logging.ERROR, logger="pyloop.monitor"):
        assert loop.run_until_complete(main()) is True
    ours = [c for c in calls if _ours(c)]
    assert [c.ended for c in ours] == [False, True]
    assert any("on_stall raised" in r.getMessage() for r in caplog.records)


def test_stop_on_the_loop_thread_does_not_block_it(loop):
    async def main():
        watch = monitor.watch_stalls(0.05, on_stall=lambda r: None)
        t0 = time.monotonic()
        watch.stop()
        took = time.monotonic() - t0
        watch.stop()                # idempotent
        return watch, took

    watch, took = loop.run_until_complete(main())
    assert took < 0.05
    watch._thread.join(LONG)
    assert not watch.active
    assert "stopped" in repr(watch)


def test_bad_arguments(loop):
    async def main():
        for bad in (0, -1, float("nan"), float("inf")):
            with pytest.raises(ValueError):
                monitor.watch_stalls(bad)
        for bad in ("0.1", None, True):
            with pytest.raises(TypeError):
                monitor.watch_stalls(bad)
        with pytest.raises(TypeError):
            monitor.watch_stalls(0.1, on_stall=42)

    loop.run_until_complete(main())
    with pytest.raises(RuntimeError):
        monitor.watch_stalls(0.1)           # no running loop, none given


def test_a_plain_callback_is_named_by_its_function(loop):
    rec = Recorder()

    def blocking_callback():
        _block_until(rec.release)

    async def main():
        with monitor.watch_stalls(0.05, on_stall=rec):
            loop.call_soon(blocking_callback)
            assert await asyncio.to_thread(rec.ended.wait, LONG)

    loop.run_until_complete(main())
    first = rec.reports[0]
    assert first.task is None
    assert first.callback.startswith(f"blocking_callback ({__file__}:")
    assert first.where == f"{__file__}:{BLOCKING_LINE} in _block_until"
    assert "blocking_callback (" in first.format()
