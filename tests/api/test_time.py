"""pyloop.time on any loop: sleep, sleep_until, timeout/timeout_at, interval (real clock)."""

from __future__ import annotations

import asyncio
import datetime
import gc
import math
import warnings

import pytest

from pyloop.time import Elapsed, MissedTick, Timeout, interval, sleep, sleep_until, timeout, timeout_at
from tests.api._util import run

# How far below a deadline a loop's time() may read once the deadline has passed: a float
# rounding error (uvloop's millisecond clock), never a real early wake-up.
CLOCK_SLACK = 1e-9


async def forever():
    await asyncio.get_running_loop().create_future()


# ---- sleep / sleep_until ----------------------------------------------------------

def test_sleep_waits_at_least_delay(loop):
    async def main():
        lp = asyncio.get_running_loop()
        t0 = lp.time()
        await sleep(0.02)
        assert lp.time() - t0 >= 0.02 - CLOCK_SLACK
        t0 = lp.time()
        await sleep(datetime.timedelta(milliseconds=20))
        assert lp.time() - t0 >= 0.02 - CLOCK_SLACK
        await sleep(0)

    run(loop, main())


@pytest.mark.parametrize("bad, exc", [(-0.1, ValueError), (math.nan, ValueError),
                                      ("1", TypeError), (None, TypeError),
                                      (datetime.timedelta(seconds=-1), ValueError)])
def test_sleep_rejects_bad_delays(loop, bad, exc):
    async def main():
        with pytest.raises(exc):
            await sleep(bad)

    run(loop, main())


def test_sleep_forever_can_be_cancelled(loop):
    async def main():
        t = asyncio.ensure_future(sleep(math.inf))
        await asyncio.sleep(0)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t

    run(loop, main())


def test_sleep_until_deadline(loop):
    async def main():
        lp = asyncio.get_running_loop()
        deadline = lp.time() + 0.02
        await sleep_until(deadline)
        assert lp.time() >= deadline - CLOCK_SLACK
        await sleep_until(lp.time() - 10)        # in the past: returns
        with pytest.raises(ValueError):
            await sleep_until(math.nan)
        with pytest.raises(TypeError):
            await sleep_until("soon")

    run(loop, main())


# ---- timeout ---------------------------------------------------------------------

def test_timeout_raises_elapsed_a_timeout_error(loop):
    async def main():
        with pytest.raises(Elapsed) as info:
            async with timeout(0.01) as t:
                await forever()
        assert isinstance(info.value, TimeoutError)
        assert isinstance(info.value, asyncio.TimeoutError)
        assert isinstance(info.value.__cause__, asyncio.CancelledError)
        assert t.expired()
        assert asyncio.current_task().cancelling() == 0

    run(loop, main())


def test_timeout_not_reached_changes_nothing(loop):
    async def main():
        lp = asyncio.get_running_loop()
        async with timeout(30) as t:
            await asyncio.sleep(0)
        assert not t.expired()
        assert t.deadline == pytest.approx(lp.time() + 30, abs=5)
        await asyncio.sleep(0.01)              # the timer was cancelled: no stray cancel
        assert asyncio.current_task().cancelling() == 0

    run(loop, main())


def test_timeout_wrapping_an_awaitable(loop):
    cleaned = []

    async def slow():
        try:
            await forever()
        finally:
            cleaned.append(True)

    async def main():
        assert await timeout(30, asyncio.sleep(0, "quick")) == "quick"
        with pytest.raises(Elapsed):
            await timeout(0.01, slow())
        assert cleaned == [True]
        lp = asyncio.get_running_loop()
        assert await timeout_at(lp.time() + 30, asyncio.sleep(0, 7)) == 7

    run(loop, main())


def test_timeout_at_past_deadline_expires_at_first_await(loop):
    async def main():
        lp = asyncio.get_running_loop()
        with pytest.raises(Elapsed):
            async with timeout_at(lp.time() - 1):
                await asyncio.sleep(0)
                await asyncio.sleep(0)

    run(loop, main())


def test_timeout_none_never_expires_until_rescheduled(loop):
    async def main():
        lp = asyncio.get_running_loop()
        async with timeout(None) as t:
            assert t.deadline is None
            await asyncio.sleep(0.01)
        assert not t.expired()
        with pytest.raises(Elapsed):
            async with timeout(None) as t:
                t.reschedule(lp.time() + 0.01)
                await forever()

    run(loop, main())


def test_reschedule_extends_and_shortens(loop):
    async def main():
        lp = asyncio.get_running_loop()
        async with timeout(0.01) as t:
            t.reschedule(lp.time() + 30)
            await asyncio.sleep(0.05)          # past the original deadline
        assert not t.expired()
        with pytest.raises(Elapsed):
            async with timeout(30) as t:
                t.reschedule(lp.time() + 0.01)
                await forever()
        with pytest.raises(RuntimeError):
            t.reschedule(lp.time() + 1)          # expired
        with pytest.raises(ValueError):
            timeout(1).reschedule(math.nan)

    run(loop, main())


