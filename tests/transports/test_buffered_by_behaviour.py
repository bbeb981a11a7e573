"""Which protocols a stream transport serves, and how.

* Buffered by behaviour, as uvloop: an object with ``get_buffer`` and
  ``buffer_updated`` that does not derive from ``asyncio.BufferedProtocol``
  (nor from ``asyncio.Protocol``) is read into its own buffers.  Stock asyncio
  serves only ``BufferedProtocol`` subclasses that way.
* An accepted connection whose protocol is unusable (the factory raises,
  returns None or an object without the needed methods) is never dropped
  silently: the error goes to the loop's exception handler and the socket is
  closed, so the peer sees the end.  asyncio reports it in debug mode only and
  leaves the socket to the garbage collector; uvloop reports it but leaves the
  connection open, unanswered.
"""

import asyncio
import socket

import pytest

from ._netutil import run

pytestmark = pytest.mark.timeout(120)

ASYNCIO_BUFFERED_BY_CLASS = "asyncio reads into get_buffer() only for BufferedProtocol subclasses"
ASYNCIO_REPORTS_IN_DEBUG_ONLY = (
    "asyncio reports a failed protocol factory in debug mode only and leaves the socket to the GC")
UVLOOP_LEAVES_CONNECTION_OPEN = (
    "uvloop reports it but leaves the accepted connection open and unanswered")


class DuckBuffered:
    """A buffered protocol by its methods alone: no asyncio base class."""

    def __init__(self, loop):
        self.buffer = bytearray(16)
        self.received = bytearray()
        self.calls = []
        self.transport = None
        self.lost = loop.create_future()
        self.got = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport

    def get_buffer(self, sizehint):
        self.calls.append("get_buffer")
        return self.buffer

    def buffer_updated(self, nbytes):
        self.calls.append("buffer_updated")
        self.received += self.buffer[:nbytes]
        if self.received.endswith(b"!") and not self.got.done():
            self.got.set_result(bytes(self.received))

    def eof_received(self):
        return False

    def connection_lost(self, exc):
        if not self.lost.done():
            self.lost.set_result(exc)


async def _connect_raw(loop, address):
    sock = socket.socket()
    sock.setblocking(False)
    await loop.sock_connect(sock, address)
    return sock


async def _recv_all(loop, sock):
    data = bytearray()
    while True:
        try:
            chunk = await loop.sock_recv(sock, 65536)
        except ConnectionResetError:
            return bytes(data)
        if not chunk:
            return bytes(data)
        data += chunk


# ------------------------------------------------------- buffered by behaviour


@pytest.mark.skip_loops("asyncio", reason=ASYNCIO_BUFFERED_BY_CLASS)
def test_server_serves_a_duck_typed_buffered_protocol(loop):
    async def main():
        proto = DuckBuffered(loop)
        server = await loop.create_server(lambda: proto, "127.0.0.1", 0)
        sock = await _connect_raw(loop, server.sockets[0].getsockname())
        with sock:
            payload = b"x" * 100 + b"!"    # more than one 16-byte buffer
            await loop.sock_sendall(sock, payload)
            assert await proto.got == payload
        assert await proto.lost is None
        assert "buffer_updated" in proto.calls
        server.close()
        await server.wait_closed()

    run(loop, main())


@pytest.mark.skip_loops("asyncio", reason=ASYNCIO_BUFFERED_BY_CLASS)
def test_create_connection_serves_a_duck_typed_buffered_protocol(loop):
    async def main():
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.setblocking(False)
        accept = loop.create_task(loop.sock_accept(listener))
        proto = DuckBuffered(loop)
        transport, _ = await loop.create_connection(lambda: proto, *listener.getsockname())
        peer, _ = await accept
        with listener, peer:
            await loop.sock_sendall(peer, b"hello!")
            assert await proto.got == b"hello!"
            transport.close()
            assert await proto.lost is None

    run(loop, main())


