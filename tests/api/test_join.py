"""pyloop.task.join and try_join: every branch to the end vs. the first failure cancels the rest."""

from __future__ import annotations

import asyncio
import gc

import pytest

from pyloop.task import TaskAborted, join, spawn, try_join
from tests.api._util import run, turns


async def value_after(n, value):
    for _ in range(n):
        await asyncio.sleep(0)
    return value


async def fail_after(n, exc):
    for _ in range(n):
        await asyncio.sleep(0)
    raise exc


# ---- join ----------------------------------------------------------------------

def test_join_returns_results_in_argument_order(loop):
    async def main():
        lp = asyncio.get_running_loop()
        fut = lp.create_future()
        lp.call_soon(fut.set_result, "future")
        assert await join(value_after(5, "slow"), value_after(0, "fast"), fut) == [
            "slow", "fast", "future"]
        assert await join() == []

    run(loop, main())


def test_join_runs_every_branch_to_completion_then_raises_group(loop):
    finished = []

    async def slow_ok():
        await value_after(10, None)
        finished.append("slow")
        return "slow"

    async def main():
        with pytest.raises(ExceptionGroup) as info:
            await join(fail_after(0, ValueError("v")), slow_ok(),
                       fail_after(3, KeyError("k")))
        assert finished == ["slow"]         # not cancelled by the failures
        group = info.value
        assert [type(e) for e in group.exceptions] == [ValueError, KeyError]
        assert "2 of 3" in str(group)

    run(loop, main())


def test_join_failures_can_be_caught_with_except_star(loop):
    async def main():
        caught = []
        try:
            await join(fail_after(0, ValueError("x")), value_after(1, 1))
        except* ValueError as group:
            caught.extend(group.exceptions)
        assert len(caught) == 1

    run(loop, main())


def test_join_branch_cancelled_elsewhere_fails_with_task_aborted(loop):
    async def main():
        victim = spawn(asyncio.sleep(3600))
        asyncio.get_running_loop().call_soon(victim.abort)
        with pytest.raises(ExceptionGroup) as info:
            await join(victim, value_after(2, "ok"))
        assert [type(e) for e in info.value.exceptions] == [TaskAborted]

    run(loop, main())


def test_cancelling_join_cancels_and_awaits_branches(loop):
    cleaned = []

    async def branch(i):
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0)
            cleaned.append(i)

    async def main():
        j = asyncio.ensure_future(join(branch(0), branch(1)))
        await turns(2)
        j.cancel()
        with pytest.raises(asyncio.CancelledError):
            await j
        assert sorted(cleaned) == [0, 1]

    run(loop, main())


def test_join_rejects_non_awaitables(loop):
    async def body():
        return 1

    async def main():
        coro = body()
        with pytest.raises(TypeError):
            await join(coro, "not awaitable")
        assert coro.cr_frame is None        # closed, never started
        del coro
        gc.collect()

    run(loop, main())


# ---- try_join -------------------------------------------------------------------

def test_try_join_returns_results_when_all_succeed(loop):
    async def main():
        assert await try_join(value_after(3, "a"), value_after(0, "b")) == ["a", "b"]

    run(loop, main())


def test_try_join_first_failure_cancels_and_awaits_the_rest(loop):
    cleaned = []

    async def slow(i):
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0)
            cleaned.append(i)

    async def main():
        with pytest.raises(ValueError, match="first"):
            await try_join(slow(0), fail_after(2, ValueError("first")), slow(1))
        assert sorted(cleaned) == [0, 1]

    run(loop, main())


def test_try_join_raises_the_earliest_failure(loop):
    async def main():
        with pytest.raises(KeyError):
            await try_join(fail_after(5, ValueError("later")), fail_after(1, KeyError("earlier")))

    calls = []
    loop.set_exception_handler(lambda lp, ctx: calls.append(ctx))
    run(loop, main())
    gc.collect()
    assert calls == []      # the later branch was cancelled before it could fail


def test_cancelling_try_join_cancels_branches(loop):
    cleaned = []

    async def branch():
        try:
            await asyncio.sleep(3600)
        finally:
            cleaned.append(True)

    async def main():
        t = asyncio.ensure_future(try_join(branch(), branch()))
        await turns(2)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        assert cleaned == [True, True]

    run(loop, main())


def test_try_join_rejects_non_awaitables(loop):
    async def main():
        with pytest.raises(TypeError):
            await try_join(1, 2)

    run(loop, main())


def test_join_of_failed_handles_retrieves_their_failures(loop):
    calls = []
    loop.set_exception_handler(lambda lp, ctx: calls.append(ctx))

    async def main():
        h = spawn(fail_after(1, ValueError("seen")))
        with pytest.raises(ExceptionGroup):
            await join(h, value_after(1, 1))
        del h

    run(loop, main())
    gc.collect()
    assert calls == []          # the join saw the failure: nothing left to report
