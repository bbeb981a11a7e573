"""pyloop.net: listeners as async streams of connections, and byte streams, on every loop."""

from __future__ import annotations

import asyncio
import os
import socket
import struct

import pytest

from pyloop.net import TcpListener, TcpStream, UnixListener, UnixStream
from tests.transports._netutil import sock_path, tls  # noqa: F401  (fixtures)

TIMEOUT = 60.0


def run(loop, coro):
    return loop.run_until_complete(asyncio.wait_for(coro, TIMEOUT))


async def wait_until(predicate, what: str, timeout: float = 30.0) -> None:
    """Poll a condition the test cannot await directly (kernel buffers filling up)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.001)


async def echo(conn):
    async with conn:
        async for chunk in conn:
            await conn.write_all(chunk)


async def serve_echo(listener):
    async with asyncio.TaskGroup() as tg:
        async for conn in listener:
            tg.create_task(echo(conn))


def ipv6_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


# -- listener as a stream of connections ---------------------------------------

def test_listener_serves_clients_concurrently(loop):
    async def client(port, i):
        async with await TcpStream.connect("127.0.0.1", port) as s:
            msg = f"client {i} ".encode() * 1000
            await s.write_all(msg)
            await s.shutdown()
            assert await s.read_to_end() == msg

    async def main():
        listener = await TcpListener.bind("127.0.0.1", 0)
        host, port = listener.local_addr
        assert host == "127.0.0.1" and port > 0
        server = asyncio.create_task(serve_echo(listener))
        await asyncio.gather(*(client(port, i) for i in range(20)))
        listener.close()
        await listener.wait_closed()
        await server  # async for ended, handlers finished

    run(loop, main())


def test_accept_returns_connections_in_arrival_order(loop):
    async def main():
        async with await TcpListener.bind("127.0.0.1", 0) as listener:
            port = listener.local_addr[1]
            clients = []
            for _ in range(5):
                # Each connect completes in the kernel backlog: nobody accepts yet.
                clients.append(await TcpStream.connect("127.0.0.1", port))
            for c in clients:
                conn, addr = await listener.accept()
                assert addr == c.local_addr
                assert conn.peer_addr == c.local_addr
                assert conn.local_addr == c.peer_addr
                assert isinstance(conn, TcpStream)
                conn.close()
                await conn.wait_closed()
            for c in clients:
                c.close()
                await c.wait_closed()

    run(loop, main())


def test_concurrent_accept_calls_each_get_a_connection(loop):
    async def main():
        async with await TcpListener.bind("127.0.0.1", 0) as listener:
            port = listener.local_addr[1]
            accepts = [asyncio.create_task(listener.accept()) for _ in range(3)]
            clients = [await TcpStream.connect("127.0.0.1", port) for _ in range(3)]
            done = await asyncio.gather(*accepts)
            assert sorted(addr for _, addr in done) == sorted(c.local_addr for c in clients)
            for conn, _ in done:
                conn.close()
            for c in clients:
                c.close()

    run(loop, main())


def test_listener_close_ends_async_for_and_pending_accepts(loop):
    async def main():
        listener = await TcpListener.bind("127.0.0.1", 0)
        got = []

        async def consume():
            async for conn in listener:
                got.append(conn)
                conn.close()

        consumer = asyncio.create_task(consume())
        waiter = asyncio.create_task(listener.accept())
        c = await TcpStream.connect("127.0.0.1", listener.local_addr[1])
        await wait_until(lambda: got or waiter.done(), "the connection to be accepted")
        listener.close()
        await listener.wait_closed()
        await consumer
        if not waiter.done() or waiter.exception() is not None:
            with pytest.raises(ConnectionAbortedError):
                await waiter
        else:
            waiter.result()[0].close()
        with pytest.raises(ConnectionAbortedError):
            await listener.accept()
        c.close()
        listener.close()  # twice is fine

    run(loop, main())


def test_unaccepted_connections_are_closed_with_the_listener(loop):
    async def main():
        listener = await TcpListener.bind("127.0.0.1", 0)
        port = listener.local_addr[1]
        clients = [await TcpStream.connect("127.0.0.1", port) for _ in range(3)]
        listener.close()
        for c in clients:
            try:
                assert await c.read() == b""
            except ConnectionResetError:
                pass
            c.close()
        with pytest.raises(ConnectionRefusedError):
            await TcpStream.connect("127.0.0.1", port)

    run(loop, main())


def test_port_zero_on_all_interfaces_gives_one_port(loop):
    async def main():
        async with await TcpListener.bind(None, 0) as listener:
            ports = {s.getsockname()[1] for s in listener.sockets}
            assert len(ports) == 1
            s = await TcpStream.connect("127.0.0.1", ports.pop())
            conn, _ = await listener.accept()
            await s.write_all(b"hi")
            assert await conn.read_exact(2) == b"hi"
            s.close()
            conn.close()

    run(loop, main())


# -- reading --------------------------------------------------------------------

async def connected_pair(**kwargs):
    listener = await TcpListener.bind("127.0.0.1", 0, **kwargs)
    client = await TcpStream.connect("127.0.0.1", listener.local_addr[1], **kwargs)
    server, _ = await listener.accept()
    listener.close()
    return client, server


async def close_all(*streams):
    for s in streams:
        s.close()
    for s in streams:
        await s.wait_closed()


def test_read_variants_and_eof(loop):
    async def main():
        client, server = await connected_pair()
        await client.write_all(b"header:0005hello line one\nline two\r\nrest")
        assert await server.read_until(b":") == b"header:"
        size = int(await server.read_exact(4))
        assert await server.read_exact(size) == b"hello"
        assert await server.read_until(b"\n") == b" line one\n"
        assert await server.read_until(b"\r\n") == b"line two\r\n"
        assert await server.read_exact(0) == b""
        assert await server.read(0) == b""
        assert await server.read(2) == b"re"
        await client.shutdown()  # half-close: EOF for the server
        assert await server.read() == b"st"
        assert await server.read() == b""
        assert await server.read() == b""
        assert server.at_eof()
        with pytest.raises(asyncio.IncompleteReadError) as info:
            await server.read_exact(1)
        assert info.value.partial == b""
        # The other direction still works after the client's half-close.
        await server.write_all(b"reply")
        await server.shutdown()
        assert await client.read_to_end() == b"reply"
        await close_all(client, server)

    run(loop, main())


def test_incomplete_reads_keep_partial_data(loop):
    async def main():
        client, server = await connected_pair()
        await client.write_all(b"abc")
        await client.shutdown()
        with pytest.raises(asyncio.IncompleteReadError) as info:
            await server.read_exact(10)
        assert info.value.partial == b"abc" and info.value.expected == 10
        await close_all(client, server)

        client, server = await connected_pair()
        await client.write_all(b"no separator")
        await client.shutdown()
        with pytest.raises(asyncio.IncompleteReadError) as info:
            await server.read_until(b"\n")
        assert info.value.partial == b"no separator"
        await close_all(client, server)

    run(loop, main())


def test_read_until_limit(loop):
    async def main():
        client, server = await connected_pair()
        await client.write_all(b"x" * 100 + b"\n")
        with pytest.raises(asyncio.LimitOverrunError):
            await server.read_until(b"\n", max_size=50)
        # Data stays buffered: a larger limit gets it all.
        assert await server.read_until(b"\n", max_size=1000) == b"x" * 100 + b"\n"
        with pytest.raises(ValueError):
            await server.read_until(b"")
        with pytest.raises(TypeError):
            await server.read_until("\n")
        await close_all(client, server)

    run(loop, main())


def test_async_for_chunks_and_large_transfer(loop):
    payload = os.urandom(3 * 1024 * 1024)

    async def main():
        client, server = await connected_pair()

        async def send():
            for i in range(0, len(payload), 100_000):
                await client.write_all(payload[i:i + 100_000])
            await client.shutdown()

        sender = asyncio.create_task(send())
        parts = [chunk async for chunk in server]
        await sender
        assert b"".join(parts) == payload
        await close_all(client, server)

    run(loop, main())


def test_read_exact_larger_than_limit(loop):
    async def main():
        client, server = await connected_pair(limit=4096)
        data = os.urandom(100_000)
        sender = asyncio.create_task(client.write_all(data))
        assert await server.read_exact(len(data)) == data
        await sender
        await close_all(client, server)

    run(loop, main())


def test_two_readers_is_an_error_and_cancelled_read_loses_nothing(loop):
    async def main():
        client, server = await connected_pair()
        first = asyncio.create_task(server.read())
        await wait_until(lambda: server._waiter is not None, "the first reader to wait")
        with pytest.raises(RuntimeError):
            await server.read()
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        await client.write_all(b"kept")
        assert await server.read_exact(4) == b"kept"
        await close_all(client, server)

    run(loop, main())


def test_concurrent_read_and_write_tasks(loop):
    """Both directions at once, each side reading in one task and writing in another."""
    size = 2 * 1024 * 1024
    a_data, b_data = os.urandom(size), os.urandom(size)

    async def main():
        client, server = await connected_pair()

        async def writer(s, data):
            for i in range(0, len(data), 65536):
                await s.write_all(data[i:i + 65536])
            await s.shutdown()

        results = await asyncio.gather(
            writer(client, a_data), writer(server, b_data),
            client.read_to_end(), server.read_to_end())
        assert results[2] == b_data and results[3] == a_data
        await close_all(client, server)

    run(loop, main())


# -- flow control -------------------------------------------------------------

def test_write_all_waits_for_a_slow_reader_and_memory_stays_bounded(loop):
    chunk = 64 * 1024
    total = 16 * 1024 * 1024
    limit = 128 * 1024

    async def main():
        client, server = await connected_pair(limit=limit)
        transport = server.transport
        transport.set_write_buffer_limits(high=256 * 1024)
        high = transport.get_write_buffer_limits()[1]
        sent = 0
        worst_buffer = 0

        async def produce():
            nonlocal sent, worst_buffer
            block = b"z" * chunk
            while sent < total:
                await server.write_all(block)
                sent += chunk
                worst_buffer = max(worst_buffer, transport.get_write_buffer_size())
            await server.shutdown()

        producer = asyncio.create_task(produce())
        # Nobody reads: the client pauses its transport, the kernel buffers fill,
        # and the producer must block well before it has sent everything.
        await wait_until(lambda: not client.transport.is_reading(), "the reader to pause")
        assert client.buffered <= limit + chunk * 4
        stalled_at = sent

        async def progress_stops():
            last = -1
            while sent != last:
                last = sent
                for _ in range(50):
                    await asyncio.sleep(0)
        await progress_stops()
        assert not producer.done()
        assert sent < total
        assert worst_buffer <= high + chunk
        assert stalled_at <= sent
        # Now read slowly; everything arrives and memory stays bounded on both ends.
        received = 0
        while True:
            data = await client.read(10_000)
            if not data:
                break
            received += len(data)
            assert client.buffered <= limit + 4 * chunk
        await producer
        assert received == total
        assert worst_buffer <= high + chunk
        await close_all(client, server)

    run(loop, main())


# -- failures -------------------------------------------------------------------

def test_peer_reset_raises_connection_reset(loop):
    async def main():
        client, server = await connected_pair()
        sock = client.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await client.write_all(b"last words")
        client.abort()  # linger 0: the kernel sends RST
        assert await server.read_exact(10) == b"last words"
        with pytest.raises(ConnectionResetError):
            while await server.read():
                pass
        with pytest.raises(ConnectionResetError):
            await server.write_all(b"anyone?")
        with pytest.raises(ConnectionResetError):
            await server.read()
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_writing_to_a_reset_peer_raises(loop):
    async def main():
        client, server = await connected_pair()
        sock = client.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.abort()
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            for _ in range(10_000):
                await server.write_all(b"x" * 65536)
                await asyncio.sleep(0)
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_use_after_close_and_shutdown(loop):
    async def main():
        client, server = await connected_pair()
        await client.shutdown()
        await client.shutdown()  # idempotent
        with pytest.raises(RuntimeError):
            client.write(b"x")
        assert await server.read() == b""
        await server.write_all(b"still open")
        server.close()
        await server.wait_closed()
        assert server.is_closing()
        with pytest.raises(RuntimeError):
            await server.write_all(b"x")
        assert await client.read_to_end() == b"still open"
        client.close()
        await client.wait_closed()
        assert await client.read() == b""

    run(loop, main())


def test_connect_refused(loop):
    async def main():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with pytest.raises(ConnectionRefusedError):
            await TcpStream.connect("127.0.0.1", port)
        with pytest.raises(ConnectionRefusedError):
            await TcpStream.connect("127.0.0.1", port, timeout=30)

    run(loop, main())


def test_bad_arguments(loop):
    async def main():
        with pytest.raises(OverflowError):
            await TcpListener.bind("127.0.0.1", 70000)
        with pytest.raises(OverflowError):
            await TcpListener.bind("127.0.0.1", -1)
        with pytest.raises(OverflowError):
            await TcpStream.connect("127.0.0.1", 65536)
        with pytest.raises(TypeError):
            await TcpListener.bind("127.0.0.1", "80")
        with pytest.raises(TypeError):
            await TcpListener.bind(127, 0)
        with pytest.raises(TypeError):
            await TcpStream.connect(None, 80)
        with pytest.raises(TypeError):
            await TcpStream.connect("127.0.0.1", 80.0)
        with pytest.raises(TypeError):
            await TcpListener.bind("127.0.0.1", 0, backlog="x")
        with pytest.raises(ValueError):
            await TcpListener.bind("127.0.0.1", 0, limit=0)
        with pytest.raises(TypeError):
            await TcpListener.bind("127.0.0.1", 0, ssl=True)
        with pytest.raises(TypeError):
            await UnixListener.bind(12.5)
        with pytest.raises(OSError):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                s.listen()
                await TcpListener.bind("127.0.0.1", s.getsockname()[1], reuse_address=False)
        client, server = await connected_pair()
        with pytest.raises(TypeError):
            await server.read("10")
        with pytest.raises(ValueError):
            await server.read_exact(-1)
        with pytest.raises(TypeError):
            client.write("text")
        await close_all(client, server)

    run(loop, main())


@pytest.mark.skip_loops("uvloop", reason="uvloop's create_server does not range-check the port")
def test_asyncio_agrees_on_port_range(loop):
    """The reference for test_bad_arguments: the loop's own API raises OverflowError too."""
    async def main():
        with pytest.raises(OverflowError):
            await loop.create_server(asyncio.Protocol, "127.0.0.1", 70000)

    run(loop, main())


