"""Faults on stream transports, on asyncio and pyloop: peer resets mid-read and
mid-write, writes after the connection is gone, a protocol callback raising, a
loop closed under live transports, a clean close mid-stream, and many
connections at once.  What asyncio does is the reference; pyloop must match.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import socket
import struct
import sys
import warnings

import pytest

from ._netutil import run
from .test_stream_transport import KINDS, MiB, Rec, make_transport, payload, read_exactly, spin

pytestmark = pytest.mark.timeout(180)


def reset(sock):
    """Close with SO_LINGER 0: the kernel sends RST instead of FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_peer_reset_mid_read(loop):
    async def main():
        proto = Rec(loop)
        tr, peer = await make_transport(loop, "tcp", proto)
        await loop.sock_sendall(peer, b"some data")
        assert await proto.wait_bytes(9) == b"some data"
        reset(peer)
        exc = await proto.lost
        # asyncio: recv() fails with ECONNRESET -> connection_lost(ConnectionResetError)
        assert isinstance(exc, ConnectionResetError), exc
        assert proto.lost_calls == 1
        assert tr.is_closing()
        assert "eof" not in proto.events
        await spin()
        assert proto.lost_calls == 1

    run(loop, main())


def test_peer_reset_with_queued_writes(loop):
    async def main():
        proto = Rec(loop)
        tr, peer = await make_transport(loop, "tcp", proto)
        tr.pause_reading()  # only the write path can notice the reset
        data = payload(16 * MiB, seed=20)
        tr.write(data)
        assert tr.get_write_buffer_size() > 0
        await read_exactly(loop, peer, 1000)  # the write is in progress
        reset(peer)
        exc = await proto.lost
        assert isinstance(exc, OSError), exc
        assert isinstance(exc, (ConnectionResetError, BrokenPipeError)), exc
        assert proto.lost_calls == 1
        assert tr.get_write_buffer_size() == 0
        assert tr.is_closing()

    run(loop, main())


def test_writes_after_connection_lost_warn_after_five(loop, loop_name, caplog):
    if loop_name == "asyncio" and sys.version_info >= (3, 12):
        pytest.skip("asyncio 3.12/3.13's writelines() after the connection was lost fails with "
                    "AttributeError ('NoneType' object has no attribute '_add_writer'); pyloop "
                    "counts it as 3.11's asyncio does")

    async def main():
        proto = Rec(loop)
        tr, peer = await make_transport(loop, "tcp", proto)
        reset(peer)
        assert isinstance(await proto.lost, ConnectionResetError)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="asyncio"):
            # connection_lost counted 1; writes 1-4 take the count to 5 quietly.
            for _ in range(4):
                tr.write(b"ignored")
            msgs = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
            assert msgs == []
            tr.writelines([b"fifth", b"write"])
            tr.write(b"seventh")
            msgs = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
            assert msgs == ["socket.send() raised exception."] * 2
            for r in caplog.records:
                assert r.levelno == logging.WARNING
        await spin()
        assert proto.lost_calls == 1
        assert "data" not in proto.events

    run(loop, main())


def test_empty_writes_after_connection_lost_are_not_counted(loop, caplog):
    async def main():
        proto = Rec(loop)
        tr, peer = await make_transport(loop, "tcp", proto)
        reset(peer)
        await proto.lost
        with caplog.at_level(logging.WARNING, logger="asyncio"):
            for _ in range(20):
                tr.write(b"")  # asyncio returns before counting empty writes
            assert [r for r in caplog.records if r.name == "asyncio"] == []

    run(loop, main())


@pytest.mark.parametrize("kind", KINDS)
def test_data_received_exception_goes_to_handler(loop, kind):
    class Boom(Exception):
        pass

    class Raising(Rec):
        def data_received(self, data):
            super().data_received(data)
            raise Boom("from data_received")

    async def main():
        contexts = []
        loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
        proto = Raising(loop)
        tr, peer = await make_transport(loop, kind, proto)
        await loop.sock_sendall(peer, b"trigger")
        exc = await proto.lost
        assert isinstance(exc, Boom)
        assert tr.is_closing()
        assert proto.lost_calls == 1
        assert len(contexts) == 1
        ctx = contexts[0]
        assert ctx["message"] == "Fatal error: protocol.data_received() call failed."
        assert isinstance(ctx["exception"], Boom)
        assert ctx["transport"] is tr
        assert ctx["protocol"] is proto
        # The peer sees the connection go away.
        got = b""
        try:
            while True:
                chunk = await loop.sock_recv(peer, 1024)
                if not chunk:
                    break
                got += chunk
        except ConnectionResetError:
            pass
        assert got == b""
        peer.close()

    try:
        run(loop, main())
    finally:
        loop.set_exception_handler(None)


