"""pyloop.sync.oneshot: one value, once."""
from __future__ import annotations

import asyncio

import pytest

from pyloop import sync

from ._chan_util import collect_warnings, run, settle


def test_send_then_await(loop):
    async def main():
        tx, rx = sync.oneshot()
        tx.send({"k": 1})
        assert tx.is_closed()
        return await rx

    assert run(loop, main) == {"k": 1}


def test_await_then_send_from_callback(loop):
    async def main():
        tx, rx = sync.oneshot()
        asyncio.get_running_loop().call_soon(tx.send, 42)
        return await rx.recv()

    assert run(loop, main) == 42


def test_second_send_is_an_error(loop):
    async def main():
        tx, rx = sync.oneshot()
        tx.send(1)
        with pytest.raises(asyncio.InvalidStateError):
            tx.send(2)
        assert await rx == 1
        with pytest.raises(sync.Closed, match="already received"):
            await rx

    run(loop, main)


def test_sender_closed_without_sending(loop):
    async def main():
        tx, rx = sync.oneshot()
        waiter = asyncio.ensure_future(rx.recv())
        await settle()
        tx.close()
        with pytest.raises(sync.Closed, match="without sending"):
            await waiter
        with pytest.raises(sync.Closed):
            tx.send(1)
        with pytest.raises(sync.Closed):
            rx.try_recv()

    run(loop, main)


def test_sender_collected_without_sending(loop):
    async def main():
        tx, rx = sync.oneshot()
        waiter = asyncio.ensure_future(rx.recv())
        await settle()

        def drop():
            nonlocal tx
            tx = None

        caught = collect_warnings(drop)
        assert len(caught) == 1 and "OneshotSender" in str(caught[0].message)
        with pytest.raises(sync.Closed, match="without sending"):
            await waiter

    run(loop, main)


def test_receiver_closed_refuses_send(loop):
    async def main():
        tx, rx = sync.oneshot()
        rx.close()
        with pytest.raises(sync.Closed):
            tx.send(1)
        assert rx.is_closed()

    run(loop, main)


def test_try_recv(loop):
    async def main():
        tx, rx = sync.oneshot()
        with pytest.raises(sync.Empty):
            rx.try_recv()
        tx.send("v")
        assert rx.try_recv() == "v"
        with pytest.raises(sync.Closed):
            rx.try_recv()

    run(loop, main)


def test_cancelled_receive_loses_nothing(loop):
    async def main():
        tx, rx = sync.oneshot()
        waiter = asyncio.ensure_future(rx.recv())
        await settle()
        tx.send("v")                        # wakes the waiter ...
        waiter.cancel()                     # ... which is cancelled before it runs
        with pytest.raises(asyncio.CancelledError):
            await waiter
        return await rx

    assert run(loop, main) == "v"


def test_used_endpoints_do_not_warn(loop):
    def scenario():
        async def main():
            tx, rx = sync.oneshot()
            tx.send(1)
            await rx
            tx2, rx2 = sync.oneshot()
            tx2.close()
            rx2.close()

        run(loop, main)

    assert collect_warnings(scenario) == []


def test_unreceived_receiver_warns():
    def scenario():
        tx, rx = sync.oneshot()
        tx.send(1)

    caught = collect_warnings(scenario)
    assert [str(w.message).split()[1] for w in caught] == ["OneshotReceiver"]


def test_one_waiter_at_a_time(loop):
    async def main():
        tx, rx = sync.oneshot()
        first = asyncio.ensure_future(rx.recv())
        await settle()
        with pytest.raises(RuntimeError):
            await rx                        # a second concurrent receive is a usage error
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        second = asyncio.ensure_future(rx.recv())   # a cancelled waiter does not block the next
        await settle()
        tx.send(7)
        assert await second == 7
        op = rx.recv()
        with pytest.raises(sync.Closed):
            await op
        with pytest.raises(RuntimeError):
            await op                        # one await per operation

    run(loop, main)
