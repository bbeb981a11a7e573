"""TLS transports: ssl= connections and servers, start_tls, over loop-made connections on both ends.

Every test runs on stock asyncio (the reference) and on pyloop (add uvloop with PYLOOP_TEST_LOOPS); the
edge cases of the TLS state machine (shutdown, trailing data, the handshake's last flight) are in
test_tls_shutdown.py, the callbacks' contexts in test_tls_context.py.
"""

import asyncio
import ssl
import threading

import pytest

from ._netutil import Collect, EchoProtocol, needs_unix, run, sock_path, tls
from ._tlspeer import BioPeer, ThreadServer

pytestmark = pytest.mark.timeout(120)

__all__ = ["sock_path", "tls"]  # fixtures, used by name


async def _tls_server(loop, tls, factory=EchoProtocol, **kwargs):
    server = await loop.create_server(factory, "127.0.0.1", 0, ssl=tls.server_context(), **kwargs)
    return server, server.sockets[0].getsockname()[1]


async def _close_server(server):
    server.close()
    await server.wait_closed()


# ------------------------------------------------------------------- basics


def test_echo_and_extra_info(loop, tls):
    """get_extra_info answers what asyncio's SSL transport answers."""
    async def main():
        server_side = loop.create_future()

        class Server(EchoProtocol):
            def connection_made(self, transport):
                super().connection_made(transport)
                server_side.set_result(transport)

        ctx = tls.client_context()
        server, port = await _tls_server(loop, tls, Server)
        client = Collect(loop)
        tr, _ = await loop.create_connection(lambda: client, "127.0.0.1", port, ssl=ctx,
                                             server_hostname="localhost")
        assert isinstance(tr.get_extra_info("ssl_object"), ssl.SSLObject)
        assert tr.get_extra_info("sslcontext") is ctx
        assert tr.get_extra_info("peercert")["subject"] == ((("commonName", "localhost"),),)
        name, version, bits = tr.get_extra_info("cipher")
        assert version.startswith("TLS") and bits >= 128
        assert tr.get_extra_info("compression") is None
        assert tr.get_extra_info("socket") is not None
        assert tr.get_extra_info("peername") == ("127.0.0.1", port)
        assert tr.get_extra_info("sockname")[0] == "127.0.0.1"
        assert tr.get_extra_info("no such key", "dflt") == "dflt"
        assert not tr.can_write_eof()
        with pytest.raises(NotImplementedError):
            tr.write_eof()
        with pytest.raises(TypeError, match="expecting a bytes-like instance"):
            tr.write("text")
        tr.write(b"")  # nothing, and no error
        tr.write(b"hello")
        tr.write(bytearray(b" and"))
        tr.write(memoryview(b" bye"))
        assert await client.wait_for_bytes(13) == b"hello and bye"
        str_ = await server_side
        assert str_.get_extra_info("peercert") is None  # the client sent no certificate
        assert str_.get_extra_info("ssl_object").server_side
        assert str_.get_extra_info("peername") == tr.get_extra_info("sockname")
        assert not tr.is_closing()
        tr.close()
        assert tr.is_closing()
        assert await client.lost is None
        await _close_server(server)

    run(loop, main())


@pytest.mark.skip_loops("uvloop", reason="uvloop's SSL transport is a C type, not an asyncio.Transport")
def test_tls_transport_is_an_asyncio_transport(loop, tls):
    async def main():
        server, port = await _tls_server(loop, tls)
        client = Collect(loop)
        tr, _ = await loop.create_connection(lambda: client, "127.0.0.1", port,
                                             ssl=tls.client_context(), server_hostname="localhost")
        assert isinstance(tr, asyncio.Transport)
        assert isinstance(tr, asyncio.ReadTransport) and isinstance(tr, asyncio.WriteTransport)
        tr.close()
        await client.lost
        await _close_server(server)

    run(loop, main())