def test_nested_inner_timeout_expires_first(loop):
    async def main():
        async with timeout(30) as outer:
            with pytest.raises(Elapsed):
                async with timeout(0.01) as inner:
                    await forever()
            assert inner.expired() and not outer.expired()
            await asyncio.sleep(0)             # outer block goes on normally
        assert asyncio.current_task().cancelling() == 0

    run(loop, main())


def test_nested_outer_timeout_expires_first(loop):
    async def main():
        inner = None
        with pytest.raises(Elapsed):
            async with timeout(0.01) as outer:
                async with timeout(30) as inner:
                    await forever()
        assert outer.expired() and not inner.expired()

    run(loop, main())


def test_nested_equal_deadlines_the_outer_one_raises(loop):
    async def main():
        lp = asyncio.get_running_loop()
        deadline = lp.time() + 0.01
        with pytest.raises(Elapsed):
            async with timeout_at(deadline) as outer:
                try:
                    async with timeout_at(deadline):
                        await forever()
                except Elapsed:
                    pytest.fail("the inner timeout must let the outer one's cancel through")
        assert outer.expired()
        assert asyncio.current_task().cancelling() == 0

    run(loop, main())


def test_outer_cancellation_is_not_turned_into_timeout(loop):
    entered = []

    async def body():
        async with timeout(30):
            entered.append(True)
            await forever()

    async def racing():
        # The timeout fires in the same iteration as an outside cancel.
        lp = asyncio.get_running_loop()
        async with timeout_at(lp.time() - 1):
            asyncio.current_task().cancel()
            await asyncio.sleep(1)

    async def main():
        t = asyncio.ensure_future(body())
        while not entered:
            await asyncio.sleep(0)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        t = asyncio.ensure_future(racing())
        with pytest.raises(asyncio.CancelledError):
            await t
        assert t.cancelled()

    run(loop, main())


def test_body_swallowing_the_cancel_leaves_no_pending_cancel(loop):
    async def main():
        async with timeout(0.01) as t:
            try:
                await forever()
            except asyncio.CancelledError:
                pass
        assert t.expired()
        assert asyncio.current_task().cancelling() == 0
        await asyncio.sleep(0)                 # would raise if a cancel was left

    run(loop, main())


def test_timeout_misuse(loop):
    async def main():
        t = timeout(1)
        async with t:
            pass
        with pytest.raises(RuntimeError):
            async with t:
                pass

    run(loop, main())
    with pytest.raises(RuntimeError):
        timeout(1)                           # no running loop


@pytest.mark.parametrize("bad, exc", [(-1, ValueError), (math.nan, ValueError), ("1", TypeError)])
def test_timeout_rejects_bad_delays_and_closes_the_coroutine(loop, bad, exc):
    async def body():
        pass

    async def main():
        with pytest.raises(exc):
            timeout(bad)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            coro = body()
            with pytest.raises(exc):
                timeout(bad, coro)
            assert coro.cr_frame is None
            del coro
            gc.collect()
        with pytest.raises(TypeError):
            timeout(1, 42)
        with pytest.raises(ValueError):
            timeout_at(math.nan)

    run(loop, main())


def test_timeout_outside_a_task_is_rejected(loop):
    errors = []

    async def enter(t):
        async with t:
            pass

    def plain_callback(t):
        # A coroutine driven by hand from a callback: a loop runs, no task does.
        coro = enter(t)
        try:
            coro.send(None)
        except RuntimeError as exc:
            errors.append(exc)

    async def main():
        t = timeout(1)
        asyncio.get_running_loop().call_soon(plain_callback, t)
        await asyncio.sleep(0.01)
        assert isinstance(t, Timeout)

    run(loop, main())
    assert len(errors) == 1 and "inside a task" in str(errors[0])


def test_elapsed_is_caught_by_asyncio_wait_for_users(loop):
    async def main():
        try:
            async with timeout(0.01):
                await forever()
        except asyncio.TimeoutError:
            return "caught"

    assert run(loop, main()) == "caught"


# ---- timeout: a tie between the deadline and the value (Tokio: the value wins) -----------
# The deadline and the awaited thing are timers due at the very same loop time,
# so every loop runs them in the same iteration whatever the machine's load.

def test_tie_goes_to_the_value_awaitable_form(loop):
    async def value_at(when, v):
        await sleep_until(when)
        return v

    async def main():
        lp = asyncio.get_running_loop()
        d = lp.time() + 0.01
        assert await timeout_at(d, sleep_until(d)) is None
        d = lp.time() + 0.01
        assert await timeout_at(d, value_at(d, 42)) == 42
        assert asyncio.current_task().cancelling() == 0
        await asyncio.sleep(0)                 # no cancel was left behind

    run(loop, main())


