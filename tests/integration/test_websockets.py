"""The ``websockets`` package (new asyncio API) with server and client on pyloop.

Each test is parametrized over pyloop and stock asyncio; one runs the server on
pyloop in a thread and the client on asyncio.
"""

from __future__ import annotations

import asyncio
import os
import socket

import pytest

pytest.importorskip("pyloop._core.loop", reason="pyloop is not built")
pytest.importorskip("websockets.asyncio.server")
from websockets.asyncio.client import connect  # noqa: E402
from websockets.asyncio.server import broadcast, serve  # noqa: E402
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK  # noqa: E402

import pyloop  # noqa: E402

from .loops import LoopThread, run, running_loop_kind  # noqa: E402

MIB = 1 << 20


async def echo(conn) -> None:
    async for message in conn:
        if message == "whoami":
            await conn.send(running_loop_kind())
        elif message == "ping-me":
            # A server-initiated ping; the client's library answers it.
            pong = await conn.ping(b"server-ping")
            await asyncio.wait_for(pong, 30)
            await conn.send("pong received")
        elif isinstance(message, str) and message.startswith("close "):
            _, code, reason = message.split(" ", 2)
            await conn.close(int(code), reason)
        else:
            await conn.send(message)


def uri(server) -> str:
    host, port = server.sockets[0].getsockname()[:2]
    return f"ws://{host}:{port}/"


