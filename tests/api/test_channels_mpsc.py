"""pyloop.sync mpsc channels: ordering, fairness, closing, rendezvous, bad input.

Cancellation and permits are in test_channels_cancel.py.
"""
from __future__ import annotations

import asyncio
import collections.abc

import pytest

from pyloop import sync

from ._chan_util import collect_warnings, run, settle


@pytest.mark.parametrize("cap", [1, 3, 1024])
def test_fifo_order_bounded(loop, cap):
    async def main():
        tx, rx = sync.channel(cap)

        async def produce():
            async with tx:
                for i in range(200):
                    await tx.send(i)

        task = asyncio.ensure_future(produce())
        got = [v async for v in rx]
        await task
        rx.close()
        return got

    assert run(loop, main) == list(range(200))


def test_fifo_order_unbounded(loop):
    async def main():
        tx, rx = sync.unbounded_channel()
        for i in range(5000):
            tx.send(i)
        tx.close()
        got = [v async for v in rx]
        rx.close()
        return got

    assert run(loop, main) == list(range(5000))


def test_try_send_full_and_try_recv_empty(loop):
    async def main():
        tx, rx = sync.channel(2)
        with pytest.raises(sync.Empty):
            rx.try_recv()
        tx.try_send("a")
        await tx.send("b")
        with pytest.raises(sync.Full):
            tx.try_send("c")
        assert isinstance(sync.Full(), asyncio.QueueFull)
        assert isinstance(sync.Empty(), asyncio.QueueEmpty)
        assert len(rx) == 2 and rx.capacity == 2 and tx.capacity == 2
        assert rx.try_recv() == "a"
        tx.try_send("c")
        assert [rx.try_recv(), rx.try_recv()] == ["b", "c"]
        tx.close()
        rx.close()

    run(loop, main)


def test_end_of_stream_only_after_drain(loop):
    async def main():
        tx, rx = sync.channel(4)
        for v in "abc":
            await tx.send(v)
        tx.close()
        assert not rx.is_closed()
        assert await rx.recv() == "a"
        assert rx.try_recv() == "b"
        assert await rx.recv() == "c"
        assert rx.is_closed()
        with pytest.raises(sync.Closed):
            await rx.recv()
        with pytest.raises(sync.Closed):
            rx.try_recv()
        rx.close()

    run(loop, main)


def test_pending_recv_woken_when_last_sender_closes(loop):
    async def main():
        tx, rx = sync.channel(1)
        tx2 = tx.clone()
        waiter = asyncio.ensure_future(rx.recv())
        await settle()
        tx.close()
        await settle()
        assert not waiter.done()            # one sender still open
        tx2.close()
        with pytest.raises(sync.Closed):
            await waiter
        rx.close()

    run(loop, main)


def test_clones_close_separately(loop):
    async def main():
        tx, rx = sync.channel(8)
        clones = [tx.clone() for _ in range(3)]
        async with tx:
            await tx.send(0)
        for i, c in enumerate(clones, 1):
            await c.send(i)
            assert not rx.is_closed()
            c.close()
            with pytest.raises(sync.Closed):
                await c.send("late")
            with pytest.raises(sync.Closed):
                c.try_send("late")
            with pytest.raises(sync.Closed):
                c.clone()
        assert [v async for v in rx] == [0, 1, 2, 3]
        rx.close()

    run(loop, main)


def test_closing_is_idempotent(loop):
    async def main():
        tx, rx = sync.channel(1)
        tx2 = tx.clone()
        tx.close()
        tx.close()                          # must not count as closing tx2 too
        await tx2.send(1)
        assert await rx.recv() == 1
        tx2.close()
        rx.close()
        rx.close()

    run(loop, main)


def test_receiver_close_refuses_sends_keeps_buffer(loop):
    async def main():
        tx, rx = sync.channel(2)
        await tx.send(1)
        await tx.send(2)
        blocked = asyncio.ensure_future(tx.send(3))
        await settle()
        rx.close()
        with pytest.raises(sync.Closed):
            await blocked                   # the waiting sender is told
        with pytest.raises(sync.Closed):
            tx.try_send(4)
        with pytest.raises(sync.Closed):
            await tx.send(4)
        assert tx.is_closed()
        assert [await rx.recv(), rx.try_recv()] == [1, 2]
        with pytest.raises(sync.Closed):
            await rx.recv()
        tx.close()

    run(loop, main)


