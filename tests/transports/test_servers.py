"""Servers: create_server / create_unix_server, the Server object, accepting.

Every test runs on stock asyncio (the reference) and on pyloop; where asyncio's
behaviour depends on the Python version (wait_closed, Unix socket cleanup,
close_clients) the expectation is the running Python's.
"""

import asyncio
import errno
import os
import pathlib
import socket
import stat
import uuid

import pytest

from ._netutil import (
    PY312,
    PY313,
    TIMEOUT,
    Collect,
    EchoProtocol,
    echo_roundtrip,
    linux_only,
    needs_ipv6,
    needs_unix,
    run,
    sock_path,
    stream_echo_handler,
    tls,
)

pytestmark = pytest.mark.timeout(120)

__all__ = ["sock_path", "tls"]  # fixtures, used by name


async def _tcp_echo_once(host, port, payload=b"ping"):
    reader, writer = await asyncio.open_connection(host, port)
    try:
        return await echo_roundtrip(reader, writer, payload)
    finally:
        writer.close()
        await writer.wait_closed()


# ------------------------------------------------------------------ echo


def test_tcp_echo_protocol(loop):
    async def main():
        server = await loop.create_server(EchoProtocol, "127.0.0.1", 0)
        assert server.is_serving()
        assert len(server.sockets) == 1
        host, port = server.sockets[0].getsockname()
        assert host == "127.0.0.1"

        client = Collect(loop)
        tr, pr = await loop.create_connection(lambda: client, "127.0.0.1", port)
        assert pr is client
        assert tr.get_extra_info("peername") == ("127.0.0.1", port)
        assert tr.get_extra_info("sockname")[0] == "127.0.0.1"
        payload = b"x" * 100_000
        tr.write(payload)
        echoed = await client.wait_for_bytes(len(payload))
        assert echoed == payload
        tr.close()
        assert await client.lost is None
        server.close()
        await server.wait_closed()
        assert not server.is_serving()
        assert server.sockets == ()

    run(loop, main())