@pytest.mark.parametrize("compression", ["deflate", None])
def test_echo_text_binary_and_large_messages(loop_factory, loop_name, compression):
    async def main():
        async with serve(echo, "127.0.0.1", 0, max_size=4 * MIB, compression=compression) as server:
            async with connect(uri(server), max_size=4 * MIB, compression=compression) as ws:
                await ws.send("whoami")
                assert await ws.recv() == loop_name
                await ws.send("h\u00e9llo \u2603")
                assert await ws.recv() == "h\u00e9llo \u2603"
                await ws.send(b"\x00\xff" * 10)
                reply = await ws.recv()
                assert isinstance(reply, bytes) and reply == b"\x00\xff" * 10
                big = os.urandom(MIB)  # incompressible
                await ws.send(big)
                assert await ws.recv() == big
                big_text = "\u2603abc" * (MIB // 4)
                await ws.send(big_text)
                assert await ws.recv() == big_text
                # A fragmented message arrives as one.
                await ws.send([b"frag-", b"ment", b"ed"])
                assert await ws.recv() == b"frag-mented"

    run(loop_factory, main)


def test_message_too_big_closes_with_1009(loop_factory):
    async def main():
        async with serve(echo, "127.0.0.1", 0, max_size=MIB) as server:
            async with connect(uri(server), max_size=8 * MIB) as ws:
                await ws.send(b"x" * (MIB + 1))
                with pytest.raises(ConnectionClosedError) as info:
                    await ws.recv()
                assert info.value.rcvd.code == 1009

    run(loop_factory, main)


def test_ping_pong_both_directions(loop_factory):
    async def main():
        async with serve(echo, "127.0.0.1", 0, ping_interval=None) as server:
            async with connect(uri(server), ping_interval=None) as ws:
                for payload in (b"", b"abc", os.urandom(125)):
                    pong = await ws.ping(payload)
                    latency = await asyncio.wait_for(pong, 30)
                    assert latency >= 0
                pongs = [await ws.ping() for _ in range(20)]
                await asyncio.wait_for(asyncio.gather(*pongs), 30)
                await ws.send("ping-me")
                assert await ws.recv() == "pong received"

    run(loop_factory, main)


def test_close_codes(loop_factory):
    async def main():
        closed_on_server: asyncio.Queue = asyncio.Queue()

        async def handler(conn):
            try:
                await echo(conn)
            except ConnectionClosedError:
                pass  # the abnormal closure case below
            finally:
                await closed_on_server.put((conn.close_code, conn.close_reason))

        async with serve(handler, "127.0.0.1", 0) as server:
            # Normal close from the client.
            async with connect(uri(server)) as ws:
                await ws.send("x")
                await ws.recv()
            assert await asyncio.wait_for(closed_on_server.get(), 30) == (1000, "")

            # The client closes with an application code and reason.
            ws = await connect(uri(server))
            await ws.close(4001, "client going away")
            assert await asyncio.wait_for(closed_on_server.get(), 30) == (4001, "client going away")

            # The server closes with an application code: the client sees it as an error close.
            async with connect(uri(server)) as ws:
                await ws.send("close 4002 server says no")
                with pytest.raises(ConnectionClosedError) as info:
                    await ws.recv()
                assert (info.value.rcvd.code, info.value.rcvd.reason) == (4002, "server says no")
            assert await asyncio.wait_for(closed_on_server.get(), 30) == (4002, "server says no")

            async with connect(uri(server)) as ws:
                await ws.send("close 1000 bye")
                with pytest.raises(ConnectionClosedOK):
                    await ws.recv()
            assert await asyncio.wait_for(closed_on_server.get(), 30) == (1000, "bye")

            # The client's TCP connection drops without a closing handshake: 1006 on the server.
            ws = await connect(uri(server))
            await ws.send("x")
            await ws.recv()
            ws.transport.abort()
            assert await asyncio.wait_for(closed_on_server.get(), 30) == (1006, "")

    run(loop_factory, main)


def test_200_concurrent_connections_and_broadcast(loop_factory, loop_name):
    n = 200

    async def main():
        connected: set = set()
        all_in = asyncio.Event()

        async def handler(conn):
            connected.add(conn)
            if len(connected) == n:
                all_in.set()
            try:
                async for message in conn:
                    await conn.send(f"{message}:{running_loop_kind()}")
            except ConnectionClosed:
                pass
            finally:
                connected.discard(conn)

        async with serve(handler, "127.0.0.1", 0, compression=None) as server:
            clients = await asyncio.gather(*(connect(uri(server), compression=None, open_timeout=30)
                                             for _ in range(n)))
            try:
                async def chat(i, ws):
                    for j in range(5):
                        await ws.send(f"{i}-{j}")
                        assert await ws.recv() == f"{i}-{j}:{loop_name}"

                await asyncio.gather(*(chat(i, ws) for i, ws in enumerate(clients)))
                await asyncio.wait_for(all_in.wait(), 30)
                broadcast(connected, "to everyone")
                received = await asyncio.gather(*(ws.recv() for ws in clients))
                assert received == ["to everyone"] * n
            finally:
                await asyncio.gather(*(ws.close() for ws in clients))

    run(loop_factory, main)


@pytest.mark.parametrize("server_loop, client_loop", [("pyloop", "asyncio"), ("asyncio", "pyloop")])
def test_server_and_client_on_different_loops(server_loop, client_loop):
    factories = {"pyloop": pyloop.new_event_loop, "asyncio": asyncio.new_event_loop}

    async def start():
        return await serve(echo, "127.0.0.1", 0, max_size=2 * MIB)

    async def client(address):
        assert running_loop_kind() == client_loop
        async with connect(address, max_size=2 * MIB) as ws:
            await ws.send("whoami")
            assert await ws.recv() == server_loop
            big = os.urandom(MIB)
            await ws.send(big)
            assert await ws.recv() == big
            pong = await ws.ping()
            await asyncio.wait_for(pong, 30)

    with LoopThread(factories[server_loop]) as thread:
        server = thread.call(start())
        try:
            run(factories[client_loop], lambda: client(uri(server)))
        finally:
            async def stop():
                server.close()
                await server.wait_closed()

            thread.call(stop())


def test_wss_over_tls(loop_factory, loop_name, certificate):
    async def main():
        async with serve(echo, "127.0.0.1", 0, ssl=certificate.server_context(), max_size=2 * MIB) as server:
            host, port = server.sockets[0].getsockname()[:2]
            async with connect(f"wss://localhost:{port}/", ssl=certificate.client_context(),
                               max_size=2 * MIB) as ws:
                assert ws.transport.get_extra_info("ssl_object") is not None
                await ws.send("whoami")
                assert await ws.recv() == loop_name
                big = os.urandom(MIB)
                await ws.send(big)
                assert await ws.recv() == big
                await asyncio.wait_for(await ws.ping(), 30)

    run(loop_factory, main)


def test_backpressure_with_a_client_that_falls_behind(loop_factory):
    """The server streams far more than the client's queue and socket buffers hold
    before the client reads anything: the client transport pauses reading, the
    server's send() waits for drain, and every message still arrives in order."""
    count, size = 400, 10_000

    async def main():
        first_batch_sent = asyncio.Event()
        done_sending = asyncio.Event()

        async def blaster(conn):
            conn.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
            for i in range(count):
                await conn.send(i.to_bytes(4, "big") * (size // 4))
                if i == 8:  # fits in the client's queue of 16 whatever the kernel buffers
                    first_batch_sent.set()
            done_sending.set()
            await conn.wait_closed()

        async with serve(blaster, "127.0.0.1", 0, compression=None, write_limit=32768) as server:
            # Fixed kernel buffers (no autotuning): with the client's queue of 16
            # messages they hold well under 1 MB of the 4 MB sent.
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            sock.connect(server.sockets[0].getsockname())
            async with connect(uri(server), sock=sock, compression=None, max_queue=16) as ws:
                await asyncio.wait_for(first_batch_sent.wait(), 30)
                assert not done_sending.is_set()
                for i in range(count):
                    message = await asyncio.wait_for(ws.recv(), 30)
                    assert message[:4] == i.to_bytes(4, "big") and len(message) == size
                await asyncio.wait_for(done_sending.wait(), 30)

    run(loop_factory, main)
