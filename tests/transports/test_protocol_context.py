"""Stream transports run every protocol callback in the protocol's context.

uvloop's behaviour is the reference (run these with
``PYLOOP_TEST_LOOPS=asyncio,pyloop,uvloop``): ``connection_made``,
``data_received`` (or ``get_buffer``/``buffer_updated``), ``eof_received``,
``pause_writing``/``resume_writing`` and ``connection_lost`` all run in the
context current when the transport was made (for a server's connections: when
the server started serving, where the protocol factory runs too) -- also when
the callback follows a ``close()``, ``abort()``, ``resume_reading()`` or
``write()`` made from some other context.  Stock asyncio runs some of them in
whatever context scheduled them; those tests skip it, saying which.

The datagram, pipe and subprocess transports: ``test_protocol_context_fd``.
"""

import socket

import pytest

from ._ctxutil import CVAR, PROTOCOLS, RecordingProtocol
from ._netutil import needs_unix, run, sock_path

pytestmark = pytest.mark.timeout(120)

__all__ = ["sock_path"]  # fixture, used by name

FAMILIES = ["tcp", pytest.param("unix", marks=needs_unix)]

ASYNCIO_SCHEDULES_IN_CALLERS_CONTEXT = (
    "asyncio schedules connection_lost (and starts reading) in the context of whoever called "
    "close()/abort()/resume_reading()")
ASYNCIO_FLOW_IN_WRITERS_CONTEXT = (
    "asyncio calls pause_writing/resume_writing in the context of whoever wrote")
ASYNCIO_CALLBACKS_IN_SEPARATE_COPIES = (
    "asyncio runs connection_made and the reads in separate copies of the context")


async def _serve(loop, family, factory, path):
    if family == "tcp":
        server = await loop.create_server(factory, "127.0.0.1", 0)
        return server, server.sockets[0].getsockname()
    server = await loop.create_unix_server(factory, path)
    return server, path


async def _connect_raw(loop, family, address):
    sock = socket.socket(socket.AF_INET if family == "tcp" else socket.AF_UNIX)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, address)
    except BaseException:
        sock.close()
        raise
    return sock


async def _stop(server):
    server.close()
    await server.wait_closed()


async def _recv_until_eof(loop, sock):
    total = 0
    while True:
        chunk = await loop.sock_recv(sock, 256 * 1024)
        if not chunk:
            return total
        total += len(chunk)


# ------------------------------------------------------------------ servers


@pytest.mark.parametrize("kind", list(PROTOCOLS))
@pytest.mark.parametrize("family", FAMILIES)
def test_server_callbacks_run_in_the_servers_context(loop, kind, family, sock_path):
    async def main():
        CVAR.set("inner")
        proto = PROTOCOLS[kind](loop)
        factory_saw = []

        def factory():
            factory_saw.append(CVAR.get())
            return proto

        server, address = await _serve(loop, family, factory, sock_path)
        # The server's context is the one current when it started serving.
        CVAR.set("changed after create_server")
        events = proto.events
        sock = await _connect_raw(loop, family, address)
        with sock:
            assert await events.first("connection_made") == "inner"
            await loop.sock_sendall(sock, b"data")
            assert await events.first(proto.DATA) == "inner"
            sock.shutdown(socket.SHUT_WR)
            assert await events.first("eof_received") == "inner"
            assert await events.first("connection_lost") == "inner"
        await _stop(server)
        assert factory_saw == ["inner"]
        assert events.all_values() == {"inner"}

    run(loop, main())


@pytest.mark.skip_loops("asyncio", reason=ASYNCIO_CALLBACKS_IN_SEPARATE_COPIES)
@pytest.mark.parametrize("kind", list(PROTOCOLS))
def test_what_a_callback_sets_is_seen_by_the_later_ones(loop, kind):
    async def main():
        CVAR.set("inner")
        proto = PROTOCOLS[kind](loop, set_in={"connection_made": "made", PROTOCOLS[kind].DATA: "read"})
        server, address = await _serve(loop, "tcp", lambda: proto, None)
        events = proto.events
        sock = await _connect_raw(loop, "tcp", address)
        with sock:
            await events.first("connection_made")
            await loop.sock_sendall(sock, b"data")
            assert await events.first(proto.DATA) == "made"
            sock.shutdown(socket.SHUT_WR)
            assert await events.first("eof_received") == "read"
            assert await events.first("connection_lost") == "read"
        await _stop(server)

    run(loop, main())


