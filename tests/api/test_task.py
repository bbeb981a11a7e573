"""pyloop.task.spawn / JoinHandle / yield_now / spawn_blocking, on asyncio's loop and pyloop's."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import threading
import warnings
import weakref

import pytest

from pyloop.task import JoinHandle, TaskAborted, spawn, spawn_blocking, yield_now
from tests.api._util import run, turns


def collect_handler_calls(loop):
    calls = []
    loop.set_exception_handler(lambda lp, ctx: calls.append(ctx))
    return calls


# ---- spawn and JoinHandle --------------------------------------------------------

def test_spawn_returns_result_through_handle(loop):
    async def square(x):
        await asyncio.sleep(0)
        return x * x

    async def main():
        handle = spawn(square(7), name="sq")
        assert isinstance(handle, JoinHandle)
        assert handle.name == "sq"
        assert not handle.is_finished()
        assert await handle == 49
        assert handle.is_finished() and not handle.cancelled()
        assert await handle == 49          # awaitable again
        assert "finished" in repr(handle)

    run(loop, main())


def test_handle_raises_task_exception(loop):
    async def boom():
        await asyncio.sleep(0)
        raise ValueError("boom")

    async def main():
        handle = spawn(boom())
        with pytest.raises(ValueError, match="boom"):
            await handle
        assert handle.is_finished() and not handle.cancelled()

    calls = collect_handler_calls(loop)
    run(loop, main())
    gc.collect()
    assert calls == []          # retrieved by the await: nothing to report


def test_spawned_task_survives_dropped_handle_and_gc(loop):
    # The classic asyncio trap: a task waiting on a future only it references
    # is garbage, unless something holds the task.
    results = []
    fut_refs = []

    async def worker():
        fut = asyncio.get_running_loop().create_future()
        fut_refs.append(weakref.ref(fut))
        results.append(await fut)

    async def main():
        spawn(worker())                   # handle dropped at once
        await turns(2)
        gc.collect()
        fut = fut_refs[0]()
        assert fut is not None, "the spawned task was garbage-collected"
        fut.set_result("done")
        await turns(3)

    run(loop, main())
    assert results == ["done"]


def test_multiple_awaiters_get_same_result(loop):
    async def main():
        gate = asyncio.get_running_loop().create_future()

        async def work():
            return await gate

        handle = spawn(work())
        waiters = [asyncio.ensure_future(_await(handle)) for _ in range(3)]
        await turns(2)
        gate.set_result(5)
        assert await asyncio.gather(*waiters) == [5, 5, 5]

    async def _await(h):
        return await h

    run(loop, main())


def test_cancelling_the_awaiter_does_not_cancel_the_spawned_task(loop):
    async def main():
        gate = asyncio.get_running_loop().create_future()

        async def work():
            return await gate

        handle = spawn(work())

        async def joiner():
            return await handle

        j = asyncio.ensure_future(joiner())
        await turns(2)
        j.cancel()
        with pytest.raises(asyncio.CancelledError):
            await j
        assert not handle.is_finished()
        gate.set_result("still here")
        assert await handle == "still here"

    run(loop, main())


def test_spawn_accepts_any_awaitable(loop):
    class Awaitable:
        def __await__(self):
            yield from asyncio.sleep(0).__await__()
            return "custom"

    async def main():
        fut = asyncio.get_running_loop().create_future()
        h_fut = spawn(fut)
        h_custom = spawn(Awaitable())
        fut.set_result("future")
        assert await h_fut == "future"
        assert await h_custom == "custom"

    run(loop, main())


# ---- abort -------------------------------------------------------------------

def test_abort_cancels_task_and_join_raises_task_aborted(loop):
    cleaned = []

    async def sleeper():
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0)       # clean-up that itself awaits
            cleaned.append(True)

    async def main():
        handle = spawn(sleeper())
        await turns(2)
        assert handle.abort() is True
        with pytest.raises(TaskAborted):
            await handle
        assert cleaned == [True]
        assert handle.cancelled() and handle.is_finished()
        assert handle.abort() is False   # already finished
        assert "aborted" in repr(handle)

    calls = collect_handler_calls(loop)
    run(loop, main())
    gc.collect()
    assert calls == []                   # an abort is not a failure


def test_task_aborted_is_an_error_not_a_cancellation(loop):
    # A task joining an aborted task fails with TaskAborted; it is not itself
    # cancelled (which a CancelledError escaping from it would mean).
    async def main():
        victim = spawn(asyncio.sleep(3600))

        async def joiner():
            await victim

        j = spawn(joiner())
        await turns(2)
        victim.abort()
        with pytest.raises(TaskAborted):
            await j
        assert not j.cancelled()
        assert not issubclass(TaskAborted, asyncio.CancelledError)

    run(loop, main())


def test_abort_before_first_step_never_runs_the_body(loop):
    started = []

    async def body():
        started.append(True)

    async def main():
        handle = spawn(body())
        handle.abort()
        with pytest.raises(TaskAborted):
            await handle
        assert started == []

    run(loop, main())


# ---- unretrieved failures ----------------------------------------------------------

def test_failure_of_dropped_handle_reported_once(loop):
    async def boom():
        await asyncio.sleep(0)
        raise KeyError("lost")

    async def main():
        spawn(boom(), name="lost-task")  # handle dropped before the failure
        await turns(5)
        gc.collect()
        await turns(2)

    calls = collect_handler_calls(loop)
    run(loop, main())
    gc.collect()
    assert len(calls) == 1
    ctx = calls[0]
    assert isinstance(ctx["exception"], KeyError)
    assert "lost-task" in ctx["message"]


def test_failure_reported_once_when_handle_dropped_after_failure(loop):
    async def boom():
        raise RuntimeError("late drop")

    calls = collect_handler_calls(loop)

    async def main():
        handle = spawn(boom())
        await turns(3)
        assert handle.is_finished()
        assert calls == []               # the handle might still be awaited
        del handle
        gc.collect()
        assert len(calls) == 1
        await turns(2)

    run(loop, main())
    gc.collect()
    assert len(calls) == 1
    assert isinstance(calls[0]["exception"], RuntimeError)


# ---- bad input ---------------------------------------------------------------

def test_spawn_rejects_non_awaitables(loop):
    async def main():
        for bad in (42, None, lambda: None, "coro"):
            with pytest.raises(TypeError):
                spawn(bad)

    run(loop, main())


def test_spawn_without_running_loop_raises_and_closes_coroutine():
    async def body():
        pass

    coro = body()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a "never awaited" warning would fail here
        with pytest.raises(RuntimeError):
            spawn(coro)
        assert coro.cr_frame is None    # closed
        del coro
        gc.collect()


# ---- yield_now ---------------------------------------------------------------

def test_yield_now_lets_other_ready_tasks_run(loop):
    order = []

    async def worker(name):
        for i in range(3):
            order.append((name, i))
            await yield_now()

    async def main():
        a = spawn(worker("a"))
        b = spawn(worker("b"))
        await a
        await b

    run(loop, main())
    assert order == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2)]


# ---- spawn_blocking ------------------------------------------------------------

REQUEST_ID = contextvars.ContextVar("REQUEST_ID", default=None)


def test_spawn_blocking_runs_in_another_thread_with_context(loop):
    def work(x, *, scale):
        return threading.get_ident(), REQUEST_ID.get(), x * scale

    async def main():
        REQUEST_ID.set("req-1")
        handle = spawn_blocking(work, 4, scale=10)
        assert isinstance(handle, JoinHandle)
        ident, rid, value = await handle
        assert ident != threading.get_ident()
        assert rid == "req-1"
        assert value == 40

    run(loop, main())


def test_spawn_blocking_propagates_exceptions(loop):
    def fails():
        raise OSError(5, "disk on fire")

    async def main():
        with pytest.raises(OSError, match="disk on fire"):
            await spawn_blocking(fails)

    run(loop, main())


def test_spawn_blocking_rejects_bad_callables(loop):
    async def coro_fn():
        pass

    async def main():
        with pytest.raises(TypeError):
            spawn_blocking(42)
        with pytest.raises(TypeError):
            spawn_blocking(coro_fn)

    run(loop, main())