# -- other families and TLS -------------------------------------------------------

def test_unix_listener_and_stream(loop, sock_path):  # noqa: F811  (the fixture)
    async def main():
        with open(sock_path, "w"):
            pass  # a regular file is not replaced
        with pytest.raises(OSError):
            await UnixListener.bind(sock_path)
        os.remove(sock_path)
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(sock_path)
        stale.close()  # leaves a stale socket file: that one is replaced

        listener = await UnixListener.bind(sock_path)
        assert listener.path == sock_path and listener.local_addr == sock_path
        server = asyncio.create_task(serve_echo(listener))
        for _ in range(3):
            async with await UnixStream.connect(sock_path) as s:
                await s.write_all(b"over unix")
                await s.shutdown()
                assert await s.read_to_end() == b"over unix"
        listener.close()
        await server
        assert not os.path.exists(sock_path)

    run(loop, main())


@pytest.mark.skipif(not ipv6_available(), reason="no IPv6 loopback here")
def test_ipv6(loop):
    async def main():
        async with await TcpListener.bind("::1", 0) as listener:
            host, port = listener.local_addr[:2]
            assert host == "::1"
            server = asyncio.create_task(serve_echo(listener))
            async with await TcpStream.connect("::1", port) as s:
                assert s.peer_addr[:2] == ("::1", port)
                await s.write_all(b"six")
                assert await s.read_exact(3) == b"six"
        await server

    run(loop, main())


