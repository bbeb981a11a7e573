"""run_in_executor, the default executor and its shutdown."""

import asyncio
import concurrent.futures
import contextvars
import sys
import threading

import pytest

from ._util import TIMEOUT, run


def test_run_in_default_executor(loop):
    main_thread = threading.get_ident()

    def work(a, b):
        return a + b, threading.get_ident()

    result, tid = run(loop, loop.run_in_executor(None, work, 2, 3))
    assert result == 5
    assert tid != main_thread


def test_run_in_executor_returns_an_asyncio_future(loop):
    fut = loop.run_in_executor(None, lambda: "x")
    assert isinstance(fut, asyncio.Future)
    assert fut.get_loop() is loop
    assert run(loop, fut) == "x"


def test_run_in_executor_propagates_exceptions(loop):
    class Boom(Exception):
        pass

    def work():
        raise Boom("in thread")

    with pytest.raises(Boom, match="in thread"):
        run(loop, loop.run_in_executor(None, work))


def test_run_in_custom_executor(loop):
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="custom-pool") as pool:
        name = run(loop, loop.run_in_executor(pool, lambda: threading.current_thread().name))
    assert name.startswith("custom-pool")


def test_many_concurrent_executor_jobs(loop):
    async def main():
        futs = [loop.run_in_executor(None, pow, i, 2) for i in range(200)]
        return await asyncio.gather(*futs)

    assert run(loop, main()) == [i * i for i in range(200)]


def test_executor_job_blocking_does_not_block_the_loop(loop):
    release = threading.Event()

    async def main():
        fut = loop.run_in_executor(None, release.wait, TIMEOUT)
        # The loop keeps running callbacks while the job blocks.
        for _ in range(10):
            await asyncio.sleep(0)
        assert not fut.done()
        release.set()
        return await fut

    assert run(loop, main()) is True


def test_set_default_executor(loop):
    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="my-default")
    loop.set_default_executor(pool)
    name = run(loop, loop.run_in_executor(None, lambda: threading.current_thread().name))
    assert name.startswith("my-default")
    run(loop, loop.shutdown_default_executor())
    pool.shutdown(wait=True)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="TypeError since Python 3.11")
@pytest.mark.parametrize("bad", ["process-pool", "object"])
def test_set_default_executor_rejects_non_thread_pools(loop, bad):
    if bad == "process-pool":
        executor = concurrent.futures.ProcessPoolExecutor(1)
    else:
        executor = object()
    try:
        with pytest.raises(TypeError):
            loop.set_default_executor(executor)
    finally:
        if bad == "process-pool":
            executor.shutdown(wait=True)


def test_shutdown_default_executor_waits_for_jobs(loop):
    started = threading.Event()
    release = threading.Event()
    finished = []

    def job():
        started.set()
        release.wait(TIMEOUT)
        finished.append(True)
        return "job-done"

    async def main():
        fut = loop.run_in_executor(None, job)
        await loop.run_in_executor(None, started.wait, TIMEOUT)
        shutdown = asyncio.ensure_future(loop.shutdown_default_executor())
        await asyncio.sleep(0)
        release.set()
        await shutdown
        # shutdown returned only after the running job finished.
        assert finished == [True]
        return await fut

    assert run(loop, main()) == "job-done"


def test_run_in_executor_after_shutdown_raises(loop):
    run(loop, loop.run_in_executor(None, lambda: None))
    run(loop, loop.shutdown_default_executor())
    with pytest.raises(RuntimeError):
        loop.run_in_executor(None, lambda: None)


def test_shutdown_default_executor_without_executor(loop):
    # Never used: nothing to shut down, must still complete.
    run(loop, loop.shutdown_default_executor())


def test_custom_executor_still_usable_after_default_shutdown(loop):
    run(loop, loop.shutdown_default_executor())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        assert run(loop, loop.run_in_executor(pool, lambda: "custom")) == "custom"


def test_cancelling_the_asyncio_future(loop):
    release = threading.Event()

    async def main():
        fut = loop.run_in_executor(None, release.wait, TIMEOUT)
        await asyncio.sleep(0)
        fut.cancel()
        with pytest.raises(asyncio.CancelledError):
            await fut
        release.set()

    run(loop, main())


def test_to_thread_copies_context(loop):
    var = contextvars.ContextVar("var", default="default")

    async def main():
        var.set("in-task")
        return await asyncio.to_thread(var.get)

    assert run(loop, main()) == "in-task"


def test_close_shuts_down_the_default_executor(loop_factory):
    lp = loop_factory()
    try:
        threads_before = set(threading.enumerate())
        run(lp, lp.run_in_executor(None, lambda: None))
        workers = set(threading.enumerate()) - threads_before
    finally:
        lp.close()
    # close() does not wait for them, but the worker threads do exit.
    for t in workers:
        t.join(TIMEOUT)
        assert not t.is_alive()