def test_big_write_and_many_small_writes(loop, tls):
    """A 1 MiB write, then 5000 small ones and a writelines: everything arrives, in order."""
    big = bytes(range(256)) * 4096
    small = [b"%05d" % i for i in range(5000)]

    async def main():
        server, port = await _tls_server(loop, tls)
        client = Collect(loop)
        tr, _ = await loop.create_connection(lambda: client, "127.0.0.1", port,
                                             ssl=tls.client_context(), server_hostname="localhost")
        tr.write(big)
        for chunk in small:
            tr.write(chunk)
        tr.writelines([b"<", bytearray(b"lines"), memoryview(b">")])
        want = big + b"".join(small) + b"<lines>"
        assert await client.wait_for_bytes(len(want)) == want
        tr.close()
        await client.lost
        await _close_server(server)

    run(loop, main())


def test_write_flow_control(loop, tls):
    """pause_writing when the buffer crosses the high mark, resume_writing once drained; the
    limits are asyncio's (512 KiB default) and validated the same way."""
    async def main():
        held = asyncio.Event()
        accepted = loop.create_future()
        total = [0, None]  # bytes the server received; the future to set when it has them all

        class Slow(asyncio.Protocol):
            def connection_made(self, transport):
                transport.pause_reading()  # nothing is read until the test says so
                accepted.set_result(transport)

            def data_received(self, data):
                total[0] += len(data)
                if total[1] is not None and total[0] >= total[1][0] and not total[1][1].done():
                    total[1][1].set_result(None)

        server, port = await _tls_server(loop, tls, Slow)
        events = []

        class Client(Collect):
            def pause_writing(self):
                events.append("pause")
                held.set()

            def resume_writing(self):
                events.append("resume")

        client = Client(loop)
        tr, _ = await loop.create_connection(lambda: client, "127.0.0.1", port,
                                             ssl=tls.client_context(), server_hostname="localhost")
        assert tr.get_write_buffer_limits() == (128 * 1024, 512 * 1024)
        with pytest.raises(ValueError):
            tr.set_write_buffer_limits(high=10, low=20)
        tr.set_write_buffer_limits(high=64 * 1024)
        assert tr.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
        str_ = await accepted
        chunk = b"x" * 65536
        sent = 0
        while not held.is_set():
            tr.write(chunk)
            sent += len(chunk)
            if sent > 256 * 1024 * 1024:
                pytest.fail("pause_writing never came")
            await asyncio.sleep(0)
        assert tr.get_write_buffer_size() >= 64 * 1024
        drained = loop.create_future()
        total[1] = (sent, drained)
        str_.resume_reading()
        await drained
        assert total[0] == sent
        assert events == ["pause", "resume"]
        assert tr.get_write_buffer_size() == 0
        tr.close()
        await client.lost
        await _close_server(server)

    run(loop, main())


@pytest.mark.skip_loops("uvloop", reason="uvloop keeps the client's handshake Finished message until its first "
                        "read, which pause_reading() right after the handshake stops: the server's "
                        "handshake never completes")
def test_read_pause_and_resume(loop, tls):
    """Nothing is delivered while reading is paused; everything after resume_reading."""
    async def main():
        server_tr = loop.create_future()

        class Server(asyncio.Protocol):
            def connection_made(self, transport):
                server_tr.set_result(transport)

        server, port = await _tls_server(loop, tls, Server)
        client = Collect(loop)
        tr, _ = await loop.create_connection(lambda: client, "127.0.0.1", port,
                                             ssl=tls.client_context(), server_hostname="localhost")
        tr.pause_reading()
        assert not tr.is_reading()
        str_ = await server_tr
        str_.write(b"while paused")
        # Wait until the record is at the client's TLS layer (polling a counter, not sleeping
        # for luck), then give the loop a few more turns: nothing may be delivered.
        deadline = loop.time() + 30
        while tr.get_read_buffer_size() == 0:
            assert loop.time() < deadline, "the data never reached the client"
            await asyncio.sleep(0.01)
        for _ in range(5):
            await asyncio.sleep(0)
        assert bytes(client.data) == b""
        tr.resume_reading()
        assert tr.is_reading()
        assert await client.wait_for_bytes(12) == b"while paused"
        tr.close()
        await client.lost
        await _close_server(server)

    run(loop, main())


