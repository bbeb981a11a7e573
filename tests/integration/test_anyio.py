"""anyio's asyncio backend running on pyloop (``backend_options={"loop_factory": ...}``).

anyio relies on loop details stock asyncio code rarely touches: task
cancellation with messages and uncancel(), ``call_soon_threadsafe`` from its
worker threads, raw socket wrappers and ``loop.sock_*``-style waits.
"""

from __future__ import annotations

import sys
import threading

import pytest

pytest.importorskip("pyloop._core.loop", reason="pyloop is not built")
anyio = pytest.importorskip("anyio")

from .loops import TEST_TIMEOUT, running_loop_kind  # noqa: E402

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import ExceptionGroup


def arun(loop_factory, func, *args):
    """``anyio.run`` on the asyncio backend with a loop from ``loop_factory``, under a timeout."""
    async def guarded():
        with anyio.fail_after(TEST_TIMEOUT):
            return await func(*args)

    return anyio.run(guarded, backend="asyncio", backend_options={"loop_factory": loop_factory})


def test_runs_on_the_requested_loop(loop_factory, loop_name):
    async def main():
        return running_loop_kind(), anyio.get_current_task().name

    kind, _ = arun(loop_factory, main)
    assert kind == loop_name


def test_task_group_cancel_scope_and_exception_grouping(loop_factory):
    async def main():
        events = []

        # Cancelling the group's scope cancels every child; nothing escapes.
        async with anyio.create_task_group() as tg:
            async def sleeper(i):
                try:
                    await anyio.sleep_forever()
                except anyio.get_cancelled_exc_class():
                    events.append(i)
                    raise

            for i in range(5):
                tg.start_soon(sleeper, i)
            await anyio.wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
        assert sorted(events) == list(range(5))

        # Two failing children: both exceptions, grouped; the sibling is cancelled.
        cancelled = anyio.Event()

        async def fail(exc):
            await anyio.sleep(0)
            raise exc

        async def victim():
            try:
                await anyio.sleep_forever()
            finally:
                cancelled.set()

        with pytest.raises(ExceptionGroup) as info:
            async with anyio.create_task_group() as tg:
                tg.start_soon(victim)
                tg.start_soon(fail, ValueError("one"))
                tg.start_soon(fail, KeyError("two"))
        assert cancelled.is_set()
        assert sorted(type(e).__name__ for e in info.value.exceptions) == ["KeyError", "ValueError"]

        # move_on_after, and a shielded scope that finishes its work while cancelled.
        finished = []
        with anyio.move_on_after(0.05) as scope:
            with anyio.CancelScope(shield=True):
                await anyio.sleep(0.1)
                finished.append("shielded")
            await anyio.sleep_forever()
        assert scope.cancelled_caught and finished == ["shielded"]

        # tg.start(): wait until the child reports it is ready.
        async def service(task_status=anyio.TASK_STATUS_IGNORED):
            task_status.started("ready")
            await anyio.sleep_forever()

        async with anyio.create_task_group() as tg:
            assert await tg.start(service) == "ready"
            tg.cancel_scope.cancel()

    arun(loop_factory, main)


def test_memory_object_streams_producers_consumers(loop_factory):
    async def main():
        for buffer in (0, 10):
            send, receive = anyio.create_memory_object_stream[int](buffer)
            results = []

            async def producer(stream, base):
                async with stream:
                    for i in range(200):
                        await stream.send(base + i)

            async def consumer(stream):
                async with stream:
                    async for item in stream:
                        results.append(item)

            async with anyio.create_task_group() as tg:
                for p in range(3):
                    tg.start_soon(producer, send.clone(), p * 1000)
                for _ in range(2):
                    tg.start_soon(consumer, receive.clone())
                await send.aclose()
                await receive.aclose()
            assert sorted(results) == sorted(p * 1000 + i for p in range(3) for i in range(200))

        send, receive = anyio.create_memory_object_stream[str](1)
        send.send_nowait("a")
        with pytest.raises(anyio.WouldBlock):
            send.send_nowait("b")
        assert receive.receive_nowait() == "a"
        await receive.aclose()
        with pytest.raises(anyio.BrokenResourceError):
            await send.send("c")
        await send.aclose()

    arun(loop_factory, main)


def test_to_thread_and_back(loop_factory, loop_name):
    async def main():
        main_thread = threading.get_ident()

        def blocking(x):
            assert threading.get_ident() != main_thread
            # Back onto the event loop from the worker thread.
            kind = anyio.from_thread.run(async_kind)
            return x * 2, kind

        async def async_kind():
            assert threading.get_ident() == main_thread
            return running_loop_kind()

        results = []

        async def one(i):
            results.append(await anyio.to_thread.run_sync(blocking, i))

        async with anyio.create_task_group() as tg:
            for i in range(30):
                tg.start_soon(one, i)
        assert sorted(results) == [(i * 2, loop_name) for i in range(30)]

        def boom():
            raise LookupError("from the thread")

        with pytest.raises(LookupError, match="from the thread"):
            await anyio.to_thread.run_sync(boom)

        # Cancelling a wait on an abandonable thread returns at once.
        release = threading.Event()
        with anyio.move_on_after(0.05) as scope:
            await anyio.to_thread.run_sync(release.wait, 30, abandon_on_cancel=True)
        release.set()
        assert scope.cancelled_caught

    arun(loop_factory, main)


