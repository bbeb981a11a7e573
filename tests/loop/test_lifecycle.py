"""run_until_complete / run_forever / stop / close, re-entrancy, and the asyncio APIs on top."""

import asyncio
import contextvars
import sys
import threading

import pytest

from ._util import TIMEOUT, run, run_forever

# --------------------------------------------------------------------------- running


def test_run_until_complete_returns_result(loop):
    async def main():
        await asyncio.sleep(0)
        return 42

    assert loop.run_until_complete(main()) == 42


def test_run_until_complete_accepts_futures_and_tasks(loop):
    fut = loop.create_future()
    loop.call_soon(fut.set_result, "fut")
    assert loop.run_until_complete(fut) == "fut"

    async def main():
        return "task"

    task = loop.create_task(main())
    assert loop.run_until_complete(task) == "task"


def test_run_until_complete_accepts_other_awaitables(loop):
    class Awaitable:
        def __await__(self):
            yield from asyncio.sleep(0).__await__()
            return "awaited"

    assert loop.run_until_complete(Awaitable()) == "awaited"


def test_run_until_complete_on_done_future_returns_at_once(loop):
    fut = loop.create_future()
    fut.set_result(7)
    assert loop.run_until_complete(fut) == 7


def test_run_until_complete_raises_the_coroutine_exception(loop):
    class Boom(Exception):
        pass

    async def main():
        await asyncio.sleep(0)
        raise Boom("x")

    with pytest.raises(Boom):
        loop.run_until_complete(main())
    # The loop is still usable.
    assert run(loop, asyncio.sleep(0, "again")) == "again"


def test_run_until_complete_propagates_cancellation(loop):
    fut = loop.create_future()
    loop.call_soon(fut.cancel)
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(fut)


def test_run_until_complete_rejects_non_awaitables(loop):
    with pytest.raises(TypeError):
        loop.run_until_complete(42)


def test_run_until_complete_rejects_future_of_another_loop(loop, loop_factory):
    other = loop_factory()
    try:
        fut = other.create_future()
        with pytest.raises(ValueError):
            loop.run_until_complete(fut)
    finally:
        other.close()


def test_is_running_and_is_closed(loop):
    assert not loop.is_running()
    assert not loop.is_closed()
    seen = []

    async def main():
        seen.append(loop.is_running())

    loop.run_until_complete(main())
    loop.call_soon(lambda: seen.append(loop.is_running()))
    loop.call_soon(loop.stop)
    run_forever(loop)
    assert seen == [True, True]
    assert not loop.is_running()
    loop.close()
    assert loop.is_closed()
    assert not loop.is_running()


def test_run_forever_until_stop(loop):
    out = []

    def tick(n):
        out.append(n)
        if n == 10:
            loop.stop()
        else:
            loop.call_soon(tick, n + 1)

    loop.call_soon(tick, 0)
    run_forever(loop)
    assert out == list(range(11))
    assert not loop.is_running()


def test_loop_can_be_run_again_after_stop(loop):
    for i in range(5):
        out = []
        loop.call_soon(out.append, i)
        loop.call_soon(loop.stop)
        run_forever(loop)
        assert out == [i]
    assert run(loop, asyncio.sleep(0, "ok")) == "ok"


def test_stop_before_run_forever_runs_one_iteration(loop):
    out = []
    loop.call_soon(out.append, 1)
    loop.stop()
    loop.call_soon(out.append, 2)
    loop.run_forever()  # must return by itself
    assert out == [1, 2]
    assert not loop.is_running()
    # The stop request was consumed: the next run needs its own stop.
    loop.call_soon(out.append, 3)
    loop.call_soon(loop.stop)
    run_forever(loop)
    assert out == [1, 2, 3]


def test_stop_before_run_forever_with_nothing_scheduled_returns(loop):
    loop.stop()
    loop.run_forever()  # one iteration with no work: must not block
    assert not loop.is_running()


def test_stop_runs_current_batch_and_defers_new_callbacks(loop):
    # Documented: stop() inside run_forever finishes the current batch of
    # callbacks; callbacks they schedule run on the next run.
    out = []

    def first():
        out.append("first")
        loop.call_soon(out.append, "next-iteration")

    loop.call_soon(first)
    loop.call_soon(loop.stop)
    loop.call_soon(out.append, "same-batch")
    run_forever(loop)
    assert out == ["first", "same-batch"]
    loop.call_soon(loop.stop)
    run_forever(loop)
    assert out == ["first", "same-batch", "next-iteration"]


