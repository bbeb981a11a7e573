"""pyloop.sync primitives: Semaphore, Notify, Barrier, CancellationToken, RateLimiter.

Each rule a user relies on, on stock asyncio and on pyloop loops.  Waiting is
always on futures and events, never on wall-clock sleeps; every run is bounded.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from pyloop.sync import Barrier, CancellationToken, Closed, Notify, RateLimiter, Semaphore, SemaphorePermit

TIMEOUT = 30.0


def run(loop, coro):
    return loop.run_until_complete(asyncio.wait_for(coro, TIMEOUT))


async def settle(rounds: int = 5) -> None:
    """Let every ready task run a few steps (no wall-clock time involved)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


# ---------------------------------------------------------------- Semaphore


def test_semaphore_counts_permits(loop):
    async def main():
        sem = Semaphore(2)
        p1 = await sem.acquire()
        p2 = sem.try_acquire()
        assert isinstance(p1, SemaphorePermit) and p2 is not None
        assert sem.available_permits == 0 and sem.locked()
        assert sem.try_acquire() is None
        p1.release()
        p1.release()                  # a second release gives nothing back twice
        assert sem.available_permits == 1
        p2.release()
        assert sem.available_permits == 2
    run(loop, main())


def test_semaphore_async_with_limits_concurrency(loop):
    async def main():
        sem = Semaphore(3)
        inside = 0
        peak = 0

        async def worker():
            nonlocal inside, peak
            async with sem:
                inside += 1
                peak = max(peak, inside)
                await settle(3)
                inside -= 1

        await asyncio.gather(*(worker() for _ in range(20)))
        assert peak == 3
        assert sem.available_permits == 3
    run(loop, main())


def test_semaphore_is_fifo_fair_for_large_requests(loop):
    async def main():
        sem = Semaphore(2)
        held = await sem.acquire_many(2)
        order = []

        async def want(n, tag):
            async with await sem.acquire_many(n):
                order.append(tag)

        big = asyncio.ensure_future(want(2, "big"))
        await settle()
        small = asyncio.ensure_future(want(1, "small"))
        await settle()
        # One permit back: enough for `small`, but `big` arrived first.
        sem.release(1)
        held.forget()
        await settle()
        assert order == []
        sem.release(1)
        await asyncio.gather(big, small)
        assert order == ["big", "small"]
    run(loop, main())


def test_semaphore_cancelled_waiter_unblocks_those_behind_it(loop):
    async def main():
        sem = Semaphore(1)
        held = await sem.acquire()
        big = asyncio.ensure_future(sem.acquire_many(5))
        await settle()
        small = asyncio.ensure_future(sem.acquire())
        await settle()
        held.release()
        await settle()
        assert not small.done()       # queued behind `big`
        big.cancel()
        permit = await small
        assert permit.permits == 1
        with pytest.raises(asyncio.CancelledError):
            await big
    run(loop, main())


def test_semaphore_granted_then_cancelled_hands_permit_on(loop):
    async def main():
        sem = Semaphore(0)
        first = asyncio.ensure_future(sem.acquire())
        second = asyncio.ensure_future(sem.acquire())
        await settle()
        sem.release(1)                # granted to `first`...
        first.cancel()                # ...which is cancelled before it resumes
        permit = await second
        assert permit.permits == 1
        with pytest.raises(asyncio.CancelledError):
            await first
        assert sem.available_permits == 0
        permit.release()
        assert sem.available_permits == 1
    run(loop, main())


def test_semaphore_close_wakes_waiters_with_closed(loop):
    async def main():
        sem = Semaphore(1)
        held = await sem.acquire()
        waiter = asyncio.ensure_future(sem.acquire())
        await settle()
        sem.close()
        assert sem.is_closed()
        with pytest.raises(Closed):
            await waiter
        with pytest.raises(Closed):
            await sem.acquire()
        with pytest.raises(Closed):
            sem.try_acquire()
        held.release()                # permits held before close still go back
        assert sem.available_permits == 1
    run(loop, main())


def test_semaphore_add_permits_and_forget(loop):
    async def main():
        sem = Semaphore(0)
        waiter = asyncio.ensure_future(sem.acquire_many(3))
        await settle()
        sem.add_permits(3)
        permit = await waiter
        permit.forget()
        assert sem.available_permits == 0 and permit.permits == 0
    run(loop, main())


@pytest.mark.parametrize("bad, exc", [(-1, ValueError), (1.5, TypeError), ("2", TypeError),
                                      (True, TypeError)])