def test_a_protocol_subclass_with_get_buffer_gets_data_received(loop):
    """An asyncio.Protocol is served with data_received even if it happens
    to have a get_buffer method (uvloop and asyncio agree)."""
    async def main():
        got = loop.create_future()

        class Odd(asyncio.Protocol):
            def get_buffer(self, sizehint):
                raise AssertionError("get_buffer must not be called")

            def buffer_updated(self, nbytes):
                raise AssertionError("buffer_updated must not be called")

            def data_received(self, data):
                if not got.done():
                    got.set_result(data)

        server = await loop.create_server(Odd, "127.0.0.1", 0)
        sock = await _connect_raw(loop, server.sockets[0].getsockname())
        with sock:
            await loop.sock_sendall(sock, b"plain")
            assert await got == b"plain"
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_a_duck_typed_plain_protocol_gets_data_received(loop):
    async def main():
        got = loop.create_future()
        lost = loop.create_future()

        class Duck:
            def connection_made(self, transport):
                pass

            def data_received(self, data):
                got.set_result(data)

            def eof_received(self):
                return False

            def connection_lost(self, exc):
                lost.set_result(exc)

        server = await loop.create_server(Duck, "127.0.0.1", 0)
        sock = await _connect_raw(loop, server.sockets[0].getsockname())
        with sock:
            await loop.sock_sendall(sock, b"duck")
            assert await got == b"duck"
        assert await lost is None
        server.close()
        await server.wait_closed()

    run(loop, main())


@pytest.mark.skip_loops("asyncio", reason="asyncio calls eof_received unconditionally (AttributeError)")
def test_a_protocol_without_eof_received_is_closed_at_eof(loop):
    async def main():
        lost = loop.create_future()
        errors = []
        loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))

        class NoEof:
            def connection_made(self, transport):
                pass

            def data_received(self, data):
                pass

            def connection_lost(self, exc):
                lost.set_result(exc)

        server = await loop.create_server(NoEof, "127.0.0.1", 0)
        sock = await _connect_raw(loop, server.sockets[0].getsockname())
        with sock:
            sock.shutdown(socket.SHUT_WR)
            assert await lost is None
            assert await _recv_all(loop, sock) == b""
        server.close()
        await server.wait_closed()
        assert errors == []

    run(loop, main())


# ---------------------------------------------------------- unusable protocols


class _NoData:
    def connection_made(self, transport):
        pass

    def connection_lost(self, exc):
        pass


def _raise():
    raise ZeroDivisionError("factory failed")


@pytest.mark.skip_loops("asyncio", reason=ASYNCIO_REPORTS_IN_DEBUG_ONLY)
@pytest.mark.skip_loops("uvloop", reason=UVLOOP_LEAVES_CONNECTION_OPEN)
@pytest.mark.parametrize("factory, error", [
    (_raise, ZeroDivisionError),
    (lambda: None, TypeError),
    (object, TypeError),
    (_NoData, TypeError),
], ids=["raises", "none", "object", "no-data-received"])
def test_an_unusable_protocol_is_reported_and_the_socket_closed(loop, factory, error):
    async def main():
        reported = loop.create_future()

        def handler(lp, context):
            if not reported.done():
                reported.set_result(context)

        loop.set_exception_handler(handler)
        server = await loop.create_server(factory, "127.0.0.1", 0)
        sock = await _connect_raw(loop, server.sockets[0].getsockname())
        with sock:
            context = await reported
            assert isinstance(context["exception"], error)
            assert "incoming connection" in context["message"]
            # The server closed its end: the peer sees EOF (or a reset).
            assert await _recv_all(loop, sock) == b""
        # The server itself keeps serving.
        assert server.is_serving()
        server.close()
        await server.wait_closed()

    run(loop, main())


_UVLOOP_REFUSES_ONLY_NONE = pytest.mark.skip_loops(
    "uvloop", reason="uvloop refuses only None, and fails on the first callback of the others")


@pytest.mark.skip_loops("asyncio", reason="asyncio accepts any protocol and fails on its first callback")
@pytest.mark.parametrize("factory", [
    pytest.param(lambda: None, id="none"),
    pytest.param(object, id="object", marks=_UVLOOP_REFUSES_ONLY_NONE),
    pytest.param(_NoData, id="no-data", marks=_UVLOOP_REFUSES_ONLY_NONE),
])
def test_create_connection_refuses_an_unusable_protocol(loop, factory):
    async def main():
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        with listener:
            with pytest.raises(TypeError):
                await loop.create_connection(factory, *listener.getsockname())

    run(loop, main())


@pytest.mark.skip_loops("asyncio", reason="asyncio's set_protocol takes anything")
@_UVLOOP_REFUSES_ONLY_NONE
def test_set_protocol_refuses_an_unusable_protocol_and_keeps_the_old_one(loop):
    async def main():
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        with listener:
            transport, proto = await loop.create_connection(asyncio.Protocol,
                                                            *listener.getsockname())
            for bad in (None, object(), _NoData()):
                with pytest.raises(TypeError, match="not a stream protocol"):
                    transport.set_protocol(bad)
                assert transport.get_protocol() is proto
            transport.close()

    run(loop, main())
