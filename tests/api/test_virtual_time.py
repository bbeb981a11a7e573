"""pyloop.time's virtual clock: pause, advance, auto-advance, resume (pyloop loops only).

A paused clock does not move by itself, so asyncio.wait_for guards would never
fire in tests without auto-advance: those rely on pytest-timeout instead.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time

import pytest

import pyloop
import pyloop.time as ptime
from pyloop.task import spawn, spawn_blocking
from pyloop.time import Elapsed, MissedTick

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def ploop():
    lp = pyloop.new_event_loop()
    yield lp
    lp.close()


def run(loop, coro):
    return loop.run_until_complete(coro)


async def forever():
    await asyncio.get_running_loop().create_future()


# ---- pause / resume basics ---------------------------------------------------------

def test_paused_clock_stands_still_and_advance_moves_it_exactly(ploop):
    async def main():
        lp = asyncio.get_running_loop()
        ptime.pause(auto_advance=False)
        assert ptime.is_paused()
        t0 = lp.time()
        time.sleep(0.01)                     # real time passes...
        await asyncio.sleep(0)
        assert lp.time() == t0               # ...loop time does not
        await ptime.advance(2.5)
        assert lp.time() == pytest.approx(t0 + 2.5, abs=1e-9)
        ptime.resume()
        assert not ptime.is_paused()

    run(ploop, main())


def test_one_hour_timeout_finishes_fast_with_auto_advance(ploop):
    async def main():
        lp = asyncio.get_running_loop()
        ptime.pause()
        t0 = lp.time()
        with pytest.raises(Elapsed):
            async with ptime.timeout(3600):
                await asyncio.sleep(7200)
        assert lp.time() - t0 == pytest.approx(3600, abs=1e-6)

    wall = time.monotonic()
    run(ploop, main())
    assert time.monotonic() - wall < 10      # milliseconds, really; 10 s on a loaded box


def test_auto_advance_visits_deadlines_in_order(ploop):
    async def main():
        lp = asyncio.get_running_loop()
        ptime.pause()
        t0 = lp.time()
        seen = []

        async def sleeper(d):
            await asyncio.sleep(d)
            seen.append((d, round(lp.time() - t0, 6)))

        await asyncio.gather(*(sleeper(d) for d in (30, 10, 20, 86400)))
        assert seen == [(10, 10), (20, 20), (30, 30), (86400, 86400)]

    run(ploop, main())


def test_without_auto_advance_timers_wait_for_advance(ploop):
    async def main():
        lp = asyncio.get_running_loop()
        ptime.pause(auto_advance=False)
        woke = []

        async def sleeper():
            await asyncio.sleep(10)
            woke.append(lp.time())

        t0 = lp.time()
        spawn(sleeper())
        await ptime.advance(9.999)
        assert woke == []
        await ptime.advance(0.001)
        assert woke == [pytest.approx(t0 + 10, abs=1e-6)]

    run(ploop, main())


def test_advance_fires_each_timer_at_its_own_time(ploop):
    async def main():
        lp = asyncio.get_running_loop()
        ptime.pause(auto_advance=False)
        t0 = lp.time()
        fired = []
        for d in (3, 1, 2):
            lp.call_later(d, lambda d=d: fired.append((d, round(lp.time() - t0, 6))))
        await ptime.advance(5)
        assert fired == [(1, 1), (2, 2), (3, 3)]

    run(ploop, main())


def test_advance_lets_chains_of_wakeups_settle(ploop):
    async def main():
        ptime.pause(auto_advance=False)
        queue = asyncio.Queue()
        got = []

        async def producer():
            await asyncio.sleep(1)
            await queue.put("tick")

        async def consumer():
            item = await queue.get()
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            got.append(item)

        spawn(producer())
        spawn(consumer())
        await ptime.advance(1)
        assert got == ["tick"]

    run(ploop, main())


def test_asyncio_primitives_follow_the_virtual_clock(ploop):
    async def main():
        lp = asyncio.get_running_loop()
        ptime.pause()
        t0 = lp.time()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(forever(), 600)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(60):
                await forever()
        assert lp.time() - t0 == pytest.approx(660, abs=1e-6)

    run(ploop, main())


def test_resume_keeps_time_monotonic_and_timers_fire_in_real_time(ploop):
    async def main():
        lp = asyncio.get_running_loop()
        before = lp.time()
        ptime.pause(auto_advance=False)
        await ptime.advance(100)
        ptime.resume()
        after = lp.time()
        assert after >= before + 100
        await asyncio.wait_for(asyncio.sleep(0.01), 30)   # a real-time timer still works
        assert lp.time() >= after + 0.01
        assert lp.time() > time.monotonic() + 99          # ahead by the skipped time

    run(ploop, main())


def test_paused_context_manager_resumes(ploop):
    async def main():
        lp = asyncio.get_running_loop()
        with ptime.paused():
            assert ptime.is_paused()
            t0 = lp.time()
            await asyncio.sleep(50)
            assert lp.time() - t0 == pytest.approx(50, abs=1e-6)
        assert not ptime.is_paused()
        async with ptime.paused(auto_advance=False):
            assert ptime.is_paused()
        assert not ptime.is_paused()

    run(ploop, main())


def test_pause_before_the_loop_runs(ploop):
    ptime.pause(loop=ploop)
    t0 = ploop.time()
    run(ploop, asyncio.sleep(1000))
    assert ploop.time() - t0 == pytest.approx(1000, abs=1e-6)
    ptime.resume(loop=ploop)


@pytest.mark.parametrize("how", ["spawn_blocking", "run_in_executor", "to_thread"])
def test_blocking_calls_hold_auto_advance(ploop, how):
    async def main():
        lp = asyncio.get_running_loop()
        ptime.pause()
        order = []

        async def timer():
            await asyncio.sleep(10)
            order.append("timer")

        def blocking():
            time.sleep(0.05)                  # real work, while the loop is idle
            return how

        calls = {"spawn_blocking": lambda: spawn_blocking(blocking),
                 "run_in_executor": lambda: lp.run_in_executor(None, blocking),
                 "to_thread": lambda: asyncio.to_thread(blocking)}
        t0 = lp.time()
        spawn(timer())
        order.append(await calls[how]())
        assert lp.time() == t0                # the clock did not jump meanwhile
        await asyncio.sleep(20)
        assert order == [how, "timer"]

    run(ploop, main())


def test_auto_advance_waits_for_io_when_no_timer(ploop):
    async def main():
        lp = asyncio.get_running_loop()
        ptime.pause()
        fut = lp.create_future()
        threading.Timer(0.02, lp.call_soon_threadsafe, (fut.set_result, "io")).start()
        assert await fut == "io"              # no timer: the loop blocks on I/O

    run(ploop, main())


def test_advance_terminates_despite_a_task_that_never_waits(ploop):
    async def main():
        lp = asyncio.get_running_loop()
        ptime.pause(auto_advance=False)
        t0 = lp.time()
        fired = []
        lp.call_later(1, fired.append, 1)
        lp.call_later(2, fired.append, 2)

        async def spinner():
            while True:
                await asyncio.sleep(0)      # always ready: the loop never settles

        h = spawn(spinner())
        await ptime.advance(5)
        assert fired == [1, 2]
        assert lp.time() == pytest.approx(t0 + 5, abs=1e-9)
        h.abort()

    run(ploop, main())


# ---- a timeout and its value due at the same instant: the value wins (as in Tokio) -----

def test_timeout_of_an_equal_sleep_returns_the_value_on_a_paused_clock(ploop):
    async def answer():
        await ptime.sleep(1)
        return 42

    async def main():
        lp = asyncio.get_running_loop()
        ptime.pause()
        t0 = lp.time()
        assert await ptime.timeout(1, ptime.sleep(1)) is None
        assert await ptime.timeout(1, answer()) == 42
        assert await ptime.timeout(1, asyncio.ensure_future(answer())) == 42
        async with ptime.timeout(1) as t:
            await ptime.sleep(1)
        assert not t.expired()
        assert lp.time() - t0 == pytest.approx(4, abs=1e-6)
        with pytest.raises(Elapsed):                 # one tick later: the deadline wins
            await ptime.timeout(1, ptime.sleep(1.000001))

    run(ploop, main())


def test_timeout_tie_under_manual_advance(ploop):
    async def main():
        ptime.pause(auto_advance=False)
        outcome = []

        async def guarded():
            try:
                outcome.append(await ptime.timeout(5, asyncio.sleep(5, "value")))
            except Elapsed:
                outcome.append("elapsed")

        spawn(guarded())
        await asyncio.sleep(0)
        await ptime.advance(5)
        assert outcome == ["value"]

    run(ploop, main())


# ---- interval policies, deterministic under virtual time ----------------------------

async def _ticks_with_a_late_task(policy):
    """Ticks of a 1 s interval whose task is busy for 3.5 s after the first tick."""
    lp = asyncio.get_running_loop()
    ptime.pause()
    t0 = lp.time()
    iv = ptime.interval(1.0, missed_tick=policy)
    out = []
    out.append((await iv.tick() - t0, lp.time() - t0))
    await ptime.advance(3.5)                 # the task is late
    while len(out) < 6:
        d = await iv.tick()
        out.append((round(d - t0, 6), round(lp.time() - t0, 6)))
    return out


def test_interval_burst_catches_up(ploop):
    ticks = run(ploop, _ticks_with_a_late_task(MissedTick.BURST))
    assert ticks == [(0, 0), (1, 3.5), (2, 3.5), (3, 3.5), (4, 4), (5, 5)]


def test_interval_delay_restarts_from_the_late_tick(ploop):
    ticks = run(ploop, _ticks_with_a_late_task(MissedTick.DELAY))
    assert ticks == [(0, 0), (1, 3.5), (4.5, 4.5), (5.5, 5.5), (6.5, 6.5), (7.5, 7.5)]


def test_interval_skip_stays_on_the_grid(ploop):
    ticks = run(ploop, _ticks_with_a_late_task(MissedTick.SKIP))
    assert ticks == [(0, 0), (1, 3.5), (4, 4), (5, 5), (6, 6), (7, 7)]


def test_interval_counts_ticks_under_advance(ploop):
    async def main():
        ptime.pause(auto_advance=False)
        iv = ptime.interval(1.0)
        count = 0

        async def counter():
            nonlocal count
            async for _ in iv:
                count += 1

        h = spawn(counter())
        await ptime.advance(10)
        assert count == 11                   # ticks at 0, 1, ..., 10
        h.abort()

    run(ploop, main())


# ---- misuse --------------------------------------------------------------------------

def test_virtual_time_needs_a_pyloop_loop():
    lp = asyncio.new_event_loop()
    try:
        async def main():
            with pytest.raises(RuntimeError, match="pyloop"):
                ptime.pause()
            with pytest.raises(RuntimeError, match="pyloop"):
                await ptime.advance(1)
            with pytest.raises(RuntimeError, match="pyloop"):
                ptime.resume()
            with pytest.raises(RuntimeError, match="pyloop"):
                with ptime.paused():
                    pass
            assert ptime.is_paused() is False

        lp.run_until_complete(main())
    finally:
        lp.close()


def test_pause_resume_advance_misuse(ploop):
    async def main():
        with pytest.raises(RuntimeError, match="paused clock"):
            await ptime.advance(1)
        with pytest.raises(RuntimeError, match="not paused"):
            ptime.resume()
        ptime.pause()
        with pytest.raises(RuntimeError, match="already paused"):
            ptime.pause()
        for bad in (-1, math.nan, math.inf):
            with pytest.raises(ValueError):
                await ptime.advance(bad)
        with pytest.raises(TypeError):
            await ptime.advance("1")
        ptime.resume()

    run(ploop, main())
    with pytest.raises(RuntimeError, match="running pyloop loop"):
        ptime.pause()


def test_advance_by_the_delay_in_steps_always_fires_the_timer(ploop):
    # Deadlines are float seconds rounded up to nanoseconds: at some clock values
    # "now + 10" lands a nanosecond past "now + 9.999 + 0.001".  Across many
    # start values (each round moves the clock 10 s on) the timer must still fire.
    async def main():
        ptime.pause(auto_advance=False)
        for round_no in range(300):
            woke = []
            asyncio.get_running_loop().call_later(10, woke.append, round_no)
            await ptime.advance(9.999)
            assert woke == []
            await ptime.advance(0.001)
            assert woke == [round_no]

    run(ploop, main())
