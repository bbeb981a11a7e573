"""call_soon_threadsafe and the other ways threads talk to a running loop."""

import asyncio
import concurrent.futures
import contextvars
import threading
import time

import pytest

from ._util import TIMEOUT, run, run_forever

N_THREADS = 8
N_CALLS = 1000


def _join_all(threads):
    for t in threads:
        t.join(TIMEOUT)
        assert not t.is_alive(), "worker thread hung"


def test_many_threads_lose_nothing_and_keep_per_thread_order(loop):
    total = N_THREADS * N_CALLS
    received = []
    done = loop.create_future()
    start = threading.Barrier(N_THREADS + 1)

    def on_item(item):
        received.append(item)
        if len(received) == total and not done.done():
            done.set_result(None)

    def worker(tid):
        start.wait(TIMEOUT)
        for i in range(N_CALLS):
            loop.call_soon_threadsafe(on_item, (tid, i))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(N_THREADS)]
    for t in threads:
        t.start()

    async def main():
        # Release the workers only once the loop is running and waiting.
        loop.call_soon(start.wait, TIMEOUT)
        await done

    try:
        run(loop, main())
    finally:
        _join_all(threads)
    assert len(received) == total
    per_thread = {}
    for tid, i in received:
        per_thread.setdefault(tid, []).append(i)
    assert sorted(per_thread) == list(range(N_THREADS))
    for tid, seq in per_thread.items():
        assert seq == list(range(N_CALLS)), f"thread {tid}'s calls were reordered or lost"


def test_threadsafe_calls_made_before_the_loop_runs(loop):
    out = []

    def worker():
        for i in range(100):
            loop.call_soon_threadsafe(out.append, i)

    t = threading.Thread(target=worker)
    t.start()
    _join_all([t])
    loop.call_soon(loop.stop)
    run_forever(loop)
    assert out == list(range(100))


@pytest.mark.parametrize("head_start", [0.0, 0.001, 0.05])
def test_threadsafe_call_wakes_a_loop_blocked_in_poll(loop, head_start):
    # The loop has nothing to do but wait (its only timer is the 30 s guard), so
    # it blocks in the poller.  A call from another thread must wake it at once.
    # head_start only makes it likely the loop is already asleep; the test is
    # correct whichever way the race goes.
    fut = loop.create_future()
    running = threading.Event()

    def worker():
        assert running.wait(TIMEOUT)
        if head_start:
            time.sleep(head_start)
        loop.call_soon_threadsafe(fut.set_result, "woken")

    t = threading.Thread(target=worker)
    t.start()
    loop.call_soon(running.set)
    t0 = time.monotonic()
    try:
        assert run(loop, fut) == "woken"
    finally:
        _join_all([t])
    assert time.monotonic() - t0 < TIMEOUT / 3, "loop was not woken by call_soon_threadsafe"


def test_threadsafe_wakes_loop_waiting_on_a_far_timer(loop):
    far = loop.call_later(3600, lambda: None)
    started = threading.Event()

    def worker():
        assert started.wait(TIMEOUT)
        loop.call_soon_threadsafe(loop.stop)

    t = threading.Thread(target=worker)
    t.start()
    loop.call_soon(started.set)
    t0 = time.monotonic()
    try:
        run_forever(loop)
    finally:
        _join_all([t])
        far.cancel()
    assert time.monotonic() - t0 < TIMEOUT / 3


def test_repeated_wakeups(loop):
    # Many rounds of: the loop waits on a future with nothing else to do, a
    # thread completes it through call_soon_threadsafe, the loop wakes.
    rounds = 300
    slot = []
    ready = threading.Semaphore(0)

    def worker():
        for i in range(rounds):
            assert ready.acquire(timeout=TIMEOUT)
            loop.call_soon_threadsafe(slot[-1].set_result, i)

    async def main():
        got = []
        for _ in range(rounds):
            fut = loop.create_future()
            slot.append(fut)
            ready.release()
            got.append(await fut)
        return got

    t = threading.Thread(target=worker)
    t.start()
    try:
        assert run(loop, main()) == list(range(rounds))
    finally:
        _join_all([t])


