"""pyloop.task.JoinSet: completion order, emptiness, abort, shutdown and `async with` exit."""

from __future__ import annotations

import asyncio
import gc

import pytest

from pyloop.task import JoinSet, TaskAborted
from tests.api._util import run, turns


async def wait_for(fut):
    return await fut


def test_join_next_returns_results_in_completion_order(loop):
    async def main():
        lp = asyncio.get_running_loop()
        gates = [lp.create_future() for _ in range(4)]
        js = JoinSet()
        for i, gate in enumerate(gates):
            js.spawn(_echo(gate, i))
        assert len(js) == 4
        await turns(2)
        got = []
        for i in (2, 0, 3, 1):
            gates[i].set_result(None)
            got.append(await js.join_next())
        assert got == [2, 0, 3, 1]
        assert len(js) == 0 and not js
        assert await js.join_next() is None      # empty: None at once

    async def _echo(gate, value):
        await gate
        return value

    run(loop, main())


def test_finished_tasks_count_until_joined(loop):
    async def main():
        js = JoinSet()
        js.spawn(asyncio.sleep(0, "a"))
        js.spawn(asyncio.sleep(0, "b"))
        await turns(3)
        assert len(js) == 2                 # finished, not yet joined
        assert await js.join_next() == "a"
        assert len(js) == 1
        assert await js.join_next() == "b"
        assert js.is_empty()

    run(loop, main())


def test_join_next_raises_member_exception_and_keeps_the_rest(loop):
    async def main():
        lp = asyncio.get_running_loop()
        gate = lp.create_future()

        async def fail():
            raise ValueError("member failed")

        async def ok():
            await gate
            return "ok"

        js = JoinSet()
        js.spawn(fail())
        js.spawn(ok())
        with pytest.raises(ValueError, match="member failed"):
            await js.join_next()
        assert len(js) == 1
        gate.set_result(None)
        assert await js.join_next() == "ok"

    run(loop, main())


def test_async_for_yields_every_result(loop):
    async def main():
        async with JoinSet() as js:
            for n in range(10):
                js.spawn(_square(n))
            results = [r async for r in js]
        assert sorted(results) == [n * n for n in range(10)]

    async def _square(n):
        for _ in range(n % 3):
            await asyncio.sleep(0)
        return n * n

    run(loop, main())


def test_leaving_async_with_aborts_and_awaits_what_is_left(loop):
    cleaned = []

    async def forever(i):
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0)          # awaiting clean-up must finish too
            cleaned.append(i)

    async def main():
        async with JoinSet() as js:
            for i in range(3):
                js.spawn(forever(i))
            await turns(2)
        assert sorted(cleaned) == [0, 1, 2]
        assert len(js) == 0

    run(loop, main())


def test_exception_inside_async_with_aborts_members_and_propagates(loop):
    cleaned = []

    async def forever():
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0)
            cleaned.append(True)

    async def main():
        with pytest.raises(LookupError, match="body failed"):
            async with JoinSet() as js:
                js.spawn(forever())
                js.spawn(forever())
                await turns(2)
                raise LookupError("body failed")
        assert cleaned == [True, True]

    run(loop, main())


def test_abort_all_then_join_next_raises_task_aborted(loop):
    async def main():
        js = JoinSet()
        js.spawn(asyncio.sleep(3600))
        await turns(1)
        js.abort_all()
        assert len(js) == 1                 # aborted members stay until joined
        with pytest.raises(TaskAborted):
            await js.join_next()
        assert not js

    run(loop, main())


def test_handle_from_joinset_spawn_aborts_one_member(loop):
    async def main():
        js = JoinSet()
        doomed = js.spawn(asyncio.sleep(3600))
        js.spawn(asyncio.sleep(0, "kept"))
        doomed.abort()
        outcomes = []
        while js:
            try:
                outcomes.append(await js.join_next())
            except TaskAborted:
                outcomes.append("aborted")
        assert sorted(outcomes) == ["aborted", "kept"]

    run(loop, main())


def test_shutdown_reports_unjoined_failure_once(loop):
    calls = []
    loop.set_exception_handler(lambda lp, ctx: calls.append(ctx))

    async def fail():
        raise ZeroDivisionError("nobody joined me")

    async def main():
        js = JoinSet()
        js.spawn(fail())
        js.spawn(asyncio.sleep(3600))
        await turns(3)
        await js.shutdown()
        assert not js

    run(loop, main())
    gc.collect()
    assert len(calls) == 1
    assert isinstance(calls[0]["exception"], ZeroDivisionError)


def test_concurrent_joiners_each_get_a_different_result(loop):
    async def main():
        lp = asyncio.get_running_loop()
        gates = [lp.create_future() for _ in range(2)]
        js = JoinSet()
        for i, gate in enumerate(gates):
            js.spawn(_after(gate, i))
        a = asyncio.ensure_future(js.join_next())
        b = asyncio.ensure_future(js.join_next())
        await turns(2)
        gates[1].set_result(None)
        gates[0].set_result(None)
        assert sorted(await asyncio.gather(a, b)) == [0, 1]

    async def _after(gate, value):
        await gate
        return value

    run(loop, main())


def test_cancelled_join_next_leaves_members_in_the_set(loop):
    async def main():
        lp = asyncio.get_running_loop()
        gate = lp.create_future()
        js = JoinSet()
        js.spawn(wait_for(gate))
        joiner = asyncio.ensure_future(js.join_next())
        await turns(2)
        joiner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await joiner
        assert len(js) == 1
        gate.set_result("later")
        assert await js.join_next() == "later"

    run(loop, main())


def test_joinset_rejects_non_awaitables(loop):
    async def main():
        js = JoinSet()
        with pytest.raises(TypeError):
            js.spawn(3)
        assert not js

    run(loop, main())


def test_dropping_a_joinset_aborts_its_tasks(loop):
    cleaned = []

    async def forever():
        try:
            await asyncio.sleep(3600)
        finally:
            cleaned.append(True)

    async def main():
        js = JoinSet()
        handle = js.spawn(forever())
        await turns(2)
        del js
        gc.collect()
        with pytest.raises(TaskAborted):
            await handle
        assert cleaned == [True]

    run(loop, main())