def test_the_factory_sets_what_the_connection_sees(loop):
    async def main():
        CVAR.set("inner")
        protos = []

        def factory():
            CVAR.set(f"conn{len(protos)}")
            protos.append(RecordingProtocol(loop))
            return protos[-1]

        server, address = await _serve(loop, "tcp", factory, None)
        for n in range(2):
            sock = await _connect_raw(loop, "tcp", address)
            with sock:
                events = protos[n].events
                assert await events.first("connection_made") == f"conn{n}"
                await loop.sock_sendall(sock, b"x")
                assert await events.first("data_received") == f"conn{n}"
            assert await events.first("connection_lost") == f"conn{n}"
        await _stop(server)

    run(loop, main())


@pytest.mark.skip_loops("uvloop", reason=(
    "uvloop runs every connection of a listening socket in one shared context"))
def test_server_connections_do_not_share_a_context(loop):
    async def main():
        CVAR.set("inner")
        protos = []

        def factory():
            protos.append(RecordingProtocol(loop, set_in={"connection_made": f"conn{len(protos)}"}))
            return protos[-1]

        server, address = await _serve(loop, "tcp", factory, None)
        first = await _connect_raw(loop, "tcp", address)
        with first:
            await protos[0].events.first("connection_made")
            second = await _connect_raw(loop, "tcp", address)
            with second:
                assert await protos[1].events.first("connection_made") == "inner"
        for proto in protos:
            await proto.events.first("connection_lost")
        await _stop(server)

    run(loop, main())


# -------------------------------------------- callbacks triggered from elsewhere


@pytest.mark.skip_loops("asyncio", reason=ASYNCIO_SCHEDULES_IN_CALLERS_CONTEXT)
@pytest.mark.parametrize("how", ["close", "abort"])
@pytest.mark.parametrize("family", FAMILIES)
def test_connection_lost_after_close_from_another_context(loop, how, family, sock_path):
    async def main():
        CVAR.set("inner")
        proto = RecordingProtocol(loop)
        server, address = await _serve(loop, family, lambda: proto, sock_path)
        sock = await _connect_raw(loop, family, address)

        def closer():
            CVAR.set("closing")
            getattr(proto.transport, how)()

        with sock:
            await proto.events.first("connection_made")
            loop.call_soon(closer)
            assert await proto.events.first("connection_lost") == "inner"
        await _stop(server)

    run(loop, main())


@pytest.mark.skip_loops("asyncio", reason=ASYNCIO_SCHEDULES_IN_CALLERS_CONTEXT)
def test_connection_lost_after_a_flushing_close(loop):
    """close() with data queued: connection_lost comes from the write side,
    once the peer has read everything."""
    async def main():
        CVAR.set("inner")
        proto = RecordingProtocol(loop)
        server, address = await _serve(loop, "tcp", lambda: proto, None)
        sock = await _connect_raw(loop, "tcp", address)

        def writer_then_closer():
            CVAR.set("closing")
            while not proto.transport.get_write_buffer_size():
                proto.transport.write(b"q" * 65536)
            proto.transport.close()

        with sock:
            await proto.events.first("connection_made")
            proto.transport.set_write_buffer_limits(high=64 * 1024 * 1024)
            loop.call_soon(writer_then_closer)
            assert await _recv_until_eof(loop, sock) > 0
            assert await proto.events.first("connection_lost") == "inner"
        await _stop(server)

    run(loop, main())


@pytest.mark.skip_loops("asyncio", reason=ASYNCIO_SCHEDULES_IN_CALLERS_CONTEXT)
@pytest.mark.parametrize("kind", list(PROTOCOLS))
def test_reading_resumed_from_another_context(loop, kind):
    async def main():
        CVAR.set("inner")
        proto = PROTOCOLS[kind](loop)
        server, address = await _serve(loop, "tcp", lambda: proto, None)
        sock = await _connect_raw(loop, "tcp", address)

        def resumer():
            CVAR.set("resuming")
            proto.transport.resume_reading()

        with sock:
            await proto.events.first("connection_made")
            proto.transport.pause_reading()
            await loop.sock_sendall(sock, b"data")
            loop.call_soon(resumer)
            assert await proto.events.first(proto.DATA) == "inner"
        assert await proto.events.first("connection_lost") == "inner"
        await _stop(server)

    run(loop, main())