def test_tls(loop, tls):  # noqa: F811
    async def main():
        async with await TcpListener.bind("127.0.0.1", 0, ssl=tls.server_context()) as listener:
            port = listener.local_addr[1]
            server = asyncio.create_task(serve_echo(listener))
            # A client that fails its handshake does not end the listener.
            with pytest.raises(Exception):
                await TcpStream.connect("127.0.0.1", port, ssl=True, server_hostname="localhost")
            async with await TcpStream.connect("127.0.0.1", port, ssl=tls.client_context(),
                                               server_hostname="localhost") as s:
                assert s.get_extra_info("ssl_object") is not None
                await s.write_all(b"secret" * 1000)
                assert await s.read_exact(6000) == b"secret" * 1000
                with pytest.raises(NotImplementedError):
                    await s.shutdown()  # no half-close in TLS
        await server

    run(loop, main())


def test_unclosed_listener_warns(loop):
    import gc

    async def main():
        return await TcpListener.bind("127.0.0.1", 0)

    listener = run(loop, main())
    port = listener.local_addr[1]
    with pytest.warns(ResourceWarning, match="unclosed listener"):
        del listener
        gc.collect()
    with socket.socket() as probe:  # the port was released
        with pytest.raises(ConnectionRefusedError):
            probe.connect(("127.0.0.1", port))
