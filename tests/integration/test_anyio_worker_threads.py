"""anyio's worker threads end with the task ``run_until_complete`` drives,
on pyloop as on asyncio.

anyio (``to_thread.run_sync``) ties each worker thread to a "root task" and
tells the thread to stop when that task is done.  Its ``find_root_task()``
recognises the task that ``loop.run_until_complete()`` drives by a done
callback that *is* ``asyncio.base_events._run_until_complete_cb``.  pyloop
used a look-alike of its own, so under pyloop anyio fell back to the current
task: work sent to a thread from a long-lived task -- anyio's own pytest
runner task is one -- kept its worker thread alive after
``run_until_complete()`` returned, and the thread was still exiting when the
next test counted ``threading.active_count()`` (the flaky
``TestRunAsyncFromThread::test_run_sync_from_thread_pooling`` of anyio's
suite, seen on pyloop only; docs/reliability-threads.md).
"""

from __future__ import annotations

import asyncio
import asyncio.base_events
import threading
import time

import pytest

anyio = pytest.importorskip("anyio")

TIMEOUT = 10.0


def test_run_until_complete_marks_its_task_as_asyncio_does(loop):
    """While ``run_until_complete(coro)`` runs, its task carries asyncio's
    ``_run_until_complete_cb`` (the interface anyio relies on), and no longer
    once it returned."""
    seen = {}

    async def main():
        task = asyncio.current_task()
        seen["callbacks"] = [cb for cb, _ctx in task._callbacks]
        return task

    task = loop.run_until_complete(main())
    assert asyncio.base_events._run_until_complete_cb in seen["callbacks"]
    assert not task._callbacks


def _wait_for(predicate, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_worker_thread_stops_with_the_run_until_complete_task(loop):
    """A long-lived task does the ``to_thread`` call for a short
    ``run_until_complete()`` (the shape of anyio's pytest runner): the worker
    thread is told to stop when the ``run_until_complete`` task ends, so it is
    gone without the loop being closed or the long-lived task ending."""
    requests = asyncio.Queue()
    worker_ids = []

    async def serve():
        while True:
            fut = await requests.get()
            worker_ids.append(await anyio.to_thread.run_sync(threading.get_ident))
            fut.set_result(None)

    async def call():
        fut = loop.create_future()
        await requests.put(fut)
        await asyncio.wait_for(fut, TIMEOUT)

    server = loop.create_task(serve())
    try:
        loop.run_until_complete(call())
        (ident,) = worker_ids
        assert ident != threading.get_ident()

        def worker_gone():
            return all(t.ident != ident for t in threading.enumerate())

        assert _wait_for(worker_gone), (
            "anyio's worker thread outlived the run_until_complete() task "
            "it worked for")
    finally:
        server.cancel()
        loop.run_until_complete(asyncio.gather(server, return_exceptions=True))