def test_tcp_echo_streams_many_clients(loop):
    """Several clients at once: the accept loop takes every pending connection."""
    async def main():
        server = await asyncio.start_server(stream_echo_handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        results = await asyncio.gather(*(
            _tcp_echo_once("127.0.0.1", port, b"client-%d" % i) for i in range(20)))
        assert results == [b"client-%d" % i for i in range(20)]
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_server_transport_extra_info(loop):
    async def main():
        accepted = loop.create_future()

        class P(asyncio.Protocol):
            def connection_made(self, transport):
                accepted.set_result(transport)

        server = await loop.create_server(P, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        tr = await accepted
        assert tr.get_extra_info("sockname") == ("127.0.0.1", port)
        assert tr.get_extra_info("peername") == writer.get_extra_info("sockname")
        tr.close()
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()

    run(loop, main())


@needs_unix
def test_unix_echo_pathlike(loop, sock_path):
    async def main():
        path = pathlib.Path(sock_path)
        server = await loop.create_unix_server(EchoProtocol, path)
        assert stat.S_ISSOCK(os.stat(sock_path).st_mode)
        assert server.sockets[0].getsockname() == sock_path
        client = Collect(loop)
        tr, _ = await loop.create_unix_connection(lambda: client, path)
        tr.write(b"over unix")
        assert await client.wait_for_bytes(9) == b"over unix"
        tr.close()
        await client.lost
        server.close()
        await server.wait_closed()

    run(loop, main())


@needs_unix
def test_unix_streams_echo(loop, sock_path):
    async def main():
        server = await asyncio.start_unix_server(stream_echo_handler, sock_path)
        reader, writer = await asyncio.open_unix_connection(sock_path)
        assert await echo_roundtrip(reader, writer, b"hello") == b"hello"
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()

    run(loop, main())


@linux_only
@pytest.mark.parametrize("kind", ["str", "bytes"])
def test_unix_abstract_namespace(loop, kind):
    name = f"\0pyloop-test-{uuid.uuid4().hex}"
    path = name if kind == "str" else name.encode()

    async def main():
        server = await loop.create_unix_server(EchoProtocol, path)
        bound = server.sockets[0].getsockname()
        assert bound in (name, name.encode())
        client = Collect(loop)
        tr, _ = await loop.create_unix_connection(lambda: client, path)
        tr.write(b"abstract")
        assert await client.wait_for_bytes(8) == b"abstract"
        tr.close()
        await client.lost
        server.close()
        await server.wait_closed()

    run(loop, main())


# ------------------------------------------------------ hosts and options


def test_multiple_hosts_duplicates_bind_once(loop):
    async def main():
        server = await loop.create_server(
            EchoProtocol, ["127.0.0.1", "127.0.0.1"], 0)
        assert len(server.sockets) == 1
        server.close()
        await server.wait_closed()

    run(loop, main())


@needs_ipv6
def test_multiple_hosts_ipv4_and_ipv6(loop):
    async def main():
        server = await loop.create_server(EchoProtocol, ["127.0.0.1", "::1"], 0)
        families = sorted(s.family for s in server.sockets)
        assert families == sorted([socket.AF_INET, socket.AF_INET6])
        for s in server.sockets:
            host, port = s.getsockname()[:2]
            assert await _tcp_echo_once(host, port) == b"ping"
            if s.family == socket.AF_INET6:
                # Dual stack off: the IPv4 address has a socket of its own.
                assert s.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
        server.close()
        await server.wait_closed()

    run(loop, main())


@needs_ipv6
def test_all_interfaces_dual_stack(loop):
    """host=None binds every family; the IPv6 socket is IPv6-only."""
    async def main():
        server = await loop.create_server(EchoProtocol, None, 0)
        families = {s.family for s in server.sockets}
        assert socket.AF_INET in families
        for s in server.sockets:
            if s.family == socket.AF_INET6:
                assert s.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
            else:
                port = s.getsockname()[1]
                assert await _tcp_echo_once("127.0.0.1", port) == b"ping"
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_empty_host_means_all_interfaces(loop):
    async def main():
        server = await loop.create_server(EchoProtocol, "", 0, family=socket.AF_INET)
        assert [s.getsockname()[0] for s in server.sockets] == ["0.0.0.0"]
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_reuse_address_default_on_posix(loop):
    async def main():
        server = await loop.create_server(EchoProtocol, "127.0.0.1", 0)
        sock = server.sockets[0]
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) != 0
        server.close()
        server = await loop.create_server(EchoProtocol, "127.0.0.1", 0,
                                          reuse_address=False)
        sock = server.sockets[0]
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 0
        server.close()

    run(loop, main())


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="no SO_REUSEPORT")
def test_reuse_port(loop):
    async def main():
        plain = await loop.create_server(EchoProtocol, "127.0.0.1", 0)
        assert plain.sockets[0].getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 0
        plain.close()

        first = await loop.create_server(EchoProtocol, "127.0.0.1", 0, reuse_port=True)
        port = first.sockets[0].getsockname()[1]
        assert first.sockets[0].getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) != 0
        # A second listener on the same port: only possible with SO_REUSEPORT.
        second = await loop.create_server(EchoProtocol, "127.0.0.1", port, reuse_port=True)
        assert second.sockets[0].getsockname()[1] == port
        assert await _tcp_echo_once("127.0.0.1", port) == b"ping"
        first.close()
        second.close()
        await first.wait_closed()
        await second.wait_closed()

    run(loop, main())


def test_keep_alive(loop, loop_name):
    if loop_name == "asyncio" and not PY313:
        pytest.skip("keep_alive is new in asyncio 3.13")

    async def main():
        server = await loop.create_server(EchoProtocol, "127.0.0.1", 0, keep_alive=True)
        assert server.sockets[0].getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0
        server.close()

    run(loop, main())


def test_create_server_sock(loop):
    async def main():
        listener = socket.create_server(("127.0.0.1", 0))
        server = await loop.create_server(EchoProtocol, sock=listener)
        assert server.sockets[0].fileno() == listener.fileno()
        assert listener.gettimeout() == 0
        port = listener.getsockname()[1]
        assert await _tcp_echo_once("127.0.0.1", port) == b"ping"
        server.close()
        await server.wait_closed()
        assert listener.fileno() == -1  # the server owned it

    run(loop, main())


