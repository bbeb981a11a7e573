"""An exception from every protocol callback, on asyncio and pyloop.

What asyncio does is the reference, callback by callback:

* ``data_received``, ``eof_received``, ``get_buffer``, ``buffer_updated``: a
  fatal error -- the exception handler is told once, the transport is
  closed and ``connection_lost`` gets the exception;
* ``connection_made``, ``connection_lost``, ``datagram_received``,
  ``error_received``: they run as plain callbacks, so the handler is told
  once ("Exception in callback ...") and the transport is left as it was
  (``connection_lost`` still closes the socket);
* ``pause_writing``, ``resume_writing``: the handler is told once and the
  transport goes on writing.

Throughout, another client of the same loop keeps being served.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from ._fault_util import EchoServer, HandlerLog, echo_once, run, until

pytestmark = pytest.mark.timeout(120)

MiB = 1 << 20


class Boom(Exception):
    """The exception the callbacks under test raise."""


def _booms(log: HandlerLog) -> list[dict]:
    return [c for c in log.contexts if isinstance(c.get("exception"), Boom)]


class Faulty(asyncio.Protocol):
    """An echo protocol whose ``fail`` callback raises Boom (once)."""

    def __init__(self, fail: str) -> None:
        self.fail = fail
        self.transport: asyncio.Transport | None = None
        self.lost: list[BaseException | None] = []
        self.data = bytearray()
        self.flow: list[str] = []

    def _maybe_raise(self, name: str) -> None:
        if self.fail == name:
            self.fail = ""
            raise Boom(name)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._maybe_raise("connection_made")

    def data_received(self, data: bytes) -> None:
        self._maybe_raise("data_received")
        self.data += data
        if data == b"big":
            # More than any kernel buffer: the write queue passes the
            # high-water mark while the client does not read.
            self.transport.write(b"z" * (8 * MiB))  # type: ignore[union-attr]
        else:
            self.transport.write(data)  # type: ignore[union-attr]

    def eof_received(self) -> bool:
        self._maybe_raise("eof_received")
        return False

    def pause_writing(self) -> None:
        self.flow.append("pause")
        self._maybe_raise("pause_writing")

    def resume_writing(self) -> None:
        self.flow.append("resume")
        self._maybe_raise("resume_writing")

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost.append(exc)
        self._maybe_raise("connection_lost")


class FaultyBuffered(Faulty, asyncio.BufferedProtocol):
    def __init__(self, fail: str) -> None:
        Faulty.__init__(self, fail)
        self.buf = bytearray(65536)

    def get_buffer(self, sizehint: int) -> bytearray:
        self._maybe_raise("get_buffer")
        return self.buf

    def buffer_updated(self, nbytes: int) -> None:
        self._maybe_raise("buffer_updated")
        self.transport.write(bytes(self.buf[:nbytes]))  # type: ignore[union-attr]


FATAL = ["data_received", "eof_received", "get_buffer", "buffer_updated"]


async def _serve(loop, fail: str):
    protos: list[Faulty] = []
    cls = FaultyBuffered if fail in ("get_buffer", "buffer_updated") else Faulty

    def factory() -> Faulty:
        protos.append(cls(fail))
        return protos[-1]

    server = await loop.create_server(factory, "127.0.0.1", 0)
    other = await loop.create_server(EchoServer, "127.0.0.1", 0)
    return server, other, protos


@pytest.mark.parametrize("fail", FATAL)
def test_fatal_callback_error_closes_that_transport_only(loop, fail):
    async def main():
        log = HandlerLog(loop)
        server, other, protos = await _serve(loop, fail)
        port = server.sockets[0].getsockname()[1]
        other_port = other.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        if fail == "eof_received":
            writer.write_eof()
        else:
            writer.write(b"trigger")
        # The server drops the connection: the client reads EOF (or a reset).
        try:
            assert await reader.read() == b""
        except ConnectionResetError:
            pass
        await until(lambda: protos and protos[0].lost, "connection_lost of the faulty protocol")
        for _ in range(5):
            await asyncio.sleep(0)
        proto = protos[0]
        assert len(proto.lost) == 1 and isinstance(proto.lost[0], Boom)
        assert proto.transport.is_closing()  # type: ignore[union-attr]
        (ctx,) = _booms(log)
        assert ctx["exception"] is proto.lost[0]
        assert fail in ctx["message"]
        assert ctx["protocol"] is proto and ctx["transport"] is proto.transport
        assert await echo_once("127.0.0.1", other_port, b"ok") == b"ok"
        writer.close()
        server.close()
        other.close()

    run(loop, main())


def test_connection_made_error_leaves_the_connection_working(loop):
    async def main():
        log = HandlerLog(loop)
        server, other, protos = await _serve(loop, "connection_made")
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"hello")
        assert await reader.readexactly(5) == b"hello"
        (ctx,) = _booms(log)
        assert "callback" in ctx["message"].lower()
        proto = protos[0]
        assert not proto.transport.is_closing()  # type: ignore[union-attr]
        writer.close()
        await until(lambda: proto.lost, "connection_lost")
        assert proto.lost == [None]
        server.close()
        other.close()

    run(loop, main())


def test_connection_lost_error_is_reported_and_socket_closed(loop):
    async def main():
        log = HandlerLog(loop)
        server, other, protos = await _serve(loop, "connection_lost")
        port = server.sockets[0].getsockname()[1]
        other_port = other.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"hi")
        assert await reader.readexactly(2) == b"hi"
        await until(lambda: protos and protos[0].transport is not None, "connection_made")
        sock = protos[0].transport.get_extra_info("socket")  # type: ignore[union-attr]
        writer.close()
        await until(lambda: protos[0].lost, "connection_lost")
        for _ in range(5):
            await asyncio.sleep(0)
        assert protos[0].lost == [None]
        (ctx,) = _booms(log)
        assert "callback" in ctx["message"].lower()
        assert sock.fileno() == -1  # closed despite the exception
        assert await echo_once("127.0.0.1", other_port, b"ok") == b"ok"
        server.close()
        other.close()
        await server.wait_closed()

    run(loop, main())


@pytest.mark.parametrize("fail", ["pause_writing", "resume_writing"])
def test_flow_control_callback_error_is_reported_and_writing_goes_on(loop, fail):
    async def main():
        log = HandlerLog(loop)
        server, other, protos = await _serve(loop, fail)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"big")
        await until(lambda: protos and "pause" in protos[0].flow, "pause_writing")
        # Read everything: the queue drains, resume_writing comes.
        got = await reader.readexactly(8 * MiB)
        assert got == b"z" * (8 * MiB)
        await until(lambda: "resume" in protos[0].flow, "resume_writing")
        proto = protos[0]
        assert proto.flow == ["pause", "resume"]
        (ctx,) = _booms(log)
        assert ctx["message"] == f"protocol.{fail}() failed"
        assert not proto.transport.is_closing()  # type: ignore[union-attr]
        writer.write(b"still")
        assert await reader.readexactly(5) == b"still"
        writer.close()
        await until(lambda: proto.lost, "connection_lost")
        assert proto.lost == [None]
        server.close()
        other.close()

    run(loop, main())


class FaultyDatagram(asyncio.DatagramProtocol):
    def __init__(self, fail: str) -> None:
        self.fail = fail
        self.datagrams: list[bytes] = []
        self.errors: list[Exception] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr) -> None:
        self.datagrams.append(data)
        if self.fail == "datagram_received":
            self.fail = ""
            raise Boom("datagram_received")

    def error_received(self, exc: Exception) -> None:
        self.errors.append(exc)
        if self.fail == "error_received":
            self.fail = ""
            raise Boom("error_received")


def test_datagram_received_error_is_reported_and_endpoint_keeps_receiving(loop):
    async def main():
        log = HandlerLog(loop)
        tr, proto = await loop.create_datagram_endpoint(
            lambda: FaultyDatagram("datagram_received"), local_addr=("127.0.0.1", 0))
        addr = tr.get_extra_info("sockname")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"one", addr)
            await until(lambda: proto.datagrams, "the first datagram")
            s.sendto(b"two", addr)
            await until(lambda: len(proto.datagrams) == 2, "the second datagram")
        assert proto.datagrams == [b"one", b"two"]
        (ctx,) = _booms(log)
        assert "callback" in ctx["message"].lower()
        assert not tr.is_closing()
        tr.close()

    run(loop, main())


def test_error_received_error_is_reported_and_endpoint_keeps_working(loop):
    async def main():
        log = HandlerLog(loop)
        # A port nobody listens on: the kernel answers with ICMP port
        # unreachable, which the connected socket reports as ECONNREFUSED.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            dead = probe.getsockname()
        tr, proto = await loop.create_datagram_endpoint(
            lambda: FaultyDatagram("error_received"), remote_addr=dead)
        tr.sendto(b"anyone?")
        await until(lambda: proto.errors, "error_received")
        assert isinstance(proto.errors[0], ConnectionRefusedError)
        (ctx,) = _booms(log)
        assert "callback" in ctx["message"].lower()
        assert not tr.is_closing()
        tr.sendto(b"again")
        await until(lambda: len(proto.errors) == 2, "the second error_received")
        assert len(_booms(log)) == 1
        tr.close()

    run(loop, main())