def test_tcp_listener_and_connect(loop_factory):
    async def main():
        payload = bytes(range(256)) * 8192  # 2 MiB

        async def handle(stream):
            async with stream:
                total = bytearray()
                while len(total) < len(payload):
                    total += await stream.receive()
                await stream.send(bytes(total[::-1]))
                assert await stream.receive() == b"bye"

        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, handle)

            async def client():
                async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                    assert stream.extra(anyio.abc.SocketAttribute.remote_port) == port
                    await stream.send(payload)
                    received = bytearray()
                    while len(received) < len(payload):
                        received += await stream.receive()
                    assert bytes(received) == payload[::-1]
                    await stream.send(b"bye")
                    # The server closes after "bye": the client sees end of stream.
                    with pytest.raises(anyio.EndOfStream):
                        await stream.receive()

            async with anyio.create_task_group() as clients:
                for _ in range(20):
                    clients.start_soon(client)
            tg.cancel_scope.cancel()
        await listener.aclose()

        with pytest.raises(OSError):
            await anyio.connect_tcp("127.0.0.1", port)  # nobody listens any more

    arun(loop_factory, main)


def test_udp_socket(loop_factory):
    async def main():
        async with await anyio.create_udp_socket(local_host="127.0.0.1") as a, \
                await anyio.create_udp_socket(local_host="127.0.0.1") as b:
            b_addr = b.extra(anyio.abc.SocketAttribute.local_address)
            for i in range(10):
                await a.sendto(f"datagram {i}".encode(), *b_addr)
                data, sender = await b.receive()
                assert data == f"datagram {i}".encode()
                assert sender == a.extra(anyio.abc.SocketAttribute.local_address)

    arun(loop_factory, main)


def test_fail_after_timeouts(loop_factory):
    async def main():
        start = anyio.current_time()
        with pytest.raises(TimeoutError):
            with anyio.fail_after(0.1):
                await anyio.sleep(30)
        elapsed = anyio.current_time() - start
        assert 0.09 <= elapsed < 20

        # A deadline that does not expire changes nothing.
        with anyio.fail_after(30):
            await anyio.sleep(0.01)

        # Nested: the inner, shorter deadline fires; the outer scope is untouched.
        with anyio.fail_after(30) as outer:
            with pytest.raises(TimeoutError):
                with anyio.fail_after(0.05):
                    event = anyio.Event()
                    await event.wait()
        assert not outer.cancel_called

        # Timeouts inside a task group cancel a blocked receive.
        send, receive = anyio.create_memory_object_stream[int](0)
        with anyio.move_on_after(0.05) as scope:
            await receive.receive()
        assert scope.cancelled_caught
        await send.aclose()
        await receive.aclose()
        assert running_loop_kind() in ("pyloop", "asyncio")

    arun(loop_factory, main)


def test_run_process(loop_factory):
    async def main():
        result = await anyio.run_process([sys.executable, "-c", "import sys; print(sys.stdin.read().upper())"],
                                         input=b"through a pipe")
        assert result.returncode == 0
        assert result.stdout == b"THROUGH A PIPE\n"
        async with await anyio.open_process([sys.executable, "-c", "import sys; sys.exit(3)"]) as proc:
            assert await proc.wait() == 3

    arun(loop_factory, main)


def test_unix_listener_and_connect(loop_factory, tmp_path):
    path = str(tmp_path / "anyio.sock")

    async def main():
        async def handle(stream):
            async with stream:
                async for chunk in stream:
                    await stream.send(chunk.upper())

        listener = await anyio.create_unix_listener(path)
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, handle)
            async with await anyio.connect_unix(path) as stream:
                data = b"abc" * 100_000
                await stream.send(data)
                received = bytearray()
                while len(received) < len(data):
                    received += await stream.receive()
                assert bytes(received) == data.upper()
            tg.cancel_scope.cancel()
        await listener.aclose()

    arun(loop_factory, main)


def test_wait_readable_and_writable_on_raw_sockets(loop_factory):
    """anyio.wait_readable/wait_writable sit on loop.add_reader/add_writer."""
    import socket

    async def main():
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        try:
            with anyio.move_on_after(0.05) as scope:
                await anyio.wait_readable(a)  # nothing sent yet
            assert scope.cancelled_caught
            await anyio.wait_writable(b)
            b.send(b"ping")
            with anyio.fail_after(30):
                await anyio.wait_readable(a)
            assert a.recv(10) == b"ping"
            # The same socket can be waited on again after a cancelled wait.
            async with anyio.create_task_group() as tg:
                tg.start_soon(anyio.wait_readable, a)
                await anyio.wait_all_tasks_blocked()
                b.send(b"again")
            assert a.recv(10) == b"again"
        finally:
            a.close()
            b.close()

    arun(loop_factory, main)


def test_getaddrinfo(loop_factory):
    import socket

    async def main():
        infos = await anyio.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM)
        assert infos[0][4][:2] == ("127.0.0.1", 80)
        infos = await anyio.getaddrinfo("localhost", "https", family=socket.AF_INET, type=socket.SOCK_STREAM)
        assert ("127.0.0.1", 443) in [info[4][:2] for info in infos]

    arun(loop_factory, main)


def test_open_signal_receiver(loop_factory):
    """Signals delivered through loop.add_signal_handler, as anyio uses them (main thread)."""
    import os
    import signal

    async def main():
        with anyio.open_signal_receiver(signal.SIGUSR1, signal.SIGUSR2) as signals:
            os.kill(os.getpid(), signal.SIGUSR1)
            got = []
            with anyio.fail_after(30):
                async for signum in signals:
                    got.append(signum)
                    if len(got) == 1:
                        os.kill(os.getpid(), signal.SIGUSR2)
                    else:
                        break
            assert got == [signal.SIGUSR1, signal.SIGUSR2]

    previous = signal_handlers()
    arun(loop_factory, main)
    assert signal_handlers() == previous  # the loop put the original handlers back


def signal_handlers():
    import signal

    return {sig: signal.getsignal(sig) for sig in (signal.SIGUSR1, signal.SIGUSR2)}
