"""pyloop.sync.broadcast and pyloop.sync.watch."""
from __future__ import annotations

import asyncio

import pytest

from pyloop import sync

from ._chan_util import collect_warnings, run, settle

# ---- broadcast --------------------------------------------------------------------------------------


def test_every_receiver_gets_every_value(loop):
    async def main():
        tx, rx = sync.broadcast(8)
        rxs = [rx] + [tx.subscribe() for _ in range(4)]

        async def consume(r):
            async with r:
                return [v async for v in r]

        tasks = [asyncio.ensure_future(consume(r)) for r in rxs]
        async with tx:
            for i in range(100):
                assert tx.send(i) == 5
                if i % 4 == 0:
                    await settle(2)         # let the receivers keep up (capacity 8)
        return await asyncio.gather(*tasks)

    assert run(loop, main) == [list(range(100))] * 5


def test_subscribe_sees_only_later_values(loop):
    async def main():
        tx, rx = sync.broadcast(4)
        tx.send("old")
        late = tx.subscribe()
        tx.send("new")
        assert await late.recv() == "new"
        assert await rx.recv() == "old"
        again = rx.resubscribe()
        with pytest.raises(sync.Empty):
            again.try_recv()
        for r in (rx, late, again):
            r.close()
        tx.close()

    run(loop, main)


def test_lagged_receiver(loop):
    async def main():
        tx, rx = sync.broadcast(3)
        for i in range(10):
            tx.send(i)
        assert len(rx) == 3
        with pytest.raises(sync.Lagged) as info:
            await rx.recv()
        assert info.value.skipped == 7
        assert [await rx.recv() for _ in range(3)] == [7, 8, 9]   # from the oldest retained
        with pytest.raises(sync.Empty):
            rx.try_recv()
        tx.send(10)
        assert rx.try_recv() == 10                                # Lagged was reported once
        for i in range(5):
            tx.send(i)
        with pytest.raises(sync.Lagged) as info:
            rx.try_recv()
        assert info.value.skipped == 2
        rx.close()
        tx.close()

    run(loop, main)


def test_waiting_receivers_are_woken(loop):
    async def main():
        tx, rx = sync.broadcast(2)
        rx2 = tx.subscribe()
        waiters = [asyncio.ensure_future(r.recv()) for r in (rx, rx2)]
        await settle()
        tx.send("x")
        assert await asyncio.gather(*waiters) == ["x", "x"]
        rx.close()
        rx2.close()
        tx.close()

    run(loop, main)


def test_broadcast_end_of_stream(loop):
    async def main():
        tx, rx = sync.broadcast(4)
        tx2 = tx.clone()
        tx.send(1)
        tx.close()
        with pytest.raises(sync.Closed):
            tx.send(2)
        waiter = asyncio.ensure_future(rx.recv())
        assert await waiter == 1
        waiter = asyncio.ensure_future(rx.recv())
        await settle()
        assert not waiter.done()            # tx2 is still open
        tx2.send(2)
        tx2.close()
        assert await waiter == 2
        with pytest.raises(sync.Closed):
            await rx.recv()
        rx.close()
        with pytest.raises(sync.Closed):
            rx.try_recv()

    run(loop, main)


def test_broadcast_cancelled_receive_loses_nothing(loop):
    async def main():
        tx, rx = sync.broadcast(4)
        waiter = asyncio.ensure_future(rx.recv())
        await settle()
        tx.send("v")
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert await rx.recv() == "v"
        rx.close()
        tx.close()

    run(loop, main)


def test_timed_out_receives_do_not_pile_up(loop):
    async def main():
        tx, rx = sync.broadcast(2)
        w_tx, w_rx = sync.watch(0)
        for _ in range(300):
            for op in (rx.recv(), w_rx.changed()):
                task = asyncio.ensure_future(op)
                await asyncio.sleep(0)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
        tx.send("still works")
        w_tx.send(1)
        assert await rx.recv() == "still works"
        await w_rx.changed()
        for e in (tx, rx, w_tx, w_rx):
            e.close()

    run(loop, main)