def test_async_with_receiver_closes_it(loop):
    async def main():
        tx, rx = sync.channel(1)
        async with rx as r:
            assert r is rx
            await tx.send(1)
            assert await r.recv() == 1
        assert rx.closed
        with pytest.raises(sync.Closed):
            await tx.send(2)
        tx.close()

    run(loop, main)


def test_unbounded_send_after_close(loop):
    async def main():
        tx, rx = sync.unbounded_channel()
        tx.send(1)
        rx.close()
        with pytest.raises(sync.Closed):
            tx.send(2)
        assert rx.try_recv() == 1
        tx.close()
        with pytest.raises(sync.Closed):
            tx.send(3)
        assert rx.capacity is None

    run(loop, main)


def test_waiting_senders_are_served_fifo(loop):
    async def main():
        tx, rx = sync.channel(1)
        await tx.send("first")
        senders = [asyncio.ensure_future(tx.send(f"s{i}")) for i in range(5)]
        await settle()
        assert not any(s.done() for s in senders)
        assert await rx.recv() == "first"
        # The freed slot belongs to s0, which has not run yet: a newcomer may not take it.
        with pytest.raises(sync.Full):
            tx.try_send("newcomer")
        got = [await rx.recv() for _ in range(5)]
        await asyncio.gather(*senders)
        tx.close()
        rx.close()
        return got

    assert run(loop, main) == [f"s{i}" for i in range(5)]


def test_waiting_receivers_are_served_fifo(loop):
    async def main():
        tx, rx = sync.channel(4)
        receivers = [asyncio.ensure_future(rx.recv()) for _ in range(4)]
        await settle()
        for v in "abcd":
            await tx.send(v)
        got = [await r for r in receivers]
        tx.close()
        rx.close()
        return got

    assert run(loop, main) == list("abcd")


def test_rendezvous_send_waits_for_receiver(loop):
    async def main():
        tx, rx = sync.channel(0)
        with pytest.raises(sync.Full):
            tx.try_send("x")                # nobody is receiving
        sender = asyncio.ensure_future(tx.send("x"))
        await settle(20)
        assert not sender.done()
        assert len(rx) == 0
        with pytest.raises(sync.Empty):
            rx.try_recv()                   # values are never taken from a sender that is not running
        assert await rx.recv() == "x"
        await sender
        receiver = asyncio.ensure_future(rx.recv())
        await settle()
        tx.try_send("y")                    # a waiting receiver makes room for exactly one value
        with pytest.raises(sync.Full):
            tx.try_send("z")
        assert await receiver == "y"
        tx.close()
        with pytest.raises(sync.Closed):
            await rx.recv()
        rx.close()

    run(loop, main)


def test_rendezvous_ping_pong(loop):
    async def main():
        tx, rx = sync.channel(0)
        log = []

        async def produce():
            async with tx:
                for i in range(50):
                    await tx.send(i)
                    log.append(("sent", i))

        task = asyncio.ensure_future(produce())
        async for v in rx:
            log.append(("recv", v))
        await task
        rx.close()
        # No buffering: value i+1 is not sent before value i has been received.
        for i in range(49):
            assert log.index(("recv", i)) < log.index(("sent", i + 1))
        return [v for kind, v in log if kind == "recv"]

    assert run(loop, main) == list(range(50))