def test_semaphore_rejects_bad_counts(loop, bad, exc):
    with pytest.raises(exc):
        Semaphore(bad)

    async def main():
        sem = Semaphore(1)
        with pytest.raises(exc):
            await sem.acquire_many(bad)
        with pytest.raises(exc):
            sem.release(bad)
    run(loop, main())


# ---------------------------------------------------------------- Notify


def test_notify_one_before_wait_stores_a_single_permit(loop):
    async def main():
        notify = Notify()
        notify.notify_one()
        notify.notify_one()
        await notify.notified()       # the stored permit
        second = asyncio.ensure_future(notify.notified())
        await settle()
        assert not second.done()      # only one permit was stored
        notify.notify_one()
        await second
    run(loop, main())


def test_notify_one_wakes_waiters_in_order(loop):
    async def main():
        notify = Notify()
        woken = []

        async def waiter(i):
            await notify.notified()
            woken.append(i)

        tasks = [asyncio.ensure_future(waiter(i)) for i in range(3)]
        await settle()
        for expected in ([0], [0, 1], [0, 1, 2]):
            notify.notify_one()
            await settle()
            assert woken == expected
        await asyncio.gather(*tasks)
    run(loop, main())


def test_notify_waiters_wakes_all_now_and_stores_nothing(loop):
    async def main():
        notify = Notify()
        tasks = [asyncio.ensure_future(notify.notified()) for _ in range(4)]
        await settle()
        notify.notify_waiters()
        await asyncio.gather(*tasks)
        later = asyncio.ensure_future(notify.notified())
        await settle()
        assert not later.done()
        later.cancel()
        with pytest.raises(asyncio.CancelledError):
            await later
    run(loop, main())


def test_notify_one_is_not_lost_when_the_woken_waiter_is_cancelled(loop):
    async def main():
        notify = Notify()
        first = asyncio.ensure_future(notify.notified())
        second = asyncio.ensure_future(notify.notified())
        await settle()
        notify.notify_one()           # goes to `first`...
        first.cancel()                # ...which never resumes to see it
        await second                  # so it passes on
        with pytest.raises(asyncio.CancelledError):
            await first
    run(loop, main())


# ---------------------------------------------------------------- Barrier


def test_barrier_releases_rounds_with_one_leader(loop):
    async def main():
        barrier = Barrier(3)
        results = await asyncio.gather(*(barrier.wait() for _ in range(6)))
        assert sum(r.is_leader() for r in results) == 2      # two rounds
        assert barrier.n_waiting == 0 and barrier.parties == 3
    run(loop, main())


def test_barrier_waits_for_the_last_party(loop):
    async def main():
        barrier = Barrier(2)
        first = asyncio.ensure_future(barrier.wait())
        await settle()
        assert not first.done() and barrier.n_waiting == 1
        leader = await barrier.wait()
        assert leader.is_leader()
        assert not (await first).is_leader()
    run(loop, main())


def test_barrier_cancelled_party_leaves_the_round(loop):
    async def main():
        barrier = Barrier(2)
        quitter = asyncio.ensure_future(barrier.wait())
        await settle()
        quitter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await quitter
        assert barrier.n_waiting == 0
        a = asyncio.ensure_future(barrier.wait())
        await settle()
        assert not a.done()           # the quitter's arrival no longer counts
        await barrier.wait()
        await a
    run(loop, main())


@pytest.mark.parametrize("bad, exc", [(0, ValueError), (-2, ValueError), (2.0, TypeError)])
def test_barrier_rejects_bad_sizes(bad, exc):
    with pytest.raises(exc):
        Barrier(bad)


# ---------------------------------------------------------------- CancellationToken


def test_token_cancel_wakes_waiters_and_children(loop):
    async def main():
        token = CancellationToken()
        child = token.child_token()
        grandchild = child.child_token()
        waiters = [asyncio.ensure_future(t.cancelled()) for t in (token, child, grandchild)]
        await settle()
        assert not any(w.done() for w in waiters)
        token.cancel()
        token.cancel()                # idempotent
        await asyncio.gather(*waiters)
        assert token.is_cancelled() and child.is_cancelled() and grandchild.is_cancelled()
        await token.cancelled()       # already cancelled: returns at once
        late_child = token.child_token()
        assert late_child.is_cancelled()
    run(loop, main())