def test_broadcast_receiver_count_and_warnings(loop):
    def scenario():
        tx, rx = sync.broadcast(1)
        extra = tx.subscribe()
        assert tx.receiver_count == 2
        extra.close()
        assert tx.receiver_count == 1
        assert tx.send(0) == 1
        tx.close()

    caught = collect_warnings(scenario)
    assert [str(w.message).split()[1] for w in caught] == ["BroadcastReceiver"]


def test_broadcast_bad_capacity():
    with pytest.raises(ValueError):
        sync.broadcast(0)
    with pytest.raises(TypeError):
        sync.broadcast(2.0)


# ---- watch ------------------------------------------------------------------------------------------


def test_watch_borrow_and_changed(loop):
    async def main():
        tx, rx = sync.watch("init")
        assert rx.borrow() == tx.borrow() == "init"
        assert not rx.has_changed()
        waiter = asyncio.ensure_future(rx.changed())
        await settle()
        assert not waiter.done()
        tx.send("a")
        tx.send("b")                        # changes coalesce
        await waiter
        assert rx.borrow() == "b"
        assert not rx.has_changed()
        tx.send("c")
        assert rx.has_changed()
        assert rx.borrow_and_update() == "c"
        assert not rx.has_changed()
        rx.close()
        tx.close()

    run(loop, main)


def test_watch_clone_and_subscribe(loop):
    async def main():
        tx, rx = sync.watch(0)
        tx.send(1)
        clone = rx.clone()                  # has seen what rx has seen: not 1 yet
        fresh = tx.subscribe()              # counts the current value as seen
        assert clone.has_changed() and rx.has_changed()
        assert not fresh.has_changed()
        tx.send(2)
        for r in (rx, clone, fresh):
            await r.changed()
            assert r.borrow() == 2
        assert tx.receiver_count == 3
        for r in (rx, clone, fresh):
            r.close()
        tx.close()

    run(loop, main)


def test_watch_closed_sender(loop):
    async def main():
        tx, rx = sync.watch(0)
        waiter = asyncio.ensure_future(rx.changed())
        await settle()
        tx.close()
        with pytest.raises(sync.Closed):
            await waiter
        tx2, rx2 = sync.watch(0)
        tx2.send(1)
        tx2.close()
        with pytest.raises(sync.Closed):
            tx2.send(2)
        await rx2.changed()                 # the last change is still reported
        assert rx2.borrow() == 1
        with pytest.raises(sync.Closed):
            await rx2.changed()
        with pytest.raises(sync.Closed):
            rx2.has_changed()
        rx.close()
        rx2.close()

    run(loop, main)


def test_watch_async_for(loop):
    async def main():
        tx, rx = sync.watch(0)
        seen = []

        async def observe():
            async with rx:
                async for v in rx:
                    seen.append(v)

        task = asyncio.ensure_future(observe())
        for i in range(1, 6):
            await settle()
            tx.send(i)
        await settle()
        tx.close()
        await task
        return seen

    assert run(loop, main) == [1, 2, 3, 4, 5]


def test_watch_cancelled_changed_loses_nothing(loop):
    async def main():
        tx, rx = sync.watch(0)
        waiter = asyncio.ensure_future(rx.changed())
        await settle()
        tx.send(1)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert rx.has_changed()
        await rx.changed()
        assert rx.borrow() == 1
        rx.close()
        tx.close()

    run(loop, main)


def test_watch_collected_sender_closes(loop):
    async def main():
        tx, rx = sync.watch(0)
        waiter = asyncio.ensure_future(rx.changed())
        await settle()

        def drop():
            nonlocal tx
            tx = None

        caught = collect_warnings(drop)
        assert [str(w.message).split()[1] for w in caught] == ["WatchSender"]
        with pytest.raises(sync.Closed):
            await waiter
        rx.close()

    run(loop, main)