def test_threadsafe_returns_cancellable_handle(loop):
    out = []
    h = loop.call_soon_threadsafe(out.append, "cancelled")
    h.cancel()
    assert h.cancelled()
    loop.call_soon_threadsafe(out.append, "kept")
    loop.call_soon(loop.stop)
    run_forever(loop)
    assert out == ["kept"]


def test_handles_made_after_a_burst_carry_nothing_over(loop):
    # A thread queues a burst of handles and cancels every other one, the
    # loop runs the rest and the handles are dropped; the handles made next
    # (pyloop takes them from its freelist) start as new: not cancelled,
    # their own callback, arguments and context.
    n = 20_000
    ran = []
    var = contextvars.ContextVar("var")

    def burst():
        handles = [loop.call_soon_threadsafe(ran.append, i) for i in range(n)]
        for handle in handles[::2]:
            handle.cancel()

    thread = threading.Thread(target=burst)
    thread.start()
    _join_all([thread])
    loop.call_soon(loop.stop)
    run_forever(loop)
    assert ran == list(range(1, n, 2))

    seen = []
    var.set("fresh")
    fresh = [loop.call_soon(lambda i=i: seen.append((i, var.get()))) for i in range(n)]
    assert not any(handle.cancelled() for handle in fresh)
    assert "cancelled" not in repr(fresh[0])
    loop.call_soon(loop.stop)
    run_forever(loop)
    assert seen == [(i, "fresh") for i in range(n)]


def test_threadsafe_on_closed_loop_raises(loop):
    loop.close()
    with pytest.raises(RuntimeError):
        loop.call_soon_threadsafe(lambda: None)


def test_threadsafe_passes_args(loop):
    got = []
    done = threading.Event()

    def worker():
        loop.call_soon_threadsafe(lambda *a: got.append(a), 1, "x", None)
        loop.call_soon_threadsafe(loop.stop)
        done.set()

    loop.call_soon(threading.Thread(target=worker).start)
    run_forever(loop)
    assert done.wait(TIMEOUT)
    assert got == [(1, "x", None)]


def test_threadsafe_callback_runs_in_a_copy_of_the_callers_context(loop):
    """Each callback sees the calling thread's context variables as they were
    at the call (later changes in the thread are not seen), and what one
    callback sets is seen neither by the next callback nor by the thread."""
    var = contextvars.ContextVar("var", default="unset")
    seen = []
    in_thread = []

    def callback():
        seen.append(var.get())
        var.set("set by a callback")

    def worker():
        var.set("thread")
        loop.call_soon_threadsafe(callback)
        loop.call_soon_threadsafe(callback)
        var.set("changed later")
        loop.call_soon_threadsafe(loop.stop)
        in_thread.append(var.get())

    thread = threading.Thread(target=worker)
    loop.call_soon(thread.start)
    run_forever(loop)
    _join_all([thread])
    assert seen == ["thread", "thread"]
    assert in_thread == ["changed later"]
    assert var.get() == "unset"


def test_run_coroutine_threadsafe(loop):
    async def add(a, b):
        await asyncio.sleep(0)
        return a + b

    results = []
    errors = []

    def worker():
        try:
            cf = asyncio.run_coroutine_threadsafe(add(2, 3), loop)
            results.append(cf.result(TIMEOUT))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)
        finally:
            loop.call_soon_threadsafe(loop.stop)

    t = threading.Thread(target=worker)
    loop.call_soon(t.start)
    try:
        run_forever(loop)
    finally:
        _join_all([t])
    assert errors == []
    assert results == [5]


def test_concurrent_future_wrapped_in_loop(loop):
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        cf = pool.submit(lambda: "from-thread")

        async def main():
            return await asyncio.wrap_future(cf)

        assert run(loop, main()) == "from-thread"


def test_non_threadsafe_call_soon_from_other_thread_raises_in_debug_mode(loop):
    loop.set_debug(True)
    errors = []

    def worker():
        try:
            loop.call_soon(lambda: None)
        except RuntimeError as e:
            errors.append(e)
        finally:
            loop.call_soon_threadsafe(loop.stop)

    t = threading.Thread(target=worker)
    loop.call_soon(t.start)
    try:
        run_forever(loop)
    finally:
        _join_all([t])
    assert len(errors) == 1