def test_token_child_cancel_leaves_parent_alone(loop):
    async def main():
        parent = CancellationToken()
        child = parent.child_token()
        child.cancel()
        await child.cancelled()
        assert not parent.is_cancelled()
    run(loop, main())


def test_token_cancel_from_another_thread(loop):
    async def main():
        token = CancellationToken()
        waiter = asyncio.ensure_future(token.cancelled())
        await settle()
        thread = threading.Thread(target=token.cancel)
        thread.start()
        await waiter
        thread.join()
    run(loop, main())


def test_token_run_until_cancelled(loop):
    async def main():
        token = CancellationToken()
        assert await token.run_until_cancelled(asyncio.sleep(0, "done")) == "done"

        cleaned = []

        async def forever():
            try:
                await asyncio.Event().wait()
            finally:
                await asyncio.sleep(0)
                cleaned.append(True)

        runner = asyncio.ensure_future(token.run_until_cancelled(forever()))
        await settle()
        token.cancel()
        assert await runner is None
        assert cleaned == [True]      # the work was cancelled and awaited
        assert await token.run_until_cancelled(forever()) is None
        assert cleaned == [True]      # already cancelled: the work never starts
    run(loop, main())


def test_token_cancelled_waiter_cancellation_leaves_no_waiter(loop):
    async def main():
        token = CancellationToken()
        waiter = asyncio.ensure_future(token.cancelled())
        await settle()
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert token._waiters == []
    run(loop, main())


def test_token_run_until_cancelled_propagates_outer_cancellation(loop):
    async def main():
        token = CancellationToken()
        inner_cancelled = asyncio.Event()

        async def forever():
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                inner_cancelled.set()
                raise

        runner = asyncio.ensure_future(token.run_until_cancelled(forever()))
        await settle()
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
        assert inner_cancelled.is_set()
    run(loop, main())


# ---------------------------------------------------------------- RateLimiter


def test_rate_limiter_allows_a_burst_then_paces(loop):
    async def main():
        # The burst, on a limiter too slow to refill while the test runs (at
        # 1 ms per token a loaded machine may well refill one in between).
        slow = RateLimiter(1, per=3600.0, burst=5)
        assert all(slow.try_acquire() for _ in range(5))
        assert not slow.try_acquire()
        lim = RateLimiter(1000, per=1.0, burst=5)   # 1 ms per token
        assert lim.try_acquire(5)
        lp = asyncio.get_running_loop()
        t0 = lp.time()
        for _ in range(10):
            await lim.acquire()
        elapsed = lp.time() - t0
        # 10 tokens at 1 ms each once the burst is spent: never faster than the rate.
        assert elapsed >= 0.0099
    run(loop, main())


def test_rate_limiter_serves_waiters_in_order(loop):
    async def main():
        lim = RateLimiter(1000, burst=4)
        assert lim.try_acquire(4)
        order = []

        async def want(n, tag):
            await lim.acquire(n)
            order.append(tag)

        big = asyncio.ensure_future(want(4, "big"))
        await settle()
        small = asyncio.ensure_future(want(1, "small"))
        await asyncio.gather(big, small)
        assert order == ["big", "small"]
    run(loop, main())


def test_rate_limiter_cancelled_waiter_returns_its_reservation(loop):
    async def main():
        lim = RateLimiter(1, per=3600.0, burst=1)   # one token an hour
        assert lim.try_acquire()
        waiter = asyncio.ensure_future(lim.acquire())
        await settle()
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        # With the reservation returned, the next token is due in an hour,
        # not two: a second waiter's wait is at most one interval.
        lp = asyncio.get_running_loop()
        assert lim._tat is not None and lim._tat - lp.time() <= 3600.0
    run(loop, main())


@pytest.mark.parametrize("kwargs, exc", [
    (dict(rate=0), ValueError), (dict(rate=-1), ValueError), (dict(rate=float("inf")), ValueError),
    (dict(rate="10"), TypeError), (dict(rate=10, per=0), ValueError),
    (dict(rate=10, burst=0), ValueError), (dict(rate=10, burst=1.5), TypeError),
])
def test_rate_limiter_rejects_bad_config(kwargs, exc):
    with pytest.raises(exc):
        RateLimiter(**kwargs)


def test_rate_limiter_rejects_more_than_burst(loop):
    async def main():
        lim = RateLimiter(10, burst=3)
        with pytest.raises(ValueError):
            await lim.acquire(4)
        with pytest.raises(ValueError):
            lim.try_acquire(-1)
    run(loop, main())