def test_stop_called_twice_only_stops_once(loop):
    loop.call_soon(loop.stop)
    loop.call_soon(loop.stop)
    run_forever(loop)
    out = []
    loop.call_soon(out.append, "ran")
    loop.call_soon(loop.stop)
    run_forever(loop)
    assert out == ["ran"]


def test_stopped_run_keeps_pending_tasks_for_the_next_run(loop):
    steps = []

    async def worker():
        steps.append(1)
        await asyncio.sleep(0)
        steps.append(2)
        await asyncio.sleep(0)
        steps.append(3)
        return "done"

    task = loop.create_task(worker())
    loop.call_soon(loop.stop)
    run_forever(loop)
    assert not task.done()
    assert run(loop, task) == "done"
    assert steps == [1, 2, 3]


def test_event_loop_stopped_before_future_completed(loop):
    fut = loop.create_future()
    loop.call_soon(loop.stop)
    with pytest.raises(RuntimeError, match="Event loop stopped before Future completed"):
        loop.run_until_complete(fut)
    assert not loop.is_running()
    loop.call_soon(fut.set_result, 1)
    assert run(loop, fut) == 1


def test_abandoned_run_until_complete_future_does_not_stop_a_later_run(loop):
    # After "stopped before Future completed", that future finishing later must
    # not stop an unrelated run_forever().
    fut = loop.create_future()
    loop.call_soon(loop.stop)
    with pytest.raises(RuntimeError):
        loop.run_until_complete(fut)
    out = []
    loop.call_soon(fut.set_result, "late")
    loop.call_later(0.01, out.append, "still-running")
    loop.call_later(0.02, loop.stop)
    run_forever(loop)
    assert out == ["still-running"]


# --------------------------------------------------------------------------- re-entrancy


def test_run_forever_while_running_raises(loop):
    errors = []

    def reenter():
        try:
            loop.run_forever()
        except RuntimeError as e:
            errors.append(e)
        loop.stop()

    loop.call_soon(reenter)
    run_forever(loop)
    assert len(errors) == 1
    assert "already running" in str(errors[0])


def test_run_until_complete_while_running_raises(loop):
    async def inner():
        return 1

    async def main():
        coro = inner()
        try:
            with pytest.raises(RuntimeError, match="already running"):
                loop.run_until_complete(coro)
        finally:
            coro.close()
        return "outer-ok"

    assert run(loop, main()) == "outer-ok"
    assert run(loop, inner()) == 1


def test_running_another_loop_in_the_same_thread_raises(loop, loop_factory):
    other = loop_factory()

    async def inner():
        return 1

    async def main():
        coro = inner()
        try:
            with pytest.raises(RuntimeError):
                other.run_until_complete(coro)
        finally:
            coro.close()
        with pytest.raises(RuntimeError):
            other.run_forever()
        return "ok"

    try:
        assert run(loop, main()) == "ok"
        assert not other.is_running()
        assert run(other, inner()) == 1
    finally:
        other.close()


def test_loops_in_different_threads_run_concurrently(loop, loop_factory):
    other = loop_factory()
    result = []

    def thread_main():
        async def main():
            return asyncio.get_running_loop() is other

        result.append(other.run_until_complete(main()))

    async def main():
        t = threading.Thread(target=thread_main)
        t.start()
        await loop.run_in_executor(None, t.join, TIMEOUT)

    try:
        run(loop, main())
    finally:
        other.close()
    assert result == [True]


def test_close_running_loop_raises(loop):
    errors = []

    def try_close():
        try:
            loop.close()
        except RuntimeError as e:
            errors.append(e)
        loop.stop()

    loop.call_soon(try_close)
    run_forever(loop)
    assert len(errors) == 1
    assert not loop.is_closed()


def test_closed_attribute_follows_close(loop):
    """asyncio's loops have a ``_closed`` that code in the wild reads (uvloop's test_base.py)."""
    assert loop._closed is False
    loop.close()
    assert loop._closed is True
    assert loop.is_closed()


def test_close_is_idempotent(loop):
    loop.close()
    loop.close()
    assert loop.is_closed()


def test_close_with_pending_callbacks_and_timers(loop):
    loop.call_soon(lambda: None)
    loop.call_later(3600, lambda: None)
    loop.close()
    assert loop.is_closed()


# --------------------------------------------------------------------------- closed loop


def _coro():
    async def noop():
        pass

    return noop()