@pytest.mark.parametrize("kind", KINDS)
def test_loop_closed_with_live_transport(loop, kind):
    holder = {}

    async def main():
        proto = Rec(loop)
        tr, peer = await make_transport(loop, kind, proto)
        tr.write(b"x" * 1000)
        holder["tr"], holder["peer"], holder["proto"] = tr, peer, proto

    run(loop, main())
    loop.close()  # the transport is still open
    tr = holder.pop("tr")
    proto = holder.pop("proto")
    assert not proto.lost.done()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del tr, proto
        for _ in range(3):
            gc.collect()
    assert any(issubclass(w.category, ResourceWarning)
               and "unclosed transport" in str(w.message) for w in caught), \
        [str(w.message) for w in caught]
    # The fd was closed by the collection: the peer sees EOF.
    peer = holder.pop("peer")
    peer.setblocking(True)
    peer.settimeout(30)
    got = b""
    while True:
        chunk = peer.recv(65536)
        if not chunk:
            break
        got += chunk
    assert got == b"x" * 1000
    peer.close()


@pytest.mark.parametrize("kind", KINDS)
def test_peer_closes_cleanly_mid_stream(loop, kind):
    async def main():
        proto = Rec(loop)
        tr, peer = await make_transport(loop, kind, proto)
        data = payload(4 * MiB, seed=21)
        await loop.sock_sendall(peer, data)
        peer.close()  # FIN after everything: nothing may be lost
        assert await proto.lost is None
        assert bytes(proto.data) == data
        assert proto.events[0] == "made"
        assert proto.events[-2:] == ["eof", "lost"]
        assert proto.lost_calls == 1

    run(loop, main())


def test_close_after_write_survives_peer_reading_late(loop):
    """Nothing written before a graceful close() is lost, even when the peer
    only starts reading after close() returned and the loop moved on."""

    async def main():
        server_done = loop.create_future()
        data = payload(8 * MiB, seed=22)

        class Sender(asyncio.Protocol):
            def connection_made(self, transport):
                transport.write(data[:100])
                transport.write(data[100:])
                transport.close()

            def connection_lost(self, exc):
                server_done.set_result(exc)

        server = await loop.create_server(Sender, "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname())
        assert await reader.read() == data
        assert await server_done is None
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()

    run(loop, main(), timeout=60)


def test_many_connections_echo_concurrently(loop):
    n_conns = 200

    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            self.transport.write(data)

        def eof_received(self):
            return False

    async def client(i, addr):
        data = random.Random(i).randbytes(32 * 1024 + i)
        reader, writer = await asyncio.open_connection(*addr)
        writer.write(data[:1000])
        writer.write(data[1000:])
        writer.write_eof()
        await writer.drain()
        got = await reader.read()
        writer.close()
        await writer.wait_closed()
        return got == data

    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0, backlog=n_conns)
        addr = server.sockets[0].getsockname()
        results = await asyncio.gather(*(client(i, addr) for i in range(n_conns)))
        assert all(results), [i for i, ok in enumerate(results) if not ok]
        server.close()
        await server.wait_closed()

    run(loop, main(), timeout=120)


@pytest.mark.parametrize("kind", KINDS)
def test_connection_lost_once_when_closed_and_reset_together(loop, kind):
    """close() with a queue, then the peer vanishes: connection_lost exactly
    once, with an OSError (the queue could not be flushed)."""

    async def main():
        proto = Rec(loop)
        tr, peer = await make_transport(loop, kind, proto)
        tr.pause_reading()
        tr.write(payload(16 * MiB, seed=23))
        assert tr.get_write_buffer_size() > 0
        tr.close()
        if kind == "tcp":
            reset(peer)
        else:
            peer.close()
        exc = await proto.lost
        assert isinstance(exc, OSError), exc
        await spin()
        assert proto.lost_calls == 1

    run(loop, main())

