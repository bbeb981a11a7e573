"""Debug mode: get_debug/set_debug, slow-callback reports, ResourceWarning, origin tracking."""

import asyncio
import gc
import logging
import sys
import time
import warnings

import pytest

from ._util import run, run_forever


def _busy_wait(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def _expected_default_debug():
    import os

    return bool(sys.flags.dev_mode) or (
        not sys.flags.ignore_environment and bool(os.environ.get("PYTHONASYNCIODEBUG"))
    )


def test_debug_default_follows_environment(loop):
    assert loop.get_debug() is _expected_default_debug()


def test_pythonasynciodebug_env_enables_debug(loop_factory, monkeypatch):
    if sys.flags.ignore_environment:
        pytest.skip("interpreter ignores the environment (-E)")
    monkeypatch.setenv("PYTHONASYNCIODEBUG", "1")
    lp = loop_factory()
    try:
        assert lp.get_debug() is True
    finally:
        lp.close()


def test_set_debug_roundtrip(loop):
    loop.set_debug(True)
    assert loop.get_debug() is True
    loop.set_debug(False)
    assert loop.get_debug() is False


def test_set_debug_while_running(loop):
    seen = []

    def toggle():
        loop.set_debug(True)
        seen.append(loop.get_debug())
        loop.stop()

    loop.call_soon(toggle)
    run_forever(loop)
    assert seen == [True]
    assert loop.get_debug()


def test_slow_callback_duration_attribute(loop):
    assert isinstance(loop.slow_callback_duration, float)
    assert loop.slow_callback_duration == pytest.approx(0.1)
    loop.slow_callback_duration = 0.01
    assert loop.slow_callback_duration == 0.01


def _asyncio_warnings(caplog):
    return [r for r in caplog.records if r.name == "asyncio" and r.levelno == logging.WARNING]


def test_slow_callback_is_reported_in_debug_mode(loop, caplog):
    def my_slow_callback():
        _busy_wait(0.05)

    loop.set_debug(True)
    loop.slow_callback_duration = 0.01
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        loop.call_soon(my_slow_callback)
        loop.call_soon(loop.stop)
        run_forever(loop)
    msgs = [r.getMessage() for r in _asyncio_warnings(caplog)]
    assert any("my_slow_callback" in m and "took" in m for m in msgs), msgs


def test_slow_timer_and_task_steps_are_reported(loop, caplog):
    def my_slow_timer():
        _busy_wait(0.05)

    async def my_slow_coroutine():
        _busy_wait(0.05)

    loop.set_debug(True)
    loop.slow_callback_duration = 0.01
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        loop.call_later(0.001, my_slow_timer)
        # Not run(): from 3.12 wait_for awaits the coroutine in its own task, which would be
        # the task reported instead of my_slow_coroutine's.
        loop.run_until_complete(my_slow_coroutine())
        loop.call_later(0.01, loop.stop)
        run_forever(loop)
    msgs = [r.getMessage() for r in _asyncio_warnings(caplog)]
    assert any("my_slow_timer" in m for m in msgs), msgs
    assert any("my_slow_coroutine" in m for m in msgs), msgs


def test_slow_callbacks_not_reported_without_debug(loop, caplog):
    loop.set_debug(False)
    loop.slow_callback_duration = 0.001
    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        loop.call_soon(_busy_wait, 0.02)
        loop.call_soon(loop.stop)
        run_forever(loop)
    assert _asyncio_warnings(caplog) == []


def test_fast_callbacks_not_reported(loop, caplog):
    loop.set_debug(True)
    loop.slow_callback_duration = 10.0
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        for _ in range(100):
            loop.call_soon(lambda: None)
        loop.call_soon(loop.stop)
        run_forever(loop)
    assert _asyncio_warnings(caplog) == []


def test_unclosed_loop_emits_resource_warning(loop_impl):
    lp = loop_impl.new_loop()  # deliberately untracked and never closed
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        del lp
        gc.collect()
    rw = [x for x in w if issubclass(x.category, ResourceWarning)]
    assert rw, [str(x.message) for x in w]
    assert "unclosed" in str(rw[0].message)


def test_closed_loop_emits_no_resource_warning(loop_impl):
    lp = loop_impl.new_loop()
    lp.close()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        del lp
        gc.collect()
    assert [x for x in w if issubclass(x.category, ResourceWarning)] == []


def test_exception_context_has_source_traceback_in_debug_mode(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
    loop.set_debug(True)

    def failing():
        raise ValueError("x")

    def scheduling_site():
        return loop.call_soon(failing)

    scheduling_site()
    loop.call_soon(loop.stop)
    run_forever(loop)
    assert len(contexts) == 1
    tb = contexts[0].get("source_traceback")
    assert tb, "debug mode should record where the callback was scheduled"
    assert any(frame.name == "scheduling_site" for frame in tb)


def test_coroutine_origin_tracking_in_debug_mode(loop):
    before = sys.get_coroutine_origin_tracking_depth()
    loop.set_debug(True)

    async def main():
        return sys.get_coroutine_origin_tracking_depth()

    depth = run(loop, main())
    assert depth > 0
    assert sys.get_coroutine_origin_tracking_depth() == before


def test_no_origin_tracking_change_without_debug(loop):
    before = sys.get_coroutine_origin_tracking_depth()
    loop.set_debug(False)

    async def main():
        return sys.get_coroutine_origin_tracking_depth()

    assert run(loop, main()) == before


def test_debug_mode_loop_still_runs_everything(loop):
    loop.set_debug(True)

    async def main():
        results = await asyncio.gather(*(asyncio.sleep(0.001, i) for i in range(20)))
        return results

    assert run(loop, main()) == list(range(20))