def test_peer_close_notify_gives_eof_then_connection_lost(loop, tls):
    """The server closes cleanly after its data: the client gets the data, eof_received,
    connection_lost(None); returning True from eof_received cannot keep a TLS connection open."""
    async def main():
        class Server(asyncio.Protocol):
            def connection_made(self, transport):
                transport.write(b"last words")
                transport.close()

        server, port = await _tls_server(loop, tls, Server)
        client = Collect(loop)
        await loop.create_connection(lambda: client, "127.0.0.1", port,
                                     ssl=tls.client_context(), server_hostname="localhost")
        assert await client.eof == b"last words"
        assert await client.lost is None
        await _close_server(server)

    run(loop, main())


@needs_unix
def test_unix_socket_tls(loop, tls, sock_path):
    async def main():
        server = await loop.create_unix_server(EchoProtocol, sock_path, ssl=tls.server_context())
        client = Collect(loop)
        tr, _ = await loop.create_unix_connection(lambda: client, sock_path, ssl=tls.client_context(),
                                                  server_hostname="localhost")
        tr.write(b"over a unix socket")
        assert await client.wait_for_bytes(18) == b"over a unix socket"
        tr.close()
        await client.lost
        await _close_server(server)

    run(loop, main())


# ----------------------------------------------------------- buffered protocols


class BufferedCollect(asyncio.BufferedProtocol):
    """A BufferedProtocol with a tiny buffer, so one record needs many get_buffer calls."""

    def __init__(self, loop, size=7):
        self.buf = bytearray(size)
        self.data = bytearray()
        self.lost = loop.create_future()
        self.hints = []
        self._want = None

    def connection_made(self, transport):
        self.transport = transport

    def get_buffer(self, sizehint):
        self.hints.append(sizehint)
        return self.buf

    def buffer_updated(self, nbytes):
        self.data += self.buf[:nbytes]
        if self._want and len(self.data) >= self._want[0] and not self._want[1].done():
            self._want[1].set_result(bytes(self.data))

    def wait_for_bytes(self, n):
        fut = asyncio.get_running_loop().create_future()
        self._want = (n, fut)
        self.buffer_updated(0)
        return fut

    def eof_received(self):
        return False

    def connection_lost(self, exc):
        if not self.lost.done():
            self.lost.set_result(exc)


def test_create_connection_with_buffered_protocol(loop, tls):
    async def main():
        server, port = await _tls_server(loop, tls)
        client = BufferedCollect(loop)
        tr, _ = await loop.create_connection(lambda: client, "127.0.0.1", port,
                                             ssl=tls.client_context(), server_hostname="localhost")
        payload = bytes(range(256)) * 64
        tr.write(payload)
        assert await client.wait_for_bytes(len(payload)) == payload
        tr.close()
        await client.lost
        await _close_server(server)

    run(loop, main())