def test_many_producers_one_consumer(loop):
    async def main():
        tx, rx = sync.channel(3)

        async def produce(sender, base):
            async with sender:
                for i in range(100):
                    await sender.send(base + i)

        tasks = [asyncio.ensure_future(produce(tx.clone(), k * 1000)) for k in range(5)]
        tx.close()
        got = [v async for v in rx]
        await asyncio.gather(*tasks)
        rx.close()
        return got

    got = run(loop, main)
    assert sorted(got) == sorted(k * 1000 + i for k in range(5) for i in range(100))
    for k in range(5):                      # each producer's own order is kept
        mine = [v for v in got if v // 1000 == k]
        assert mine == sorted(mine)


def test_operations_are_coroutines(loop):
    async def main():
        tx, rx = sync.channel(1)
        op = rx.recv()
        assert asyncio.iscoroutine(op)
        assert isinstance(op, collections.abc.Coroutine)
        task = asyncio.create_task(op)      # create_task accepts them, unlike a bare awaitable
        await tx.send(5)
        assert await task == 5
        async with asyncio.TaskGroup() as tg:
            t = tg.create_task(tx.send(6))
        assert t.result() is None
        assert await asyncio.wait_for(rx.recv(), 5) == 6
        op = tx.send(7)
        await op
        with pytest.raises(RuntimeError):
            await op                        # one await per operation
        with pytest.warns(RuntimeWarning, match="never awaited"):
            never = tx.send(8)              # created but not awaited: nothing is sent, and it
            del never                       # warns (here when the endpoint reuses the object)
            tx.send(9).close()
        assert rx.try_recv() == 7
        with pytest.raises(sync.Empty):
            rx.try_recv()
        tx.close()
        rx.close()

    run(loop, main)


def test_operations_held_by_the_caller_stay_separate(loop):
    # Operation objects are recycled only once nobody holds them: a held one keeps its own value.
    async def main():
        tx, rx = sync.channel(4)
        s1 = tx.send("one")
        s2 = tx.send("two")
        assert s1 is not s2
        await s2
        await s1
        r1, r2 = rx.recv(), rx.recv()
        assert r1 is not r2
        got = [await r2, await r1]
        tx.close()
        rx.close()
        return got

    assert run(loop, main) == ["two", "one"]


def test_values_are_returned_as_is(loop):
    async def main():
        tx, rx = sync.channel(8)
        odd = [None, (1, 2), (), ValueError("x"), StopIteration(3), [1]]
        for v in odd:
            await tx.send(v)
        got = [await rx.recv() for _ in odd]
        tx.close()
        rx.close()
        return odd, got

    odd, got = run(loop, main)
    assert all(a is b for a, b in zip(odd, got))


def test_bad_capacity():
    with pytest.raises(ValueError):
        sync.channel(-1)
    for bad in (1.5, "3", None, True):
        with pytest.raises(TypeError):
            sync.channel(bad)
    with pytest.raises(TypeError):
        sync.Sender()
    with pytest.raises(TypeError):
        sync.Receiver()


def test_collected_sender_warns_and_counts_as_closed(loop):
    async def main():
        tx, rx = sync.channel(1)
        waiter = asyncio.ensure_future(rx.recv())
        await settle()

        def drop():
            nonlocal tx
            tx = None

        caught = collect_warnings(drop)
        assert len(caught) == 1 and "Sender" in str(caught[0].message)
        with pytest.raises(sync.Closed):
            await waiter
        rx.close()

    run(loop, main)


def test_collected_receiver_warns_and_counts_as_closed(loop):
    async def main():
        tx, rx = sync.channel(1)
        await tx.send(1)
        blocked = asyncio.ensure_future(tx.send(2))
        await settle()

        def drop():
            nonlocal rx
            rx = None

        caught = collect_warnings(drop)
        assert len(caught) == 1 and "Receiver" in str(caught[0].message)
        with pytest.raises(sync.Closed):
            await blocked
        tx.close()

    run(loop, main)


def test_closed_endpoints_do_not_warn(loop):
    def make_and_drop():
        tx, rx = sync.channel(1)
        tx.clone().close()
        tx.close()
        rx.close()
        utx, urx = sync.unbounded_channel()
        utx.close()
        urx.close()

    assert collect_warnings(make_and_drop) == []


def test_works_across_loops_in_turn(loop_factory):
    # A channel is not tied to a loop: each wait uses the running loop's futures.
    tx, rx = sync.channel(1)
    for _ in range(2):
        lp = loop_factory()

        async def main():
            sender = asyncio.ensure_future(tx.send("v"))
            return await rx.recv(), await sender

        assert lp.run_until_complete(main()) == ("v", None)
        lp.close()
    tx.close()
    rx.close()