@pytest.mark.parametrize(
    "operation",
    [
        pytest.param(lambda lp: lp.call_soon(print), id="call_soon"),
        pytest.param(lambda lp: lp.call_later(1, print), id="call_later"),
        pytest.param(lambda lp: lp.call_at(1, print), id="call_at"),
        pytest.param(lambda lp: lp.call_soon_threadsafe(print), id="call_soon_threadsafe"),
        pytest.param(lambda lp: lp.run_forever(), id="run_forever"),
        pytest.param(lambda lp: lp.run_in_executor(None, print), id="run_in_executor"),
    ],
)
def test_operations_on_a_closed_loop_raise(loop, operation):
    loop.close()
    with pytest.raises(RuntimeError):
        operation(loop)


def test_run_until_complete_on_closed_loop_raises(loop):
    loop.close()
    coro = _coro()
    try:
        with pytest.raises(RuntimeError):
            loop.run_until_complete(coro)
    finally:
        coro.close()


def test_create_task_on_closed_loop_raises(loop):
    loop.close()
    coro = _coro()
    try:
        with pytest.raises(RuntimeError):
            loop.create_task(coro)
    finally:
        coro.close()


def test_add_reader_on_closed_loop_raises(loop):
    import socket

    a, b = socket.socketpair()
    try:
        loop.close()
        with pytest.raises(RuntimeError):
            loop.add_reader(a.fileno(), print)
        with pytest.raises(RuntimeError):
            loop.add_writer(a.fileno(), print)
    finally:
        a.close()
        b.close()


# --------------------------------------------------------------------------- asyncio on top


def test_get_running_loop_inside_and_outside(loop):
    async def main():
        assert asyncio.get_running_loop() is loop
        assert asyncio.get_event_loop() is loop
        return asyncio._get_running_loop()

    assert run(loop, main()) is loop
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()

    seen = []
    loop.call_soon(lambda: seen.append(asyncio.get_running_loop()))
    loop.call_soon(loop.stop)
    run_forever(loop)
    assert seen == [loop]
    assert asyncio._get_running_loop() is None


def test_tasks_futures_and_sleep(loop):
    async def child(n):
        await asyncio.sleep(0.001 * n)
        return n * n

    async def main():
        tasks = [asyncio.ensure_future(child(i)) for i in range(10)]
        fut = loop.create_future()
        loop.call_later(0.001, fut.set_result, "fut")
        results = [await t for t in tasks]
        return results, await fut, await asyncio.sleep(0, result="slept")

    results, f, s = run(loop, main())
    assert results == [i * i for i in range(10)]
    assert (f, s) == ("fut", "slept")


def test_gather(loop):
    async def child(n):
        await asyncio.sleep(0)
        if n == 3:
            raise ValueError(n)
        return n

    async def main():
        ok = await asyncio.gather(*(child(i) for i in range(3)))
        mixed = await asyncio.gather(*(child(i) for i in range(5)), return_exceptions=True)
        return ok, mixed

    ok, mixed = run(loop, main())
    assert ok == [0, 1, 2]
    assert mixed[:3] == [0, 1, 2] and isinstance(mixed[3], ValueError) and mixed[4] == 4


def test_wait_for_times_out_and_cancels(loop):
    cancelled = []

    async def slow():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def main():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(slow(), 0.01)
        return await asyncio.wait_for(asyncio.sleep(0, "fast"), TIMEOUT)

    assert run(loop, main()) == "fast"
    assert cancelled == [True]


def test_asyncio_timeout_context_manager(loop):
    async def main():
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                await asyncio.sleep(3600)
        async with asyncio.timeout(TIMEOUT):
            await asyncio.sleep(0)
        return "ok"

    assert run(loop, main()) == "ok"


def test_task_group(loop):
    async def child(n):
        await asyncio.sleep(0.001)
        return n

    async def failing():
        await asyncio.sleep(0)
        raise KeyError("boom")

    async def main():
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(child(i)) for i in range(5)]
        results = [t.result() for t in tasks]
        sibling_cancelled = []

        async def long_sibling():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                sibling_cancelled.append(True)
                raise

        with pytest.raises(ExceptionGroup) as ei:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(long_sibling())
                tg.create_task(failing())
        assert [type(e) for e in ei.value.exceptions] == [KeyError]
        return results, sibling_cancelled

    results, sibling_cancelled = run(loop, main())
    assert results == list(range(5))
    assert sibling_cancelled == [True]


