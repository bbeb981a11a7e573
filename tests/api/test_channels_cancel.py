"""pyloop.sync mpsc channels: cancellation at every await point, and reserve()/Permit.

The rule under test: a CancelledError from send/reserve means nothing was sent and no slot is held;
from recv, that nothing was consumed.
"""
from __future__ import annotations

import asyncio
import gc

import pytest

from pyloop import sync

from ._chan_util import collect_warnings, run, settle


async def drain(rx) -> list:
    out = []
    while True:
        try:
            out.append(rx.try_recv())
        except (sync.Empty, sync.Closed):
            return out


def test_cancel_waiting_sender_sends_nothing(loop):
    async def main():
        tx, rx = sync.channel(1)
        await tx.send("a")
        sender = asyncio.ensure_future(tx.send("lost?"))
        await settle()
        sender.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sender
        assert await rx.recv() == "a"
        await tx.send("b")                  # the slot is free again
        assert await drain(rx) == ["b"]
        tx.close()
        rx.close()

    run(loop, main)


def test_cancel_granted_sender_before_it_runs(loop):
    async def main():
        tx, rx = sync.channel(1)
        await tx.send("a")
        first = asyncio.ensure_future(tx.send("first"))
        second = asyncio.ensure_future(tx.send("second"))
        await settle()
        assert await rx.recv() == "a"       # grants the slot to `first`, which has not run yet
        first.cancel()                      # ... and is cancelled before it does
        with pytest.raises(asyncio.CancelledError):
            await first
        await second                        # the grant passed on to the next sender
        assert await drain(rx) == ["second"]
        tx.close()
        rx.close()

    run(loop, main)


def test_cancel_waiting_receiver_consumes_nothing(loop):
    async def main():
        tx, rx = sync.channel(2)
        receiver = asyncio.ensure_future(rx.recv())
        await settle()
        receiver.cancel()
        with pytest.raises(asyncio.CancelledError):
            await receiver
        await tx.send(1)
        assert await rx.recv() == 1
        tx.close()
        rx.close()

    run(loop, main)


def test_cancel_receiver_after_value_was_handed(loop):
    async def main():
        tx, rx = sync.channel(2)
        receiver = asyncio.ensure_future(rx.recv())
        await settle()
        await tx.send("a")                  # handed straight to the waiting receiver
        receiver.cancel()                   # cancelled before it resumed
        await tx.send("b")
        with pytest.raises(asyncio.CancelledError):
            await receiver
        assert await rx.recv() == "a"       # given back at the front
        assert await rx.recv() == "b"
        tx.close()
        rx.close()

    run(loop, main)


def test_handed_value_given_back_to_next_waiting_receiver(loop):
    async def main():
        tx, rx = sync.channel(1)
        r1 = asyncio.ensure_future(rx.recv())
        r2 = asyncio.ensure_future(rx.recv())
        await settle()
        tx.try_send("a")                    # r1 is handed "a"
        r1.cancel()
        with pytest.raises(asyncio.CancelledError):
            await r1
        assert await r2 == "a"
        tx.close()
        rx.close()

    run(loop, main)


def test_give_back_may_exceed_capacity_briefly(loop):
    async def main():
        tx, rx = sync.channel(1)
        receiver = asyncio.ensure_future(rx.recv())
        await settle()
        tx.try_send("a")                    # handed to the receiver: the buffer is free again
        tx.try_send("b")                    # fills it
        receiver.cancel()
        with pytest.raises(asyncio.CancelledError):
            await receiver
        assert len(rx) == 2                 # "a" came back in front of "b"
        with pytest.raises(sync.Full):
            tx.try_send("c")
        assert [rx.try_recv(), rx.try_recv()] == ["a", "b"]
        tx.try_send("c")
        assert rx.try_recv() == "c"
        tx.close()
        rx.close()

    run(loop, main)


def test_unbounded_cancelled_receiver(loop):
    async def main():
        tx, rx = sync.unbounded_channel()
        receiver = asyncio.ensure_future(rx.recv())
        await settle()
        tx.send(1)
        tx.send(2)
        receiver.cancel()
        with pytest.raises(asyncio.CancelledError):
            await receiver
        tx.close()
        got = [v async for v in rx]
        rx.close()
        return got

    assert run(loop, main) == [1, 2]


def test_wait_for_timeout_loses_nothing(loop):
    async def main():
        tx, rx = sync.channel(0)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(rx.recv(), 0.01)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(tx.send("x"), 0.01)
        receiver = asyncio.ensure_future(rx.recv())
        await tx.send("y")
        assert await receiver == "y"
        tx.close()
        rx.close()

    run(loop, main)


def test_rendezvous_cancelled_receiver_keeps_value(loop):
    async def main():
        tx, rx = sync.channel(0)
        receiver = asyncio.ensure_future(rx.recv())
        await settle()
        await tx.send("v")                  # handed over: the send is complete
        receiver.cancel()
        with pytest.raises(asyncio.CancelledError):
            await receiver
        assert rx.try_recv() == "v"         # nothing lost
        tx.close()
        rx.close()

    run(loop, main)


def test_cancel_inside_coroutine_that_awaits(loop):
    # The operation awaited from a coroutine (not as the task's own coroutine): throw() reaches it.
    async def main():
        tx, rx = sync.channel(4)
        got = []

        async def consumer():
            while True:
                got.append(await rx.recv())

        task = asyncio.ensure_future(consumer())
        await settle()
        tx.try_send(1)
        task.cancel()                       # the value 1 was handed; the consumer never saw it
        with pytest.raises(asyncio.CancelledError):
            await task
        assert got == []
        assert rx.try_recv() == 1
        tx.close()
        rx.close()

    run(loop, main)