@pytest.mark.skip_loops("asyncio", reason=ASYNCIO_FLOW_IN_WRITERS_CONTEXT)
@pytest.mark.parametrize("family", FAMILIES)
def test_flow_control_after_writes_from_another_context(loop, family, sock_path):
    async def main():
        CVAR.set("inner")
        proto = RecordingProtocol(loop)
        server, address = await _serve(loop, family, lambda: proto, sock_path)
        sock = await _connect_raw(loop, family, address)

        async def write_over():
            CVAR.set("writer")
            proto.transport.set_write_buffer_limits(high=256, low=128)
            while not proto.transport.get_write_buffer_size():
                proto.transport.write(b"q" * 16384)

        with sock:
            await proto.events.first("connection_made")
            await loop.create_task(write_over())
            assert await proto.events.first("pause_writing") == "inner"
            reader = loop.create_task(_recv_until_eof(loop, sock))
            assert await proto.events.first("resume_writing") == "inner"
            proto.transport.close()
            await reader
        assert await proto.events.first("connection_lost") == "inner"
        await _stop(server)

    run(loop, main())


def test_flow_control_from_inside_a_callback(loop):
    """A write in data_received that crosses the high-water mark calls
    pause_writing at once, from inside the protocol's context: it sees what
    data_received set, and nothing fails for entering a context twice."""
    async def main():
        CVAR.set("inner")
        errors = []
        loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))

        class Writer(RecordingProtocol):
            def data_received(self, data):
                super().data_received(data)
                CVAR.set("data")
                self.transport.set_write_buffer_limits(high=1, low=0)
                self.transport.write(b"w" * (4 * 1024 * 1024))

        proto = Writer(loop)
        server, address = await _serve(loop, "tcp", lambda: proto, None)
        sock = await _connect_raw(loop, "tcp", address)
        with sock:
            await loop.sock_sendall(sock, b"go")
            assert await proto.events.first("pause_writing") == "data"
            reader = loop.create_task(_recv_until_eof(loop, sock))
            assert await proto.events.first("resume_writing") == "data"
            proto.transport.close()
            assert await reader == 4 * 1024 * 1024
        await proto.events.first("connection_lost")
        await _stop(server)
        assert errors == []

    run(loop, main())


# ------------------------------------------------------------------ clients


@pytest.mark.parametrize("kind", list(PROTOCOLS))
@pytest.mark.parametrize("use_sock", [False, True], ids=["address", "sock"])
@pytest.mark.parametrize("family", FAMILIES)
def test_client_callbacks_run_in_the_creators_context(loop, kind, use_sock, family, sock_path):
    async def main():
        listener = socket.socket(socket.AF_INET if family == "tcp" else socket.AF_UNIX)
        listener.bind(("127.0.0.1", 0) if family == "tcp" else sock_path)
        listener.listen(1)
        listener.setblocking(False)
        address = listener.getsockname()
        CVAR.set("inner")
        proto = PROTOCOLS[kind](loop)
        accept = loop.create_task(loop.sock_accept(listener))
        if use_sock:
            sock = await _connect_raw(loop, family, address)
            params = {"sock": sock}
        elif family == "tcp":
            params = {"host": address[0], "port": address[1]}
        else:
            params = {"path": address}
        method = loop.create_connection if family == "tcp" else loop.create_unix_connection
        await method(lambda: proto, **params)
        CVAR.set("changed after connecting")
        peer, _ = await accept
        events = proto.events
        with listener, peer:
            assert await events.first("connection_made") == "inner"
            await loop.sock_sendall(peer, b"data")
            assert await events.first(proto.DATA) == "inner"
            peer.shutdown(socket.SHUT_WR)
            assert await events.first("eof_received") == "inner"
            assert await events.first("connection_lost") == "inner"
        assert events.all_values() == {"inner"}

    run(loop, main())


@pytest.mark.parametrize("kind", list(PROTOCOLS))
def test_connect_accepted_socket_callbacks(loop, kind):
    async def main():
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.setblocking(False)
        accept = loop.create_task(loop.sock_accept(listener))
        client = await _connect_raw(loop, "tcp", listener.getsockname())
        accepted, _ = await accept
        CVAR.set("inner")
        proto = PROTOCOLS[kind](loop)
        await loop.connect_accepted_socket(lambda: proto, accepted)
        CVAR.set("changed after connecting")
        events = proto.events
        with listener, client:
            assert await events.first("connection_made") == "inner"
            await loop.sock_sendall(client, b"data")
            assert await events.first(proto.DATA) == "inner"
            client.shutdown(socket.SHUT_WR)
            assert await events.first("eof_received") == "inner"
            assert await events.first("connection_lost") == "inner"
        assert events.all_values() == {"inner"}

    run(loop, main())