@needs_unix
def test_create_unix_server_sock(loop, sock_path):
    async def main():
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(sock_path)
        server = await loop.create_unix_server(EchoProtocol, sock=listener)
        reader, writer = await asyncio.open_unix_connection(sock_path)
        assert await echo_roundtrip(reader, writer, b"sock=") == b"sock="
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_create_server_addr_in_use(loop):
    async def main():
        first = await loop.create_server(EchoProtocol, "127.0.0.1", 0)
        port = first.sockets[0].getsockname()[1]
        with pytest.raises(OSError) as info:
            await loop.create_server(EchoProtocol, "127.0.0.1", port, reuse_address=False)
        assert info.value.errno == errno.EADDRINUSE
        assert "error while attempting to bind on address" in str(info.value)
        assert str(("127.0.0.1", port)) in str(info.value)
        first.close()
        await first.wait_closed()

    run(loop, main())


@needs_unix
def test_unix_server_addr_in_use_message(loop, sock_path):
    async def main():
        # Only a *socket* file counts as stale and is removed first: a
        # regular file at the path makes bind() fail.
        with open(sock_path, "w"):
            pass
        with pytest.raises(OSError) as info:
            await loop.create_unix_server(EchoProtocol, sock_path)
        assert info.value.errno == errno.EADDRINUSE
        assert repr(sock_path) in str(info.value)

    run(loop, main())


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(sock=None), ValueError, "Neither host/port nor sock were specified"),
    (dict(ssl=True, port=0), TypeError, "ssl argument must be an SSLContext or None"),
    (dict(port=0, ssl_handshake_timeout=1), ValueError, "ssl_handshake_timeout is only meaningful with ssl"),
    (dict(port=0, ssl_shutdown_timeout=1), ValueError, "ssl_shutdown_timeout is only meaningful with ssl"),
])
def test_create_server_argument_errors(loop, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        run(loop, loop.create_server(EchoProtocol, **kwargs))


def test_create_server_sock_errors(loop):
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tcp = socket.socket()
    try:
        with pytest.raises(ValueError, match="A Stream Socket was expected"):
            run(loop, loop.create_server(EchoProtocol, sock=udp))
        with pytest.raises(ValueError, match="host/port and sock can not be specified at the same time"):
            run(loop, loop.create_server(EchoProtocol, "127.0.0.1", 0, sock=tcp))
    finally:
        udp.close()
        tcp.close()


@needs_unix
def test_create_unix_server_argument_errors(loop, sock_path):
    tcp = socket.socket()
    try:
        with pytest.raises(ValueError, match="path and sock can not be specified at the same time"):
            run(loop, loop.create_unix_server(EchoProtocol, sock_path, sock=tcp))
        with pytest.raises(ValueError, match="path was not specified, and no sock specified"):
            run(loop, loop.create_unix_server(EchoProtocol))
        with pytest.raises(ValueError, match="A UNIX Domain Stream Socket was expected"):
            run(loop, loop.create_unix_server(EchoProtocol, sock=tcp))
        with pytest.raises(TypeError, match="ssl argument must be an SSLContext or None"):
            run(loop, loop.create_unix_server(EchoProtocol, sock_path, ssl=True))
        with pytest.raises(ValueError, match="ssl_handshake_timeout is only meaningful with ssl"):
            run(loop, loop.create_unix_server(EchoProtocol, sock_path, ssl_handshake_timeout=1))
    finally:
        tcp.close()


# ------------------------------------------------------- Server lifecycle


def test_server_api(loop):
    async def main():
        server = await loop.create_server(EchoProtocol, "127.0.0.1", 0)
        assert isinstance(server, asyncio.AbstractServer)
        assert server.get_loop() is loop
        assert "sockets=" in repr(server)
        (tsock,) = server.sockets
        assert isinstance(tsock, asyncio.trsock.TransportSocket)
        assert hasattr(server, "close_clients") == hasattr(asyncio.base_events.Server, "close_clients")
        server.close()
        server.close()  # idempotent
        await server.wait_closed()

    run(loop, main())


def test_start_serving_false(loop):
    async def main():
        server = await loop.create_server(EchoProtocol, "127.0.0.1", 0, start_serving=False)
        assert not server.is_serving()
        port = server.sockets[0].getsockname()[1]
        # Not even listening yet: the kernel refuses the connection.
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)
        await server.start_serving()
        assert server.is_serving()
        await server.start_serving()  # idempotent
        assert await _tcp_echo_once("127.0.0.1", port) == b"ping"
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_async_with_closes_server(loop):
    async def main():
        server = await loop.create_server(EchoProtocol, "127.0.0.1", 0)
        async with server as entered:
            assert entered is server
            assert server.is_serving()
        assert not server.is_serving()
        assert server.sockets == ()

    run(loop, main())