def test_closed_coroutine_gives_value_back(loop):
    async def main():
        tx, rx = sync.channel(1)

        async def consumer():
            return await rx.recv()

        coro = consumer()
        fut = coro.send(None)               # suspended in recv, waiting on `fut`
        tx.try_send("v")                    # handed over
        assert fut.done()
        coro.close()                        # abandoned without resuming
        assert rx.try_recv() == "v"
        tx.close()
        rx.close()

    run(loop, main)


def test_abandoned_operation_gives_value_back(loop):
    # An operation driven by hand and dropped after it was handed a value (what happens when a task
    # whose own coroutine it is gets destroyed while pending): the value is not lost.
    async def main():
        tx, rx = sync.channel(1)
        op = rx.recv()
        fut = op.send(None)                 # waiting
        tx.try_send("v")                    # handed to it
        assert fut.done()
        del op, fut
        gc.collect()
        assert rx.try_recv() == "v"
        tx.close()
        rx.close()

    run(loop, main)


def test_many_cancellations_lose_and_duplicate_nothing(loop):
    async def main():
        tx, rx = sync.channel(2)
        sent, received = [], []
        n = 300

        async def produce(i):
            await tx.send(i)
            sent.append(i)

        async def consume():
            received.append(await rx.recv())

        producers = [asyncio.ensure_future(produce(i)) for i in range(n)]
        consumers = [asyncio.ensure_future(consume()) for _ in range(n)]
        for k in range(0, n, 3):
            producers[k].cancel()
            consumers[k + 1].cancel()
        await asyncio.gather(*producers, *consumers, return_exceptions=True)
        tx.close()
        received.extend(await drain(rx))
        rx.close()
        return sent, received

    sent, received = run(loop, main)
    assert sorted(received) == sorted(sent)


# ---- reserve / Permit -----------------------------------------------------------------------------

def test_reserve_holds_a_slot(loop):
    async def main():
        tx, rx = sync.channel(1)
        permit = await tx.reserve()
        with pytest.raises(sync.Full):
            tx.try_send("other")
        with pytest.raises(sync.Full):
            tx.try_reserve()
        permit.send("p")
        with pytest.raises(asyncio.InvalidStateError):
            permit.send("again")
        assert rx.try_recv() == "p"
        permit = tx.try_reserve()
        permit.release()
        permit.release()                    # idempotent
        tx.try_send("q")                    # the slot came back
        assert rx.try_recv() == "q"
        tx.close()
        rx.close()

    run(loop, main)


def test_dropped_permit_returns_its_slot(loop):
    async def main():
        tx, rx = sync.channel(1)
        permit = await tx.reserve()
        waiting = asyncio.ensure_future(tx.send("w"))
        await settle()
        assert not waiting.done()
        del permit
        gc.collect()
        await waiting                       # the slot went to the waiting sender
        assert rx.try_recv() == "w"
        tx.close()
        rx.close()

    run(loop, main)


def test_cancelled_reserve_holds_nothing(loop):
    async def main():
        tx, rx = sync.channel(1)
        await tx.send("a")
        r1 = asyncio.ensure_future(tx.reserve())
        r2 = asyncio.ensure_future(tx.reserve())
        await settle()
        assert rx.try_recv() == "a"         # grants r1's slot
        r1.cancel()
        with pytest.raises(asyncio.CancelledError):
            await r1
        permit = await r2                   # passed on
        permit.send("b")
        assert rx.try_recv() == "b"
        tx.close()
        rx.close()

    run(loop, main)


def test_permit_outstanding_delays_end_of_stream(loop):
    async def main():
        tx, rx = sync.channel(2)
        permit = await tx.reserve()
        tx.close()
        waiter = asyncio.ensure_future(rx.recv())
        await settle()
        assert not waiter.done()            # the permit may still send
        permit.send("late")
        assert await waiter == "late"
        with pytest.raises(sync.Closed):
            await rx.recv()
        rx.close()

    run(loop, main)


def test_unused_permit_ends_the_stream_when_released(loop):
    async def main():
        tx, rx = sync.channel(2)
        permit = await tx.reserve()
        tx.close()
        waiter = asyncio.ensure_future(rx.recv())
        await settle()
        permit.release()
        with pytest.raises(sync.Closed):
            await waiter
        rx.close()

    run(loop, main)


def test_reserve_on_closed_channel(loop):
    async def main():
        tx, rx = sync.channel(1)
        rx.close()
        with pytest.raises(sync.Closed):
            await tx.reserve()
        with pytest.raises(sync.Closed):
            tx.try_reserve()
        tx.close()

    run(loop, main)


def test_permit_keeps_item_safe_across_cancellation(loop):
    # The pattern permits exist for: wait for room first, then produce the item.
    async def main():
        tx, rx = sync.channel(1)
        await tx.send("full")
        made = []

        async def producer():
            permit = await tx.reserve()
            item = f"item{len(made)}"
            made.append(item)
            permit.send(item)

        task = asyncio.ensure_future(producer())
        await settle()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert made == []                   # nothing was produced, so nothing was lost
        assert await drain(rx) == ["full"]
        tx.close()
        rx.close()

    run(loop, main)


def test_closing_sender_fails_its_waiting_send(loop):
    def scenario():
        lp = loop

        async def main():
            tx, rx = sync.channel(1)
            await tx.send(1)
            task = asyncio.ensure_future(tx.send(2))
            await settle()
            tx.close()
            with pytest.raises(sync.Closed):
                await task
            assert rx.try_recv() == 1
            with pytest.raises(sync.Closed):
                rx.try_recv()
            rx.close()

        run(lp, main)

    assert collect_warnings(scenario) == []