def test_start_tls_with_buffered_protocol(loop, tls):
    """start_tls() hands decrypted bytes to a BufferedProtocol through get_buffer/buffer_updated."""
    async def main():
        server_proto = Collect(loop)
        server = await loop.create_server(lambda: server_proto, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        ctr, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
        str_ = await server_proto.made
        server_up = asyncio.ensure_future(loop.start_tls(
            str_, server_proto, tls.server_context(), server_side=True))
        client = BufferedCollect(loop, size=1000)
        client_tls = await loop.start_tls(ctr, client, tls.client_context(),
                                          server_hostname="localhost")
        server_tls = await server_up
        server_tls.write(b"0123456789" * 1000)
        assert await client.wait_for_bytes(10000) == b"0123456789" * 1000
        client_tls.close()
        await client.lost
        await server_proto.lost
        await _close_server(server)

    run(loop, main())


def test_server_with_buffered_protocol(loop, tls):
    async def main():
        made = loop.create_future()

        class Server(BufferedCollect):
            def connection_made(self, transport):
                super().connection_made(transport)
                made.set_result(self)

        server, port = await _tls_server(loop, tls, lambda: Server(loop, 64))
        tr, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port,
                                             ssl=tls.client_context(), server_hostname="localhost")
        tr.write(b"to a buffered server" * 100)
        proto = await made
        assert await proto.wait_for_bytes(2000) == b"to a buffered server" * 100
        tr.close()
        await proto.lost
        await _close_server(server)

    run(loop, main())


def test_tls_inside_tls(loop, tls):
    """start_tls over a TLS transport: two layers of TLS on one socket."""
    async def main():
        server_proto = Collect(loop)
        server, port = await _tls_server(loop, tls, lambda: server_proto)
        outer, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port,
                                                ssl=tls.client_context(), server_hostname="localhost")
        outer_server = await server_proto.made
        server_up = asyncio.ensure_future(loop.start_tls(
            outer_server, server_proto, tls.server_context(), server_side=True))
        client = Collect(loop)
        inner = await loop.start_tls(outer, client, tls.client_context(), server_hostname="localhost")
        inner_server = await server_up
        assert inner.get_extra_info("ssl_object") is not outer.get_extra_info("ssl_object")
        inner.write(b"twice encrypted")
        assert await server_proto.wait_for_bytes(15) == b"twice encrypted"
        inner_server.write(b"and back")
        assert await client.wait_for_bytes(8) == b"and back"
        inner.close()
        await client.lost
        outer.close()
        await server_proto.lost
        await _close_server(server)

    run(loop, main())


# ----------------------------------------------------------------- errors


def test_untrusted_certificate_fails_the_handshake(loop, tls):
    async def main():
        server, port = await _tls_server(loop, tls)
        handler_calls = []
        loop.set_exception_handler(lambda lp, ctx: handler_calls.append(ctx))
        default = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # does not trust the test certificate
        with pytest.raises(ssl.SSLCertVerificationError):
            await loop.create_connection(asyncio.Protocol, "127.0.0.1", port, ssl=default,
                                         server_hostname="localhost")
        wrong_name = tls.client_context()
        with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch|doesn't match"):
            await loop.create_connection(asyncio.Protocol, "127.0.0.1", port, ssl=wrong_name,
                                         server_hostname="example.com")
        # The server survives the failed handshakes and serves the next connection.
        client = Collect(loop)
        tr, _ = await loop.create_connection(lambda: client, "127.0.0.1", port,
                                             ssl=tls.client_context(), server_hostname="localhost")
        tr.write(b"still here")
        assert await client.wait_for_bytes(10) == b"still here"
        tr.close()
        await client.lost
        await _close_server(server)
        # SSLError is an OSError: like a reset peer, it is the connection's news, not the loop's.
        assert handler_calls == []

    run(loop, main())


def test_plaintext_peer_fails_the_server_handshake(loop, tls):
    """Something that is not TLS at a TLS server: the connection is dropped, the server goes on."""
    async def main():
        server, port = await _tls_server(loop, tls)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await reader.read()  # perhaps an alert, then EOF: the server dropped the connection
        writer.close()
        client = Collect(loop)
        tr, _ = await loop.create_connection(lambda: client, "127.0.0.1", port,
                                             ssl=tls.client_context(), server_hostname="localhost")
        tr.write(b"ok")
        assert await client.wait_for_bytes(2) == b"ok"
        tr.close()
        await client.lost
        await _close_server(server)

    run(loop, main())


