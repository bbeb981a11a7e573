"""pyloop.task.select: the first branch wins; the others are cancelled and awaited."""

from __future__ import annotations

import asyncio
import gc
import warnings

import pytest

from pyloop.task import Selected, TaskAborted, select, spawn
from tests.api._util import run, turns


async def after(gate, value):
    await gate
    return value


def test_positional_select_returns_index_and_value(loop):
    async def main():
        lp = asyncio.get_running_loop()
        gates = [lp.create_future() for _ in range(3)]
        pending = asyncio.ensure_future(select(*(after(g, i * 10) for i, g in enumerate(gates))))
        await turns(2)
        gates[2].set_result(None)
        got = await pending
        assert got == Selected(2, 20)
        assert got.key == 2 and got.value == 20

    run(loop, main())


def test_keyword_select_returns_key(loop):
    async def main():
        lp = asyncio.get_running_loop()
        fast = lp.create_future()
        fast.set_result("pong")
        got = await select(reply=fast, timeout=asyncio.sleep(3600))
        assert got == Selected("reply", "pong")

    run(loop, main())


def test_losers_are_cancelled_and_awaited_before_return(loop):
    finished_cleanup = []

    async def loser(name):
        try:
            await asyncio.sleep(3600)
        finally:
            # A clean-up that takes several loop turns must be over when
            # select returns.
            for _ in range(3):
                await asyncio.sleep(0)
            finished_cleanup.append(name)

    async def main():
        got = await select(loser("a"), asyncio.sleep(0, "winner"), loser("b"))
        assert got == Selected(1, "winner")
        assert sorted(finished_cleanup) == ["a", "b"]

    run(loop, main())


def test_winner_exception_is_raised_after_cleanup(loop):
    cleaned = []

    async def fails():
        await asyncio.sleep(0)
        raise ValueError("winner failed")

    async def loser():
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0)
            cleaned.append(True)

    async def main():
        with pytest.raises(ValueError, match="winner failed"):
            await select(fails(), loser())
        assert cleaned == [True]

    run(loop, main())


def test_tie_goes_to_lowest_index(loop):
    async def instant(v):
        return v

    async def main():
        lp = asyncio.get_running_loop()
        done_a, done_b = lp.create_future(), lp.create_future()
        done_b.set_result("b")
        done_a.set_result("a")
        assert await select(done_a, done_b) == Selected(0, "a")
        assert await select(done_b, done_a) == Selected(0, "b")
        # Two coroutines that finish in the same loop iteration.
        assert await select(instant("x"), instant("y")) == Selected(0, "x")
        assert await select(second=instant("y"), first=instant("x")) == Selected("second", "y")

    run(loop, main())


def test_cancelling_select_cancels_and_awaits_every_branch(loop):
    cleaned = []

    async def branch(i):
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0)
            cleaned.append(i)

    async def main():
        sel = asyncio.ensure_future(select(branch(0), branch(1)))
        await turns(2)
        sel.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sel
        assert sorted(cleaned) == [0, 1]

    run(loop, main())


def test_losing_future_is_cancelled_but_losing_join_handle_keeps_running(loop):
    async def main():
        lp = asyncio.get_running_loop()
        fut = lp.create_future()
        gate = lp.create_future()
        spawned = spawn(after(gate, "spawned result"))
        got = await select(asyncio.sleep(0, "quick"), fut, spawned)
        assert got.key == 0
        assert fut.cancelled()
        assert not spawned.is_finished()
        gate.set_result(None)
        assert await spawned == "spawned result"

    run(loop, main())


def test_branch_cancelled_by_someone_else_counts_as_aborted(loop):
    async def main():
        lp = asyncio.get_running_loop()
        victim = lp.create_future()
        lp.call_soon(victim.cancel)
        with pytest.raises(TaskAborted):
            await select(victim, asyncio.sleep(3600))

    run(loop, main())


def test_loser_failing_during_cancellation_is_reported(loop):
    calls = []
    loop.set_exception_handler(lambda lp, ctx: calls.append(ctx))

    async def bad_loser():
        try:
            await asyncio.sleep(3600)
        finally:
            raise RuntimeError("clean-up failed")

    async def main():
        assert await select(asyncio.sleep(0, 1), bad_loser()) == Selected(0, 1)

    run(loop, main())
    gc.collect()
    assert len(calls) == 1
    assert isinstance(calls[0]["exception"], RuntimeError)


def test_select_bad_input(loop):
    async def body():
        pass

    async def main():
        with pytest.raises(ValueError):
            await select()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            c1, c2 = body(), body()
            with pytest.raises(TypeError):
                await select(c1, b=c2)
            c3 = body()
            with pytest.raises(TypeError):
                await select(c3, 42)
            # The rejected coroutines were closed, not left to warn.
            assert c1.cr_frame is None and c2.cr_frame is None and c3.cr_frame is None
            del c1, c2, c3
            gc.collect()

    run(loop, main())
