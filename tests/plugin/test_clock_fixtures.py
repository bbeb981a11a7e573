"""The virtual-clock fixtures ``pyloop_clock`` (auto-advance) and ``pyloop_manual_clock`` (advanced by
the test), in real pytest-asyncio and anyio test files run under pytest in a subprocess."""

from __future__ import annotations

import pytest

from ._runner import project, run_pytest

pytest.importorskip("pyloop._core.loop", reason="pyloop is not built")
pytest.importorskip("pytest_asyncio")
pytest.importorskip("anyio")

CLOCK_TESTS = {
    "test_clock.py": '''
        import asyncio
        import time

        import anyio
        import pytest

        import pyloop
        from pyloop import task
        from pyloop import time as ptime
        from conftest import seen


        @pytest.mark.asyncio
        async def test_an_hour_passes_at_once(pyloop_clock):
            seen("auto")
            assert pyloop_clock.auto_advance and ptime.is_paused()
            start, wall = pyloop_clock.time(), time.monotonic()
            with pytest.raises(ptime.Elapsed):
                async with ptime.timeout(3600):
                    await asyncio.Event().wait()
            assert pyloop_clock.time() - start == pytest.approx(3600)
            assert time.monotonic() - wall < 60


        @pytest.mark.asyncio
        async def test_manual_clock_moves_only_when_advanced(pyloop_manual_clock):
            seen("manual")
            ticks = []

            async def tick():
                async for _ in ptime.interval(1.0):
                    ticks.append(asyncio.get_running_loop().time())

            ticker = task.spawn(tick())
            sleeper = task.spawn(asyncio.sleep(10))
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            assert len(ticks) == 1 and not sleeper.is_finished()
            await pyloop_manual_clock.advance(10)
            assert len(ticks) == 11 and sleeper.is_finished()
            assert [b - a for a, b in zip(ticks, ticks[1:])] == pytest.approx([1.0] * 10)
            ticker.abort()


        @pytest.mark.anyio
        @pytest.mark.parametrize("anyio_backend", ["asyncio"])
        async def test_under_anyio(anyio_backend, pyloop_clock):
            seen("anyio")
            start = pyloop_clock.time()
            await anyio.sleep(600)
            assert pyloop_clock.time() - start == pytest.approx(600)


        @pytest.mark.asyncio(loop_scope="module")
        async def test_shared_loop_1_paused(pyloop_clock):
            seen("shared_1")
            assert ptime.is_paused()


        @pytest.mark.asyncio(loop_scope="module")
        async def test_shared_loop_2_real_time_again():
            seen("shared_2")
            assert not ptime.is_paused()       # the fixture resumed the clock of the shared loop


        @pytest.mark.asyncio
        async def test_no_fixture_real_time():
            assert not ptime.is_paused()
    ''',
}


def test_clock_fixtures_under_pytest_asyncio_and_anyio(tmp_path):
    result = run_pytest(project(tmp_path, CLOCK_TESTS), "--pyloop")
    assert result.returncode == 0, result
    assert "6 passed" in result.output, result
    assert set(result.seen) == {"auto", "manual", "anyio", "shared_1", "shared_2"}, result


def test_clock_fixture_without_the_switch_says_what_to_do(tmp_path):
    files = {"test_needs_pyloop.py": '''
        import asyncio

        import pytest


        @pytest.mark.asyncio
        async def test_sleeps(pyloop_clock):
            await asyncio.sleep(3600)
    '''}
    result = run_pytest(project(tmp_path, files))
    assert result.returncode == 1, result
    assert "run pytest with --pyloop" in result.output, result
    assert "_UnixSelectorEventLoop" in result.output, result


def test_clock_fixture_misuse_fails_with_the_reason(tmp_path):
    files = {"test_misuse.py": '''
        import asyncio

        import pytest


        def test_sync(pyloop_clock):
            pass


        @pytest.mark.asyncio
        async def test_both(pyloop_clock, pyloop_manual_clock):
            pass
    '''}
    result = run_pytest(project(tmp_path, files), "--pyloop")
    assert result.returncode == 1, result
    assert "pyloop_clock is for `async def` tests" in result.output, result
    assert "use one of pyloop_clock and pyloop_manual_clock, not both" in result.output, result


def test_a_failing_test_on_the_clock_reports_its_own_traceback(tmp_path):
    files = {"test_fails.py": '''
        import asyncio

        import pytest


        @pytest.mark.asyncio
        async def test_fails(pyloop_clock):
            await asyncio.sleep(5)
            assert 1 + 1 == 3, "the test's own assertion"
    '''}
    result = run_pytest(project(tmp_path, files), "--pyloop")
    assert result.returncode == 1, result
    assert "the test's own assertion" in result.output, result
    assert "on_virtual_clock" not in result.output, result     # the wrapper's frame is hidden