def test_serve_forever_cancel(loop):
    async def main():
        server = await loop.create_server(EchoProtocol, "127.0.0.1", 0, start_serving=False)
        port = server.sockets[0].getsockname()[1]
        task = asyncio.ensure_future(server.serve_forever())
        await asyncio.sleep(0)
        assert server.is_serving()
        with pytest.raises(RuntimeError, match="already being awaited on serve_forever"):
            await server.serve_forever()
        assert await _tcp_echo_once("127.0.0.1", port) == b"ping"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not server.is_serving()
        assert server.sockets == ()
        with pytest.raises(RuntimeError, match="is closed"):
            await server.serve_forever()

    run(loop, main())


def test_close_ends_serve_forever(loop):
    async def main():
        server = await loop.create_server(EchoProtocol, "127.0.0.1", 0)
        task = asyncio.ensure_future(server.serve_forever())
        await asyncio.sleep(0)
        server.close()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(loop, main())


def test_close_stops_accepting_keeps_connections(loop):
    async def main():
        server = await asyncio.start_server(stream_echo_handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await echo_roundtrip(reader, writer, b"before") == b"before"
        server.close()
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)
        # The accepted connection is still served.
        assert await echo_roundtrip(reader, writer, b"after") == b"after"
        writer.close()
        await writer.wait_closed()
        await server.wait_closed()

    run(loop, main())


def test_wait_closed_waits_for_connections(loop):
    """3.12+: wait_closed returns once the server is closed *and* its
    connections are gone.  3.11: it returns at once after close()."""
    async def main():
        server = await asyncio.start_server(stream_echo_handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]

        early = asyncio.ensure_future(server.wait_closed())
        await asyncio.sleep(0)
        assert not early.done()  # open server: every version waits

        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await echo_roundtrip(reader, writer, b"x") == b"x"
        server.close()
        late = asyncio.ensure_future(server.wait_closed())
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        if PY312:
            assert not early.done()
            assert not late.done()
        else:
            assert late.done()
        writer.close()  # the handler sees EOF, closes its side, detaches
        await writer.wait_closed()
        await asyncio.wait_for(early, TIMEOUT)
        await asyncio.wait_for(late, TIMEOUT)
        await server.wait_closed()  # returns at once now

    run(loop, main())