def test_tie_goes_to_the_value_block_form(loop):
    async def main():
        lp = asyncio.get_running_loop()
        d = lp.time() + 0.01
        async with timeout_at(d) as t:
            await sleep_until(d)
        assert not t.expired()
        assert asyncio.current_task().cancelling() == 0
        await asyncio.sleep(0)

    run(loop, main())


def test_tie_through_awaited_tasks(loop):
    async def value_at(when, v):
        await sleep_until(when)
        return v

    async def main():
        lp = asyncio.get_running_loop()
        d = lp.time() + 0.01
        # The inner task's timer is set after the deadline's: the completion
        # travels up two links (inner task, then the wrapping task) after it.
        async def wrapped():
            return await asyncio.ensure_future(value_at(d, "deep"))
        assert await timeout_at(d, asyncio.ensure_future(wrapped())) == "deep"
        d = lp.time() + 0.01
        early = asyncio.ensure_future(value_at(d, "early"))   # timer set before the deadline's
        await asyncio.sleep(0)
        assert await timeout_at(d, early) == "early"

    run(loop, main())


def test_tie_buys_one_step_only(loop):
    async def main():
        lp = asyncio.get_running_loop()
        d = lp.time() + 0.01
        steps = []
        with pytest.raises(Elapsed):
            async with timeout_at(d) as t:
                await sleep_until(d)
                steps.append("woke")           # the value's step runs...
                await forever()                # ...and the next wait is cut short
        assert steps == ["woke"] and t.expired()

    run(loop, main())


def test_no_grace_for_a_runnable_block_or_fresh_progress(loop):
    async def main():
        # A bare yield is not a value (Tokio's yield_now is Pending).
        with pytest.raises(Elapsed):
            await timeout(0, asyncio.sleep(0))
        # A ping-pong with another task keeps the block busy forever: it still
        # times out, the grace being bounded.
        ping, pong = asyncio.Queue(), asyncio.Queue()

        async def peer():
            while True:
                await pong.put(await ping.get())

        helper = asyncio.ensure_future(peer())
        rounds = 0
        with pytest.raises(Elapsed):
            async with timeout(0.01):
                while True:
                    await ping.put(rounds)
                    rounds = await pong.get() + 1
        assert rounds > 0
        helper.cancel()

    run(loop, main())


def test_reschedule_during_the_tie_decision(loop):
    async def main():
        lp = asyncio.get_running_loop()
        d = lp.time() + 0.01
        async with timeout_at(d) as t:
            # A timer due with the deadline moves it: the pending decision is dropped.
            lp.call_at(d, t.reschedule, d + 30)
            await asyncio.sleep(0.05)
        assert not t.expired() and t.deadline == d + 30

    run(loop, main())


# ---- interval (real clock) -----------------------------------------------------------

def test_interval_first_tick_immediate_then_every_period(loop):
    async def main():
        lp = asyncio.get_running_loop()
        iv = interval(0.01)
        start = lp.time()
        first = await iv.tick()
        assert first <= start + 1e-9 and lp.time() - start < 5   # no waiting
        deadlines = [first]
        async for d in iv:
            deadlines.append(d)
            if len(deadlines) == 4:
                break
        # Burst (the default) reports the schedule itself, whatever the lateness.
        assert deadlines == pytest.approx([first + i * 0.01 for i in range(4)], abs=1e-9)
        assert lp.time() >= deadlines[-1] - CLOCK_SLACK

    run(loop, main())


def test_interval_start_and_reset(loop):
    async def main():
        lp = asyncio.get_running_loop()
        start = lp.time() + 0.02
        iv = interval(0.01, start=start)
        assert await iv.tick() == start
        assert lp.time() >= start - CLOCK_SLACK
        iv.reset()
        assert iv.next_deadline == pytest.approx(lp.time() + 0.01, abs=5)
        assert iv.next_deadline > start

    run(loop, main())


def test_interval_tick_cancelled_loses_no_tick(loop):
    # A period no loaded machine can overrun between the two steps (a short one
    # made this flaky: 20 ms late, the tick was due before it could be cancelled).
    async def main():
        iv = interval(3600)
        first = await iv.tick()
        t = asyncio.ensure_future(iv.tick())
        await asyncio.sleep(0)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        # The cancelled tick() took nothing: the next tick is still the one it waited for.
        assert iv.next_deadline == pytest.approx(first + 3600, abs=1e-9)

    run(loop, main())


@pytest.mark.parametrize("bad, exc", [(0, ValueError), (-1, ValueError), (math.nan, ValueError),
                                      (math.inf, ValueError), ("1", TypeError)])
def test_interval_rejects_bad_periods(loop, bad, exc):
    async def main():
        with pytest.raises(exc):
            interval(bad)

    run(loop, main())


def test_interval_rejects_bad_policy_and_start(loop):
    async def main():
        with pytest.raises(TypeError):
            interval(1, missed_tick="skip")
        with pytest.raises(ValueError):
            interval(1, start=math.nan)
        assert interval(1, missed_tick=MissedTick.SKIP).missed_tick is MissedTick.SKIP

    run(loop, main())
