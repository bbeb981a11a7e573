"""pyloop.sync channel misuse is loud: never-awaited operations, end-of-stream receivers, endpoints
used from another thread or loop, and the blocking_* calls for synchronous code."""
from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import textwrap
import threading
import tracemalloc
import warnings
from pathlib import Path

import pytest

from pyloop import sync
from pyloop.task import spawn_blocking

from ._chan_util import run

ROOT = Path(__file__).resolve().parents[2]


def _unawaited(fn):
    """Run ``fn`` (which drops operation objects) and return the never-awaited warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()
        gc.collect()
    return [w for w in caught
            if issubclass(w.category, RuntimeWarning) and "never awaited" in str(w.message)]


def _never_awaited(caught):
    return [str(w.message) for w in caught
            if issubclass(w.category, RuntimeWarning) and "never awaited" in str(w.message)]


# Each case makes an operation of a channel whose endpoints stay open and referenced; `reuse`: the
# endpoint has already completed an operation, so it hands out its kept object again (the fast
# path), which must warn just the same.
_OPS = [
    ("Sender.send", lambda tx, rx: tx.send("v")),
    ("Sender.reserve", lambda tx, rx: tx.reserve()),
    ("Receiver.recv", lambda tx, rx: rx.recv()),
    ("Receiver.__anext__", lambda tx, rx: rx.__anext__()),
]


@pytest.mark.parametrize("reuse", [False, True], ids=["fresh", "reused"])
@pytest.mark.parametrize("name, make", _OPS, ids=[name for name, _ in _OPS])
def test_unawaited_operation_warns_when_it_is_collected(loop, name, make, reuse):
    async def main():
        tx, rx = sync.channel(4)
        if reuse:
            await tx.send(0)
            assert await rx.recv() == 0
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            op = make(tx, rx)
            assert _never_awaited(caught) == []
            del op
            gc.collect()
            # Right then: the endpoints are still open, referenced and not used again.
            messages = _never_awaited(caught)
        assert len(messages) == 1, messages
        assert messages[0].startswith(f"channel operation {name}() was never awaited")
        if name == "Sender.send":
            assert messages[0].endswith(": the value was not sent")
            with pytest.raises(sync.Empty):
                rx.try_recv()              # nothing was sent
        # The endpoints work on, and an awaited operation does not warn.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            await tx.send(2)
            assert await rx.recv() == 2
            tx.close()
            assert [v async for v in rx] == []
            gc.collect()
        assert _never_awaited(caught) == []

    run(loop, main)


def test_unawaited_send_as_a_statement_warns_at_once():
    # The forgotten-await typo itself: the result of `tx.send(v)` is dropped by the statement.
    tx, rx = sync.channel(4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tx.send(1)
        first = _never_awaited(caught)
        tx.send(2)
        second = _never_awaited(caught)
    assert len(first) == 1 and len(second) == 2, second
    assert "Sender.send() was never awaited: the value was not sent" in first[0]
    tx.close()
    rx.close()


def test_unawaited_fanout_receives_warn_when_collected():
    otx, orx = sync.oneshot()
    btx, brx = sync.broadcast(2)
    wtx, wrx = sync.watch(0)
    for name, make in [("OneshotReceiver.recv", orx.recv), ("BroadcastReceiver.recv", brx.recv),
                       ("WatchReceiver.changed", wrx.changed)]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            op = make()
            del op
            gc.collect()
            messages = _never_awaited(caught)
        assert len(messages) == 1 and f"{name}() was never awaited" in messages[0], messages
    for ep in (otx, orx, btx, brx, wtx, wrx):
        ep.close()


def test_unawaited_warning_under_dev_mode_names_the_creation_site(tmp_path):
    # -X dev records coroutine origins; the channels then record where each operation was made.
    script = tmp_path / "forgot.py"
    script.write_text(textwrap.dedent("""
        import asyncio
        from pyloop import sync

        async def main():
            tx, rx = sync.channel(1)
            tx.send("lost")                # forgot the await
            tx.close()
            rx.close()

        asyncio.run(main())
    """))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-X", "dev", str(script)], env=env, text=True,
                          capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "RuntimeWarning: channel operation Sender.send() was never awaited" in proc.stderr
    assert "Operation created at (most recent call last)" in proc.stderr
    assert 'tx.send("lost")' in proc.stderr and "in main" in proc.stderr, proc.stderr


def test_unawaited_fanout_receives_warn():
    def drop():
        otx, orx = sync.oneshot()
        orx.recv()
        btx, brx = sync.broadcast(2)
        brx.recv()
        wtx, wrx = sync.watch(0)
        wrx.changed()
        for ep in (otx, orx, btx, brx, wtx, wrx):
            ep.close()

    names = sorted(str(w.message).split("()")[0].rsplit(" ", 1)[1] for w in _unawaited(drop))
    assert names == ["BroadcastReceiver.recv", "OneshotReceiver.recv", "WatchReceiver.changed"]


def test_awaited_and_closed_operations_do_not_warn(loop):
    async def main():
        tx, rx = sync.channel(4)
        otx, orx = sync.oneshot()

        async def body():
            for i in range(10):
                await tx.send(i)
                assert await rx.recv() == i
            tx.send(99).close()        # closed like a coroutine: no warning, nothing sent
            rx.recv().close()
            orx.recv().close()
            otx.send(1)
            assert await orx == 1
            tx.close()
            assert [v async for v in rx] == []

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            await body()
            gc.collect()
        assert [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)] == []
        rx.close()

    run(loop, main)


def test_unawaited_warning_names_the_creation_site():
    tracemalloc.start()
    try:
        def drop():
            tx, rx = sync.channel(1)
            tx.send("lost")        # the creation site
            tx.close()
            rx.close()

        caught = _unawaited(drop)
    finally:
        tracemalloc.stop()
    assert len(caught) == 1
    msg = str(caught[0].message)
    assert "Operation created at (most recent call last)" in msg
    assert 'tx.send("lost")' in msg and __file__ in msg


def _unclosed(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()
        gc.collect()
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


def test_receiver_at_end_of_stream_does_not_warn(loop):
    async def main():
        def pattern():
            tx, rx = sync.channel(4)
            utx, urx = sync.unbounded_channel()
            btx, brx = sync.broadcast(4)
            wtx, wrx = sync.watch(0)
            otx, orx = sync.oneshot()
            return tx, rx, utx, urx, btx, brx, wtx, wrx, otx, orx

        tx, rx, utx, urx, btx, brx, wtx, wrx, otx, orx = pattern()

        async def drained():
            nonlocal tx, rx, utx, urx, btx, brx, wtx, wrx, otx, orx
            async with tx, utx, btx, wtx:
                await tx.send(1)
                utx.send(2)
                btx.send(3)
                wtx.send(4)
            otx.close()
            assert [v async for v in rx] == [1]
            assert [v async for v in urx] == [2]
            assert [v async for v in brx] == [3]
            assert [v async for v in wrx] == [4]
            with pytest.raises(sync.Closed):
                await orx
            tx = rx = utx = urx = btx = brx = wtx = wrx = otx = orx = None

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            await drained()
            gc.collect()
        assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []

        def not_drained():
            # Still open, or a value left: these warn as before.
            tx, rx = sync.channel(4)
            tx.try_send(1)
            tx.close()
            btx, brx = sync.broadcast(4)
            btx.send(1)
            btx.close()
            wtx, wrx = sync.watch(0)
            wtx.send(1)
            wtx.close()
            otx, orx = sync.oneshot()
            otx.send(1)
            del rx, brx, wrx, orx

        names = sorted(m.split()[1] for m in _unclosed(not_drained))
        assert names == ["BroadcastReceiver", "OneshotReceiver", "Receiver", "WatchReceiver"]

    run(loop, main)


# ---- endpoints used from another thread or loop --------------------------------------------------

def test_use_from_another_thread_raises(loop):
    async def main():
        tx, rx = sync.channel(2)
        utx, urx = sync.unbounded_channel()
        await tx.send(0)

        def foreign():
            errors = []
            for call in (lambda: tx.try_send(1), lambda: tx.send(1), lambda: tx.reserve(),
                         lambda: tx.try_reserve(), lambda: rx.try_recv(), lambda: rx.recv(),
                         lambda: utx.send(1), lambda: urx.try_recv()):
                with pytest.raises(RuntimeError) as info:
                    call()
                errors.append(str(info.value))
            return errors

        errors = await asyncio.to_thread(foreign)
        assert len(errors) == 8
        for msg in errors:
            assert "not thread-safe" in msg and "blocking_send()/blocking_recv()" in msg
            assert "call_soon_threadsafe" in msg
        assert rx.try_recv() == 0                  # nothing moved
        with pytest.raises(sync.Empty):
            urx.try_recv()
        for ep in (tx, rx, utx, urx):
            ep.close()

    run(loop, main)


def test_close_from_another_thread_is_handed_to_the_loop(loop):
    async def main():
        tx, rx = sync.channel(1)
        waiter = asyncio.ensure_future(rx.recv())
        await asyncio.sleep(0)
        await asyncio.to_thread(tx.close)
        with pytest.raises(sync.Closed):
            await waiter
        rx.close()

    run(loop, main)


def test_waiting_on_another_loop_raises(loop_factory):
    tx, rx = sync.channel(1)
    first = loop_factory()

    async def fill():
        await tx.send(0)
        blocked = asyncio.ensure_future(tx.send(1))     # waits on `first`
        await asyncio.sleep(0)
        return blocked

    blocked = first.run_until_complete(fill())
    second = loop_factory()

    async def on_second():
        with pytest.raises(RuntimeError, match="bound to a different event loop"):
            await tx.send(2)
        # Refused before it was registered: the channel still holds one item and one waiter.
        assert len(rx) == 1
        with pytest.raises(sync.Full):
            tx.try_send(3)

    second.run_until_complete(on_second())
    second.close()
    blocked.cancel()
    first.run_until_complete(asyncio.sleep(0))
    first.close()
    tx.close()
    rx.close()


# ---- blocking_send / blocking_recv --------------------------------------------------------------

@pytest.mark.parametrize("bounded", [True, False])
def test_blocking_send_from_a_plain_thread(loop, bounded):
    async def main():
        tx, rx = sync.channel(1) if bounded else sync.unbounded_channel()

        def produce():
            for i in range(20):
                tx.blocking_send(i)
            tx.close()

        thread = threading.Thread(target=produce)
        thread.start()
        got = [v async for v in rx]
        await asyncio.to_thread(thread.join)
        assert got == list(range(20))

    run(loop, main)


def test_blocking_recv_from_spawn_blocking(loop):
    async def main():
        tx, rx = sync.channel(1)

        def consume():
            got = []
            while True:
                try:
                    got.append(rx.blocking_recv())
                except sync.Closed:
                    return got

        handle = spawn_blocking(consume)
        async with tx:
            for i in range(20):
                await tx.send(i)
        assert await handle == list(range(20))

    run(loop, main)


def test_blocking_send_from_spawn_blocking_and_closed(loop):
    async def main():
        tx, rx = sync.channel(0)
        utx, urx = sync.unbounded_channel()

        def produce():
            tx.blocking_send("a")
            utx.blocking_send("b")
            rx_closed.wait()
            for call in (lambda: tx.blocking_send("c"), lambda: utx.blocking_send("d")):
                with pytest.raises(sync.Closed):
                    call()

        rx_closed = threading.Event()
        handle = spawn_blocking(produce)
        assert await rx.recv() == "a"
        assert await urx.recv() == "b"
        rx.close()
        urx.close()
        rx_closed.set()
        await handle
        tx.close()
        utx.close()

    run(loop, main)


def test_blocking_calls_refused_on_the_loop_thread(loop):
    tx, rx = None, None

    async def main():
        nonlocal tx, rx
        tx, rx = sync.channel(1)
        utx, urx = sync.unbounded_channel()
        for call in (lambda: tx.blocking_send(1), lambda: rx.blocking_recv(),
                     lambda: utx.blocking_send(1)):
            with pytest.raises(RuntimeError, match="would block the loop"):
                call()
        utx.close()
        urx.close()

    run(loop, main)
    # The loop's own thread, the loop not running: waiting for it would never end.
    with pytest.raises(RuntimeError, match="would deadlock"):
        tx.blocking_send(1)
    with pytest.raises(RuntimeError, match="would deadlock"):
        rx.blocking_recv()
    tx.close()
    rx.close()


def test_blocking_call_on_an_unbound_channel_raises():
    tx, rx = sync.channel(1)
    with pytest.raises(RuntimeError, match="not bound to an event loop"):
        tx.blocking_send(1)
    tx.close()
    rx.close()


# ---- oneshot, broadcast, watch ------------------------------------------------------------------

def test_fanout_use_from_another_thread_raises(loop):
    async def main():
        otx, orx = sync.oneshot()
        btx, brx = sync.broadcast(4)
        wtx, wrx = sync.watch(0)

        def foreign():
            errors = []
            for call in (lambda: otx.send(1), lambda: orx.try_recv(), lambda: btx.send(1),
                         lambda: brx.try_recv(), lambda: wtx.send(1)):
                with pytest.raises(RuntimeError) as info:
                    call()
                errors.append(str(info.value))
            return errors

        errors = await asyncio.to_thread(foreign)
        assert len(errors) == 5 and all("not thread-safe" in m for m in errors)
        with pytest.raises(sync.Empty):
            orx.try_recv()
        with pytest.raises(sync.Empty):
            brx.try_recv()
        assert wrx.borrow() == 0
        # close() from another thread is handed to the loop
        waiting = asyncio.ensure_future(brx.recv())
        await asyncio.sleep(0)
        await asyncio.to_thread(btx.close)
        with pytest.raises(sync.Closed):
            await waiting
        for ep in (otx, orx, brx, wtx, wrx):
            ep.close()

    run(loop, main)


def test_oneshot_and_broadcast_blocking_recv(loop):
    async def main():
        otx, orx = sync.oneshot()
        btx, brx = sync.broadcast(4)

        def consume():
            got = [orx.blocking_recv()]
            while True:
                try:
                    got.append(brx.blocking_recv())
                except sync.Closed:
                    return got

        handle = spawn_blocking(consume)
        await asyncio.sleep(0)
        otx.send("first")
        async with btx:
            for i in range(3):
                btx.send(i)
                await asyncio.sleep(0.001)
        assert await handle == ["first", 0, 1, 2]
        brx.close()
        with pytest.raises(RuntimeError, match="would block the loop"):
            orx.blocking_recv()

    run(loop, main)


def test_oneshot_blocking_recv_closed_from_a_plain_thread(loop):
    async def main():
        otx, orx = sync.oneshot()
        result = []

        def consume():
            try:
                orx.blocking_recv()
            except sync.Closed as exc:
                result.append(exc)

        thread = threading.Thread(target=consume)
        thread.start()
        await asyncio.sleep(0.01)
        otx.close()
        await asyncio.to_thread(thread.join)
        assert len(result) == 1 and isinstance(result[0], sync.Closed)

    run(loop, main)


def test_sender_collected_in_another_thread_is_closed_on_the_loop(loop):
    loop.set_debug(True)       # asyncio then refuses a future woken from another thread

    async def main():
        tx, rx = sync.channel(1)
        waiter = asyncio.ensure_future(rx.recv())
        await asyncio.sleep(0)
        box = [tx]
        del tx

        def drop():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ResourceWarning)
                box.clear()
                gc.collect()

        await asyncio.to_thread(drop)
        with pytest.raises(sync.Closed):
            await asyncio.wait_for(waiter, 5)
        rx.close()

    run(loop, main)


def test_awaited_operations_that_wait_do_not_warn(loop):
    # The operations that suspend (full buffer, rendezvous, cancelled waits) were awaited: none
    # of them warns, whether it completed, failed or was cancelled.
    async def pipeline(capacity):
        tx, rx = sync.channel(capacity)

        async def produce():
            for i in range(20):
                await tx.send(i)
                permit = await tx.reserve()
                permit.send(-i)
            tx.close()

        task = asyncio.ensure_future(produce())
        got = [v async for v in rx]
        await task
        assert got == [v for i in range(20) for v in (i, -i)]
        with pytest.raises(sync.Closed):
            await rx.recv()                    # at the end of the stream: awaited, fails

    async def cancelled_wait(capacity):
        tx, rx = sync.channel(capacity)
        waiting = asyncio.ensure_future(rx.recv())
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        tx.close()
        rx.close()

    async def main():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for capacity in (0, 1):
                await pipeline(capacity)
                await cancelled_wait(capacity)
            gc.collect()
        assert _never_awaited(caught) == []

    run(loop, main)
