"""The TLS state machine's edge cases: the end of a connection, and its first bytes.

Each case is one uvloop's own test suite checks (uvloop's behaviour is the reference, so these run on
uvloop too with PYLOOP_TEST_LOOPS=asyncio,pyloop,uvloop) and that asyncio.sslproto gets wrong in
places: the ``skip_loops`` reasons say how.  The far end is a thread (``_tlspeer``) that sends exactly
the records the case needs, synchronised with events, not sleeps.
"""

import asyncio
import gc
import socket
import ssl
import threading
import warnings
import weakref

import pytest

from ._netutil import Collect, run, tls
from ._tlspeer import BioPeer, ThreadServer

pytestmark = pytest.mark.timeout(120)

__all__ = ["tls"]  # fixture, used by name


def _paused_client(loop, on_eof_resume):
    """A protocol that answers b"hello" with b"world" and pauses reading; returns
    (protocol factory, list of later data, future of connection_lost's argument)."""
    extra = []
    lost = loop.create_future()

    class Client(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            if data == b"hello":
                self.transport.write(b"world")
                self.transport.pause_reading()  # what comes next stays unread for now
            else:
                extra.append(data)

        def eof_received(self):
            if on_eof_resume:
                self.transport.resume_reading()

        def connection_lost(self, exc):
            lost.set_result(exc)

    return Client, extra, lost


def _hello_extra_fin(tls, fin_sent=None):
    def server(sock):
        tsock = tls.server_context().wrap_socket(sock, server_side=True)
        tsock.sendall(b"hello")
        assert tsock.recv(1024) == b"world"
        tsock.sendall(b"extra bytes")
        tsock.shutdown(socket.SHUT_WR)  # TCP only: no close_notify
        if fin_sent is not None:
            fin_sent.set()
        assert tsock.recv(1024) == b""
        tsock.close()
    return server


@pytest.mark.skip_loops("asyncio", reason="asyncio.sslproto keeps a connection whose reading is paused "
                                          "half-open after a TCP EOF and never arms its shutdown "
                                          "timer: it hangs (uvloop's test_shutdown_timeout_handler_not_set)")
def test_tcp_eof_while_paused_does_not_hang(loop, tls):
    """The peer sends data and a TCP FIN (no close_notify) while the application has paused
    reading and never resumes: the connection still ends, within ssl_shutdown_timeout (uvloop ends
    it at once, dropping the data), and the unread data is never delivered."""
    async def main():
        factory, extra, lost = _paused_client(loop, on_eof_resume=True)
        with ThreadServer(loop, _hello_extra_fin(tls)) as srv:
            tr, _ = await loop.create_connection(factory, *srv.addr, ssl=tls.client_context(),
                                                 server_hostname="localhost", ssl_shutdown_timeout=0.5)
            exc = await lost
            assert exc is None or isinstance(exc, asyncio.TimeoutError)
            tr.close()
            await srv.result
        assert extra == []

    run(loop, main())


@pytest.mark.skip_loops("uvloop", reason="uvloop drops what a paused protocol has not read yet when the peer "
                                         "closes TCP, if the EOF comes before resume_reading()")
def test_data_before_tcp_eof_reaches_a_paused_protocol_that_resumes(loop, tls):
    """Data, then a TCP FIN, while the application has paused reading: after resume_reading() it
    gets the data, then connection_lost(None) (CPython's test_shutdown_timeout_handler_not_set)."""
    fin_sent = threading.Event()

    async def main():
        factory, extra, lost = _paused_client(loop, on_eof_resume=False)
        with ThreadServer(loop, _hello_extra_fin(tls, fin_sent)) as srv:
            tr, _ = await loop.create_connection(factory, *srv.addr, ssl=tls.client_context(),
                                                 server_hostname="localhost")
            await loop.run_in_executor(None, fin_sent.wait, 30)
            tr.resume_reading()
            assert await lost is None
            tr.close()
            await srv.result
        assert b"".join(extra) == b"extra bytes"

    run(loop, main())


@pytest.mark.skip_loops("asyncio", reason="asyncio.sslproto calls SSL_shutdown with the peer's data still "
                                          "unread: SSLError APPLICATION_DATA_AFTER_CLOSE_NOTIFY (bpo-39951)")
@pytest.mark.parametrize("together", [True, False], ids=["one-send", "two-sends"])
def test_data_after_our_close_notify_is_discarded(loop, tls, together):
    """TLS 1.3 lets the peer send application data after our close_notify (bpo-39951): it is
    dropped, and the shutdown completes cleanly instead of failing with 'application data after
    close notify'."""
    closed = threading.Event()

    def server(sock):
        peer = BioPeer(sock, tls.server_context(), server_side=True)
        peer.handshake()
        assert peer.read_exactly(4) == b"ping"
        peer.write(b"pong")
        assert closed.wait(30)
        peer.write(b"trailing", send=not together)
        peer.finish_unwrap()  # reads the client's close_notify, answers it

    async def main():
        with ThreadServer(loop, server) as srv:
            reader, writer = await asyncio.open_connection(
                *srv.addr, ssl=tls.client_context(), server_hostname="localhost")
            writer.write(b"ping")
            assert await reader.readexactly(4) == b"pong"
            writer.close()
            closed.set()
            await writer.wait_closed()
            await srv.result

    run(loop, main())


@pytest.mark.skip_loops("asyncio", reason="asyncio delivers the data that came with the handshake's last "
                                          "flight before start_tls() returns: the protocol answers on "
                                          "the plain transport (uvloop's test_first_data_after_wakeup)")
def test_data_with_the_last_handshake_flight_comes_after_start_tls_returns(loop, tls):
    """The client sends its Finished and its first record in one packet: the server's protocol
    gets the data through data_received, after start_tls() has handed it the TLS transport."""
    def client(sock):
        peer = BioPeer(sock, tls.client_context(), server_side=False, server_hostname="localhost")
        peer.handshake(send_last_flight=False)
        peer.write(b"hello")  # goes out with the Finished message
        return peer.read_exactly(5)

    async def main():
        answered = loop.create_future()

        class Echo(asyncio.Protocol):
            def connection_made(self, tr):
                self.tr = tr
                # Drive start_tls() by hand, so that nothing runs between its wake-up and the
                # switch to the new transport.
                coro = loop.start_tls(tr, self, tls.server_context(), server_side=True)
                waiter = coro.send(None)

                def started(_):
                    try:
                        coro.send(None)
                    except StopIteration as e:
                        self.tr = e.value

                waiter.add_done_callback(started)

            def data_received(self, data):
                self.tr.write(data)  # must be the TLS transport by now
                if not answered.done():
                    answered.set_result(data)

        proto = Echo()
        server = await loop.create_server(lambda: proto, "127.0.0.1", 0)
        addr = server.sockets[0].getsockname()
        result = loop.create_future()

        def run_client():
            with socket.create_connection(addr, timeout=30) as sock:
                try:
                    data = client(sock)
                except BaseException as exc:
                    loop.call_soon_threadsafe(result.set_exception, exc)
                else:
                    loop.call_soon_threadsafe(result.set_result, data)

        thread = threading.Thread(target=run_client, daemon=True)
        thread.start()
        assert await result == b"hello"
        assert await answered == b"hello"
        thread.join(30)
        proto.tr.close()
        server.close()
        await server.wait_closed()

    run(loop, main())


@pytest.mark.skip_loops("asyncio", reason="asyncio.sslproto does not read while the application's reading "
                                          "is paused, so close() never sees the peer's close_notify "
                                          "(uvloop's test_shutdown_while_pause_reading)")
def test_close_while_paused_still_gets_eof(loop, tls):
    """pause_reading(), then close(): the peer's close_notify still reaches eof_received, and the
    connection ends with connection_lost(None); data sent before it is never delivered."""
    def server(sock):
        peer = BioPeer(sock, tls.server_context(), server_side=True)
        peer.handshake(send_last_flight=False)
        peer.write(b"trailing data")  # with the last flight
        assert peer.read_until_close_notify() == b""
        peer.finish_unwrap()
        assert sock.recv(16384) == b""  # the client closed the socket

    async def main():
        made = loop.create_future()
        eof = loop.create_future()
        lost = loop.create_future()
        got = []

        class Client(asyncio.Protocol):
            def connection_made(self, transport):
                made.set_result(None)

            def data_received(self, data):
                got.append(data)

            def eof_received(self):
                eof.set_result(None)

            def connection_lost(self, exc):
                lost.set_result(exc)

        with ThreadServer(loop, server) as srv:
            tr, _ = await loop.create_connection(Client, *srv.addr, ssl=tls.client_context(),
                                                 server_hostname="localhost")
            await made
            assert got == []
            tr.pause_reading()
            tr.close()
            await eof
            assert await lost is None
            await srv.result
        assert got == []

    run(loop, main())


def _ssl_protocol(transport):
    # The TLS protocol object under an SSL transport: asyncio and pyloop name it _ssl_protocol,
    # uvloop hands it out through get_extra_info.
    return transport.get_extra_info("uvloop.sslproto") or transport._ssl_protocol


def test_close_flushes_what_waited_for_the_socket(loop, tls):
    """Writes queued while the socket transport was full go out before close_notify."""
    chunk, count = 128 * 1024, 16

    def server(sock):
        peer = BioPeer(sock, tls.server_context(), server_side=True)
        peer.handshake()
        data = peer.read_until_close_notify()
        peer.finish_unwrap()
        return data

    async def main():
        with ThreadServer(loop, server) as srv:
            reader, writer = await asyncio.open_connection(
                *srv.addr, ssl=tls.client_context(), server_hostname="localhost")
            proto = _ssl_protocol(writer.transport)
            proto.pause_writing()  # as if the socket transport were full
            for i in range(count):
                writer.write(bytes([i]) * chunk)
            writer.close()
            proto.resume_writing()
            await writer.wait_closed()
            data = await srv.result
        assert data == b"".join(bytes([i]) * chunk for i in range(count))

    run(loop, main())


def test_close_while_the_socket_is_full(loop, tls):
    """close() while the socket transport is full, and the peer's close_notify already in: the
    shutdown completes when the socket drains (inside the socket transport's resume_writing);
    everything written went out, the connection ends once, with nothing for the exception handler."""
    ready = threading.Event()

    def server(sock):
        peer = BioPeer(sock, tls.server_context(), server_side=True)
        peer.handshake()
        assert ready.wait(30)  # read nothing until the client has filled the socket and closed
        peer.send_close_notify()  # ours first: the client's shutdown completes as its writes drain
        data = peer.read_until_close_notify()
        return len(data)

    async def main():
        reports = []
        loop.set_exception_handler(lambda lp, ctx: reports.append(ctx))
        with ThreadServer(loop, server) as srv:
            client = Collect(loop)
            tr, _ = await loop.create_connection(lambda: client, *srv.addr, ssl=tls.client_context(),
                                                 server_hostname="localhost")
            chunk = b"z" * (1024 * 1024)
            sent = 0
            while tr.get_write_buffer_size() == 0:  # until TLS output waits for the socket
                tr.write(chunk)
                sent += len(chunk)
                assert sent < 1024 * len(chunk), "the socket never filled up"
                await asyncio.sleep(0)
            tr.close()
            ready.set()
            assert await client.lost is None
            assert await srv.result == sent
        assert reports == []

    run(loop, main())


def test_cancelled_handshake_leaves_no_garbage(loop, tls):
    """A create_connection cancelled during the handshake frees the SSL context by reference
    counting alone (gc disabled): no timer, cycle or cached callback keeps the TLS layer alive."""
    async def attempt(ctx, addr):
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(
                loop.create_connection(asyncio.Protocol, *addr, ssl=ctx, server_hostname="localhost"),
                0.2)
        for _ in range(10):  # let connection_lost and friends run
            await asyncio.sleep(0)

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts (in the kernel) and never answers the ClientHello
    gc.collect()
    gc.disable()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            ctx = tls.client_context()
            run(loop, attempt(ctx, listener.getsockname()))
            ref = weakref.ref(ctx)
            del ctx
            assert ref() is None
            gc.collect()
        # Everything was closed on the way out: no "unclosed transport" (uvloop's
        # test_connect_timeout_warning).
        assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
    finally:
        gc.enable()
        listener.close()


def test_closed_connection_leaves_no_garbage(loop, tls):
    """After close() and connection_lost, nothing of the TLS layer survives without the GC."""
    def server(sock):
        peer = BioPeer(sock, tls.server_context(), server_side=True)
        peer.handshake()
        peer.read_until_close_notify()
        peer.finish_unwrap()

    async def attempt(ctx):
        with ThreadServer(loop, server) as srv:
            client = Collect(loop)
            tr, _ = await loop.create_connection(lambda: client, *srv.addr, ssl=ctx,
                                                 server_hostname="localhost")
            tr.close()
            await client.lost
            await srv.result
        for _ in range(10):
            await asyncio.sleep(0)

    gc.collect()
    gc.disable()
    try:
        ctx = tls.client_context()
        run(loop, attempt(ctx))
        ref = weakref.ref(ctx)
        del ctx
        assert ref() is None
    finally:
        gc.enable()


def test_plain_tcp_eof_after_data_gives_data_then_eof(loop, tls):
    """The peer sends data and closes TCP without close_notify: the data is delivered, then
    eof_received (as asyncio) and connection_lost."""
    def server(sock):
        tsock = tls.server_context().wrap_socket(sock, server_side=True)
        tsock.sendall(b"before the fin")
        tsock.shutdown(socket.SHUT_RDWR)
        tsock.close()

    async def main():
        with ThreadServer(loop, server) as srv:
            client = Collect(loop)
            await loop.create_connection(lambda: client, *srv.addr, ssl=tls.client_context(),
                                         server_hostname="localhost")
            assert await client.eof == b"before the fin"
            await client.lost
            await srv.result

    run(loop, main())


def test_unexpected_plaintext_after_handshake_is_a_fatal_error(loop, tls):
    """Garbage instead of a TLS record after the handshake: the connection is lost with an
    SSLError, the loop does not crash."""
    def server(sock):
        peer = BioPeer(sock, tls.server_context(), server_side=True)
        peer.handshake()
        sock.sendall(b"this is not a TLS record, it is plain text")
        try:
            sock.recv(1024)
        except OSError:
            pass

    async def main():
        with ThreadServer(loop, server) as srv:
            client = Collect(loop)
            await loop.create_connection(lambda: client, *srv.addr, ssl=tls.client_context(),
                                         server_hostname="localhost")
            exc = await client.lost
            assert isinstance(exc, (ssl.SSLError, ConnectionError)) or exc is None
            await srv.result

    run(loop, main())