def test_asyncio_wait_and_as_completed(loop):
    async def child(d):
        await asyncio.sleep(d)
        return d

    async def main():
        tasks = {asyncio.ensure_future(child(d)) for d in (0.03, 0.0, 0.01)}
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        assert len(done) >= 1
        order = [await f for f in asyncio.as_completed(tasks)]
        return order

    assert run(loop, main()) == [0.0, 0.01, 0.03]


def test_asyncio_queue_and_event(loop):
    async def main():
        q = asyncio.Queue()
        ev = asyncio.Event()

        async def producer():
            for i in range(100):
                await q.put(i)
            ev.set()

        async def consumer():
            out = []
            for _ in range(100):
                out.append(await q.get())
            return out

        p = asyncio.ensure_future(producer())
        out = await consumer()
        await ev.wait()
        await p
        return out

    assert run(loop, main()) == list(range(100))


def test_task_cancellation(loop):
    async def main():
        started = loop.create_future()

        async def victim():
            started.set_result(None)
            await asyncio.sleep(3600)

        t = asyncio.ensure_future(victim())
        await started
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        return t.cancelled()

    assert run(loop, main()) is True


def test_create_task_name(loop):
    async def main():
        return 1

    t = loop.create_task(main(), name="my-task")
    assert t.get_name() == "my-task"
    t2 = loop.create_task(main())
    assert isinstance(t2.get_name(), str) and t2.get_name()
    run(loop, asyncio.gather(t, t2))


def test_create_task_returns_an_asyncio_task(loop):
    async def main():
        return asyncio.current_task()

    t = loop.create_task(main())
    assert isinstance(t, asyncio.Task)
    assert run(loop, t) is t


var = contextvars.ContextVar("lifecycle_var", default="default")


def test_create_task_context(loop):
    ctx = contextvars.Context()
    ctx.run(var.set, "task-ctx")

    async def main():
        seen = var.get()
        var.set("set-in-task")
        return seen

    t = loop.create_task(main(), context=ctx)
    assert run(loop, t) == "task-ctx"
    assert ctx[var] == "set-in-task"
    assert var.get() == "default"


def test_task_factory(loop):
    made = []

    def factory(lp, coro, **kwargs):
        assert lp is loop
        task = asyncio.Task(coro, loop=lp, **kwargs)
        made.append(task)
        return task

    assert loop.get_task_factory() is None
    loop.set_task_factory(factory)
    assert loop.get_task_factory() is factory

    async def child():
        return "child"

    async def main():
        return await asyncio.ensure_future(child())

    t = loop.create_task(main(), name="named")
    assert t.get_name() == "named"
    assert run(loop, t) == "child"
    assert t in made and len(made) >= 2

    loop.set_task_factory(None)
    assert loop.get_task_factory() is None
    before = len(made)
    run(loop, loop.create_task(child()))
    assert len(made) == before


def test_task_factory_receives_context(loop):
    got = []

    def factory(lp, coro, **kwargs):
        got.append(kwargs.get("context"))
        return asyncio.Task(coro, loop=lp, **kwargs)

    loop.set_task_factory(factory)
    ctx = contextvars.copy_context()

    async def main():
        return 1

    run(loop, loop.create_task(main(), context=ctx))
    assert got[0] is ctx


@pytest.mark.parametrize("bad", [1, "factory", object()])
def test_set_task_factory_rejects_non_callables(loop, bad):
    with pytest.raises(TypeError):
        loop.set_task_factory(bad)
    assert loop.get_task_factory() is None


def test_asyncio_runner_with_loop_factory(loop_factory):
    made = []

    def factory():
        lp = loop_factory()
        made.append(lp)
        return lp

    async def main():
        return asyncio.get_running_loop()

    with asyncio.Runner(loop_factory=factory) as runner:
        lp = runner.run(main())
        assert runner.get_loop() is lp
    assert made == [lp]
    assert lp.is_closed()


@pytest.mark.skipif(sys.version_info < (3, 12), reason="asyncio.run(loop_factory=) is 3.12+")
def test_asyncio_run_with_loop_factory(loop_factory):
    async def main():
        return asyncio.get_running_loop()

    lp = asyncio.run(main(), loop_factory=loop_factory)
    assert lp.is_closed()


def test_create_future(loop):
    fut = loop.create_future()
    assert isinstance(fut, asyncio.Future)
    assert fut.get_loop() is loop
    assert not fut.done()
    fut.cancel()