@pytest.mark.skipif(not PY313, reason="Server.close_clients/abort_clients are new in 3.13")
@pytest.mark.parametrize("method", ["close_clients", "abort_clients"])
def test_close_and_abort_clients(loop, method):
    async def main():
        server = await asyncio.start_server(stream_echo_handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        readers = []
        for _ in range(3):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert await echo_roundtrip(reader, writer, b"hi") == b"hi"
            readers.append((reader, writer))
        server.close()
        getattr(server, method)()
        await asyncio.wait_for(server.wait_closed(), TIMEOUT)
        for reader, writer in readers:
            try:
                assert await reader.read() == b""
            except ConnectionResetError:
                assert method == "abort_clients"
            writer.close()

    run(loop, main())


# ------------------------------------------------------- Unix socket files


@needs_unix
def test_unix_server_removes_stale_socket_file(loop, sock_path):
    async def main():
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(sock_path)
        stale.close()  # leaves the file behind
        assert os.path.exists(sock_path)
        server = await loop.create_unix_server(EchoProtocol, sock_path)
        reader, writer = await asyncio.open_unix_connection(sock_path)
        assert await echo_roundtrip(reader, writer, b"fresh") == b"fresh"
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()

    run(loop, main())


@needs_unix
def test_unix_server_cleanup_default(loop, sock_path):
    """3.13+ removes the socket file on close; earlier versions leave it."""
    async def main():
        server = await loop.create_unix_server(EchoProtocol, sock_path)
        server.close()
        await server.wait_closed()
        assert os.path.exists(sock_path) == (not PY313)

    run(loop, main())


@needs_unix
def test_unix_server_cleanup_sock_argument(loop, sock_path):
    async def main():
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(sock_path)
        server = await loop.create_unix_server(EchoProtocol, sock=listener)
        server.close()
        await server.wait_closed()
        assert os.path.exists(sock_path) == (not PY313)

    run(loop, main())


@needs_unix
def test_unix_server_cleanup_spares_a_replaced_file(loop, loop_name, sock_path):
    async def main():
        server = await loop.create_unix_server(EchoProtocol, sock_path)
        os.unlink(sock_path)
        other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        other.bind(sock_path)  # someone else's socket now
        try:
            server.close()
            await server.wait_closed()
            assert os.path.exists(sock_path)
        finally:
            other.close()

    run(loop, main())


@needs_unix
def test_unix_server_cleanup_file_already_gone(loop, sock_path):
    async def main():
        server = await loop.create_unix_server(EchoProtocol, sock_path)
        os.unlink(sock_path)
        server.close()  # must not raise
        await server.wait_closed()

    run(loop, main())


@needs_unix
def test_unix_server_cleanup_opt_out(loop, loop_name, sock_path):
    if loop_name == "asyncio" and not PY313:
        pytest.skip("cleanup_socket is new in asyncio 3.13")

    async def main():
        server = await loop.create_unix_server(EchoProtocol, sock_path, cleanup_socket=False)
        server.close()
        await server.wait_closed()
        assert os.path.exists(sock_path)

    run(loop, main())


@needs_unix
def test_unix_server_cleanup_opt_in(loop, loop_name, sock_path):
    if loop_name == "asyncio" and not PY313:
        pytest.skip("cleanup_socket is new in asyncio 3.13")

    async def main():
        server = await loop.create_unix_server(EchoProtocol, sock_path, cleanup_socket=True)
        server.close()
        await server.wait_closed()
        assert not os.path.exists(sock_path)

    run(loop, main())


# ---------------------------------------------------------------- accepting


class _ExhaustedListener(socket.socket):
    """A listening socket whose accept() fails with EMFILE while
    ``exhausted`` is set, counting the calls."""

    exhausted = True
    failed_calls = 0

    def accept(self):
        if self.exhausted:
            self.failed_calls += 1
            raise OSError(errno.EMFILE, "Too many open files")
        return super().accept()


def test_accept_out_of_descriptors_pauses_then_resumes(loop, loop_name):
    async def main():
        listener = _ExhaustedListener(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        reports = []
        loop.set_exception_handler(lambda lp, ctx: reports.append(ctx))
        server = await loop.create_server(EchoProtocol, sock=listener)
        port = listener.getsockname()[1]
        client = asyncio.ensure_future(_tcp_echo_once("127.0.0.1", port))
        while not reports:
            await asyncio.sleep(0)
        t0 = loop.time()
        listener.exhausted = False
        # Accepted only when the loop looks at the listener again, after
        # ACCEPT_RETRY_DELAY (1 s).
        assert await client == b"ping"
        assert loop.time() - t0 >= asyncio.constants.ACCEPT_RETRY_DELAY * 0.5
        ctx = reports[0]
        assert ctx["message"] == "socket.accept() out of system resource"
        assert ctx["exception"].errno == errno.EMFILE
        assert isinstance(ctx["socket"], asyncio.trsock.TransportSocket)
        if loop_name == "pyloop":
            # Stricter than asyncio, which retries accept() up to `backlog`
            # times in the same callback and reports each failure.
            assert listener.failed_calls == 1
            assert len(reports) == 1
        assert server.is_serving()
        server.close()
        await server.wait_closed()

    run(loop, main())


@pytest.mark.skip_loops("asyncio", reason="asyncio re-adds the reader of the closed "
                        "listening socket when the retry delay ends and logs the "
                        "resulting ValueError; pyloop cancels the retry on close")
def test_close_while_accept_paused(loop):
    """Closing the server during the retry delay must not bring it back."""
    async def main():
        listener = _ExhaustedListener(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        reports = []
        loop.set_exception_handler(lambda lp, ctx: reports.append(ctx))
        server = await loop.create_server(EchoProtocol, sock=listener)
        port = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        try:
            while not reports:
                await asyncio.sleep(0)
            server.close()
            # Nothing may happen when the retry would have fired.
            await asyncio.sleep(asyncio.constants.ACCEPT_RETRY_DELAY * 1.5)
            assert [r["message"] for r in reports] == ["socket.accept() out of system resource"]
            assert listener.failed_calls == 1
        finally:
            client.close()

    run(loop, main())


def test_protocol_factory_context_is_per_connection(loop):
    """Each accepted connection gets its own copy of the server's context, as
    when asyncio accepts in a task."""
    import contextvars

    var = contextvars.ContextVar("var", default=None)

    async def main():
        seen = []
        done = loop.create_future()

        class P(asyncio.Protocol):
            def __init__(self):
                seen.append(var.get())
                var.set(len(seen))

            def connection_made(self, transport):
                transport.close()
                if len(seen) == 2 and not done.done():
                    done.set_result(None)

        var.set("server")
        server = await loop.create_server(P, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        for _ in range(2):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await reader.read()
            writer.close()
        await done
        assert seen == ["server", "server"]
        assert var.get() == "server"
        server.close()
        await server.wait_closed()

    run(loop, main())


# ---------------------------------------------------------------------- TLS


def test_tls_echo(loop, tls):
    async def main():
        server = await asyncio.start_server(
            stream_echo_handler, "127.0.0.1", 0, ssl=tls.server_context())
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=tls.client_context(), server_hostname="localhost")
        assert writer.get_extra_info("ssl_object") is not None
        assert writer.get_extra_info("peercert")["subject"]
        assert writer.get_extra_info("cipher") is not None
        payload = os.urandom(200_000)
        assert await echo_roundtrip(reader, writer, payload) == payload
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()

    run(loop, main())


@needs_unix
def test_tls_unix_echo(loop, tls, sock_path):
    async def main():
        server = await asyncio.start_unix_server(
            stream_echo_handler, sock_path, ssl=tls.server_context())
        reader, writer = await asyncio.open_unix_connection(
            sock_path, ssl=tls.client_context(), server_hostname="localhost")
        assert await echo_roundtrip(reader, writer, b"secret") == b"secret"
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_tls_server_handshake_timeout(loop, tls):
    """A client that never speaks TLS is dropped after ssl_handshake_timeout."""
    async def main():
        handled = []
        server = await asyncio.start_server(
            lambda r, w: handled.append(w), "127.0.0.1", 0,
            ssl=tls.server_context(), ssl_handshake_timeout=0.2)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        t0 = loop.time()
        try:
            assert await reader.read() == b""
        except ConnectionResetError:
            pass
        assert loop.time() - t0 >= 0.15
        assert handled == []
        writer.close()
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_tls_verify_failure_reported_to_client(loop, tls):
    async def main():
        server = await asyncio.start_server(
            stream_echo_handler, "127.0.0.1", 0, ssl=tls.server_context())
        port = server.sockets[0].getsockname()[1]
        strict = __import__("ssl").create_default_context()  # does not trust our cert
        with pytest.raises(__import__("ssl").SSLCertVerificationError):
            await asyncio.open_connection("127.0.0.1", port, ssl=strict,
                                          server_hostname="localhost")
        server.close()
        await server.wait_closed()

    # The server side logs the failed handshake; keep the output quiet.
    loop.set_exception_handler(lambda lp, ctx: None)
    run(loop, main())