def test_protocol_errors_reach_the_exception_handler(loop, tls):
    """A data_received that raises: the loop's exception handler gets it (asyncio's message), the
    connection is dropped with it, the loop goes on."""
    async def main():
        server, port = await _tls_server(loop, tls)
        reports = []
        loop.set_exception_handler(lambda lp, ctx: reports.append(ctx))
        boom = ZeroDivisionError("in data_received")

        class Fragile(Collect):
            def data_received(self, data):
                raise boom

        client = Fragile(loop)
        tr, _ = await loop.create_connection(lambda: client, "127.0.0.1", port,
                                             ssl=tls.client_context(), server_hostname="localhost")
        tr.write(b"echo me")
        assert await client.lost is boom
        assert tr.is_closing()
        assert [r["exception"] for r in reports] == [boom]
        assert reports[0]["message"] == "Fatal error on SSL protocol"
        await _close_server(server)

    run(loop, main())


def test_ssl_timeouts_must_be_positive(loop, tls):
    """ValueError for ssl_handshake_timeout/ssl_shutdown_timeout <= 0, as asyncio."""
    async def main():
        server, port = await _tls_server(loop, tls)
        for bad in (0, -1):
            for kw in ("ssl_handshake_timeout", "ssl_shutdown_timeout"):
                with pytest.raises(ValueError, match=f"{kw} should be a positive number"):
                    await loop.create_connection(asyncio.Protocol, "127.0.0.1", port,
                                                 ssl=tls.client_context(),
                                                 server_hostname="localhost", **{kw: bad})
        tr, proto = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
        for kw in ("ssl_handshake_timeout", "ssl_shutdown_timeout"):
            with pytest.raises(ValueError, match=f"{kw} should be a positive number"):
                await loop.start_tls(tr, proto, tls.client_context(), server_hostname="localhost",
                                     **{kw: 0})
        tr.close()
        await _close_server(server)

    run(loop, main())


@pytest.mark.skip_loops("asyncio", "uvloop", reason="they accept a timeout <= 0 in create_server and then fail "
                                                     "every connection without a word")
def test_server_ssl_timeouts_must_be_positive(loop, tls, sock_path):
    async def main():
        for kw in ("ssl_handshake_timeout", "ssl_shutdown_timeout"):
            with pytest.raises(ValueError, match=f"{kw} should be a positive number"):
                await loop.create_server(asyncio.Protocol, "127.0.0.1", 0, ssl=tls.server_context(),
                                         **{kw: 0})
            with pytest.raises(ValueError, match=f"{kw} should be a positive number"):
                await loop.create_unix_server(asyncio.Protocol, sock_path, ssl=tls.server_context(),
                                              **{kw: -1.5})

    run(loop, main())


def test_server_handshake_timeout(loop, tls):
    """A client that connects and says nothing is dropped after ssl_handshake_timeout."""
    async def main():
        server, port = await _tls_server(loop, tls, ssl_handshake_timeout=0.2)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        t0 = loop.time()
        assert await reader.read() == b""
        assert loop.time() - t0 >= 0.15
        writer.close()
        await _close_server(server)

    run(loop, main())


def test_shutdown_timeout(loop, tls):
    """A peer that never answers close_notify: connection_lost after ssl_shutdown_timeout, with
    asyncio's TimeoutError."""
    release = threading.Event()

    def silent_after_handshake(sock):
        peer = BioPeer(sock, tls.server_context(), server_side=True)
        peer.handshake()
        release.wait(60)  # never answers our close_notify; the test releases it at the end

    async def main():
        with ThreadServer(loop, silent_after_handshake) as srv:
            client = Collect(loop)
            tr, _ = await loop.create_connection(
                lambda: client, *srv.addr, ssl=tls.client_context(), server_hostname="localhost",
                ssl_shutdown_timeout=0.3)
            t0 = loop.time()
            tr.close()
            exc = await client.lost
            assert loop.time() - t0 >= 0.25
            assert isinstance(exc, asyncio.TimeoutError)
            release.set()
            await srv.result

    run(loop, main())
