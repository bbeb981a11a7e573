"""Client side: create_connection (resolution, Happy Eyeballs, local_addr, errors),
create_unix_connection, connect_accepted_socket, start_tls and loop.sendfile.

Every test runs on stock asyncio (the reference) and on pyloop.  Name resolution
is steered by replacing ``loop.getaddrinfo`` on the instance (both loops resolve
non-numeric hosts through it), so no test depends on /etc/hosts or DNS.
"""

import asyncio
import errno
import socket

import pytest

from ._netutil import (
    PY312,
    Collect,
    EchoProtocol,
    echo_roundtrip,
    needs_ipv6,
    needs_unix,
    refusing_address,
    run,
    sock_path,
    tls,
)

pytestmark = pytest.mark.timeout(120)

__all__ = ["sock_path", "tls"]  # fixtures, used by name


def _fake_resolver(loop, table):
    """Replace loop.getaddrinfo: host -> list of (family, address)."""
    real = loop.getaddrinfo

    async def getaddrinfo(host, port, *, family=0, type=0, proto=0, flags=0):
        if host in table:
            return [(fam, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", addr)
                    for fam, addr in table[host] if not family or fam == family]
        return await real(host, port, family=family, type=type, proto=proto, flags=flags)

    loop.getaddrinfo = getaddrinfo


def _record_connects(loop):
    """Wrap loop.sock_connect; return the list of addresses it was asked for."""
    real = loop.sock_connect
    seen = []

    async def sock_connect(sock, address):
        seen.append(address)
        return await real(sock, address)

    loop.sock_connect = sock_connect
    return seen


async def _echo_server(loop, host="127.0.0.1"):
    server = await loop.create_server(EchoProtocol, host, 0)
    return server, server.sockets[0].getsockname()


# ---------------------------------------------------------------- basics


def test_connect_by_name_through_getaddrinfo(loop):
    async def main():
        server, (host, port) = await _echo_server(loop)
        _fake_resolver(loop, {"echo.test": [(socket.AF_INET, (host, port))]})
        client = Collect(loop)
        tr, _ = await loop.create_connection(lambda: client, "echo.test", port)
        assert tr.get_extra_info("peername") == (host, port)
        tr.write(b"named")
        assert await client.wait_for_bytes(5) == b"named"
        tr.close()
        await client.lost
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_port_as_string(loop):
    async def main():
        server, (host, port) = await _echo_server(loop)
        reader, writer = await asyncio.open_connection(host, str(port))
        assert await echo_roundtrip(reader, writer, b"str-port") == b"str-port"
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_connection_refused(loop):
    holder, addr = refusing_address()

    async def main():
        with pytest.raises(ConnectionRefusedError) as info:
            await loop.create_connection(asyncio.Protocol, *addr)
        assert info.value.errno == errno.ECONNREFUSED

    try:
        run(loop, main())
    finally:
        holder.close()


def test_connection_refused_all_errors_group(loop, loop_name):
    if loop_name == "asyncio" and not PY312:
        pytest.skip("all_errors is new in asyncio 3.12")
    holder, addr = refusing_address()

    async def main():
        with pytest.raises(ExceptionGroup) as info:
            await loop.create_connection(asyncio.Protocol, *addr, all_errors=True)
        assert [e.errno for e in info.value.exceptions] == [errno.ECONNREFUSED]

    try:
        run(loop, main())
    finally:
        holder.close()


def test_several_addresses_all_refused(loop, loop_name):
    """Different errors combine into one OSError naming them all."""
    h1, a1 = refusing_address()
    h2, a2 = refusing_address()

    async def main():
        _fake_resolver(loop, {"two.test": [(socket.AF_INET, a1), (socket.AF_INET, a2)]})
        seen = _record_connects(loop)
        with pytest.raises(OSError) as info:
            await loop.create_connection(asyncio.Protocol, "two.test", 1)
        assert seen == [a1, a2]
        message = str(info.value)
        assert message.startswith("Multiple exceptions: ")
        assert str(a1) in message and str(a2) in message
        if loop_name == "asyncio" and not PY312:
            return
        with pytest.raises(ExceptionGroup) as group:
            await loop.create_connection(asyncio.Protocol, "two.test", 1, all_errors=True)
        assert len(group.value.exceptions) == 2
        assert all(isinstance(e, ConnectionRefusedError) for e in group.value.exceptions)

    try:
        run(loop, main())
    finally:
        h1.close()
        h2.close()


def test_getaddrinfo_empty(loop):
    async def main():
        _fake_resolver(loop, {"void.test": []})
        with pytest.raises(OSError, match="getaddrinfo\\(\\) returned empty list"):
            await loop.create_connection(asyncio.Protocol, "void.test", 80)

    run(loop, main())


def test_first_address_refused_second_answers(loop):
    holder, bad = refusing_address()

    async def main():
        server, good = await _echo_server(loop)
        _fake_resolver(loop, {"mixed.test": [(socket.AF_INET, bad), (socket.AF_INET, good)]})
        seen = _record_connects(loop)
        tr, _ = await loop.create_connection(asyncio.Protocol, "mixed.test", 1)
        assert seen == [bad, good]
        assert tr.get_extra_info("peername") == good
        tr.close()
        server.close()
        await server.wait_closed()

    try:
        run(loop, main())
    finally:
        holder.close()


# ----------------------------------------------------------- Happy Eyeballs


def test_happy_eyeballs_one_bad_address(loop):
    holder, bad = refusing_address()

    async def main():
        server, good = await _echo_server(loop)
        _fake_resolver(loop, {"he.test": [(socket.AF_INET, bad), (socket.AF_INET, good)]})
        client = Collect(loop)
        tr, _ = await loop.create_connection(
            lambda: client, "he.test", 1, happy_eyeballs_delay=0.25)
        assert tr.get_extra_info("peername") == good
        tr.write(b"eyeballs")
        assert await client.wait_for_bytes(8) == b"eyeballs"
        tr.close()
        await client.lost
        server.close()
        await server.wait_closed()

    try:
        run(loop, main())
    finally:
        holder.close()


def test_happy_eyeballs_slow_first_address(loop):
    """The first attempt hangs (its connect never completes); after the
    delay the second attempt starts and wins, and the first is cancelled."""
    async def main():
        server, good = await _echo_server(loop)
        hanging = ("127.0.0.1", 9)  # never contacted: sock_connect is stubbed
        _fake_resolver(loop, {"slow.test": [(socket.AF_INET, hanging), (socket.AF_INET, good)]})
        real = loop.sock_connect
        started = []
        cancelled = loop.create_future()

        async def sock_connect(sock, address):
            started.append(address)
            if address == hanging:
                try:
                    await loop.create_future()  # forever
                except asyncio.CancelledError:
                    cancelled.set_result(sock)
                    raise
            return await real(sock, address)

        loop.sock_connect = sock_connect
        tr, _ = await loop.create_connection(
            asyncio.Protocol, "slow.test", 1, happy_eyeballs_delay=0.05)
        assert started == [hanging, good]
        assert tr.get_extra_info("peername") == good
        losing_sock = await cancelled
        await asyncio.sleep(0)
        assert losing_sock.fileno() == -1  # the losing attempt's socket is closed
        tr.close()
        server.close()
        await server.wait_closed()

    run(loop, main())


def _refusing_v6():
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.bind(("::1", 0))
    return s, s.getsockname()


@needs_ipv6
def test_interleave_alternates_families(loop):
    holders = []

    async def main():
        (h6a, a6), (h6b, b6), (h4, a4) = _refusing_v6(), _refusing_v6(), refusing_address()
        holders.extend([h6a, h6b, h4])
        _fake_resolver(loop, {"dual.test": [
            (socket.AF_INET6, a6), (socket.AF_INET6, b6), (socket.AF_INET, a4)]})
        seen = _record_connects(loop)
        with pytest.raises(OSError):
            await loop.create_connection(asyncio.Protocol, "dual.test", 1, interleave=1)
        assert seen == [a6, a4, b6]
        seen.clear()
        with pytest.raises(OSError):
            await loop.create_connection(asyncio.Protocol, "dual.test", 1, interleave=2)
        assert seen == [a6, b6, a4]
        seen.clear()
        with pytest.raises(OSError):
            await loop.create_connection(asyncio.Protocol, "dual.test", 1)
        assert seen == [a6, b6, a4]  # no interleaving unless asked
        seen.clear()
        with pytest.raises(OSError):  # Happy Eyeballs interleaves by default
            await loop.create_connection(asyncio.Protocol, "dual.test", 1,
                                         happy_eyeballs_delay=0.25)
        assert seen == [a6, a4, b6]

    try:
        run(loop, main())
    finally:
        for h in holders:
            h.close()


# -------------------------------------------------------------- local_addr


def test_local_addr(loop):
    async def main():
        server, (host, port) = await _echo_server(loop)
        tr, _ = await loop.create_connection(
            asyncio.Protocol, host, port, local_addr=("127.0.0.1", 0))
        assert tr.get_extra_info("sockname")[0] == "127.0.0.1"
        tr.close()
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_local_addr_in_use(loop):
    async def main():
        server, addr = await _echo_server(loop)
        with pytest.raises(OSError) as info:
            await loop.create_connection(asyncio.Protocol, *addr, local_addr=addr)
        assert info.value.errno == errno.EADDRINUSE
        assert str(addr) in info.value.strerror
        assert "error while attempting to bind on address" in info.value.strerror
        server.close()
        await server.wait_closed()

    run(loop, main())


@needs_ipv6
def test_local_addr_no_matching_family(loop):
    async def main():
        server, (host, port) = await _echo_server(loop)
        with pytest.raises(OSError, match="no matching local address with family="):
            await loop.create_connection(
                asyncio.Protocol, host, port, local_addr=("::1", 0))
        server.close()
        await server.wait_closed()

    run(loop, main())


@needs_ipv6
def test_local_addr_skips_other_family(loop):
    async def main():
        server, (host, port) = await _echo_server(loop)
        _fake_resolver(loop, {"local.test": [(socket.AF_INET6, ("::1", 0, 0, 0)),
                                             (socket.AF_INET, ("127.0.0.1", 0))]})
        tr, _ = await loop.create_connection(
            asyncio.Protocol, host, port, local_addr=("local.test", 0))
        assert tr.get_extra_info("sockname")[0] == "127.0.0.1"
        tr.close()
        server.close()
        await server.wait_closed()

    run(loop, main())


# ------------------------------------------------------------------ sock=


def test_sock_connected_tcp(loop):
    async def main():
        server, addr = await _echo_server(loop)
        sock = socket.create_connection(addr)
        client = Collect(loop)
        tr, _ = await loop.create_connection(lambda: client, sock=sock)
        assert sock.gettimeout() == 0
        tr.write(b"via sock")
        assert await client.wait_for_bytes(8) == b"via sock"
        tr.close()
        await client.lost
        assert sock.fileno() == -1  # the transport owned it
        server.close()
        await server.wait_closed()

    run(loop, main())


@needs_unix
def test_sock_unix_stream_in_create_connection(loop):
    a, b = socket.socketpair()

    async def main():
        client = Collect(loop)
        tr, _ = await loop.create_connection(lambda: client, sock=a)
        b.sendall(b"pair")
        assert await client.wait_for_bytes(4) == b"pair"
        tr.close()
        await client.lost

    try:
        run(loop, main())
    finally:
        b.close()


def test_sock_argument_errors(loop):
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tcp = socket.socket()
    try:
        with pytest.raises(ValueError, match="A Stream Socket was expected"):
            run(loop, loop.create_connection(asyncio.Protocol, sock=udp))
        with pytest.raises(ValueError, match="host/port and sock can not be specified at the same time"):
            run(loop, loop.create_connection(asyncio.Protocol, "127.0.0.1", 1, sock=tcp))
        with pytest.raises(ValueError, match="host and port was not specified and no sock specified"):
            run(loop, loop.create_connection(asyncio.Protocol))
    finally:
        udp.close()
        tcp.close()


def test_ssl_argument_errors(loop, tls):
    tcp = socket.socket()
    ctx = tls.client_context()
    try:
        cases = [
            (dict(host="127.0.0.1", port=1, server_hostname="x"), ValueError,
             "server_hostname is only meaningful with ssl"),
            (dict(sock=tcp, ssl=ctx), ValueError,
             "You must set server_hostname when using ssl without a host"),
            (dict(host="127.0.0.1", port=1, ssl_handshake_timeout=1), ValueError,
             "ssl_handshake_timeout is only meaningful with ssl"),
            (dict(host="127.0.0.1", port=1, ssl_shutdown_timeout=1), ValueError,
             "ssl_shutdown_timeout is only meaningful with ssl"),
        ]
        for kwargs, exc, match in cases:
            with pytest.raises(exc, match=match):
                run(loop, loop.create_connection(asyncio.Protocol, **kwargs))
        wrapped = ctx.wrap_socket(socket.socket(), server_hostname="localhost",
                                  do_handshake_on_connect=False)
        try:
            with pytest.raises(TypeError, match="Socket cannot be of type SSLSocket"):
                run(loop, loop.create_connection(asyncio.Protocol, sock=wrapped))
        finally:
            wrapped.close()
    finally:
        tcp.close()


@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_protocol_factory_error_propagates(loop, loop_name):
    """The factory's exception reaches the caller; pyloop also closes the
    socket it opened (asyncio leaves it to the garbage collector)."""
    import gc
    import warnings

    async def main():
        server, addr = await _echo_server(loop)

        def broken():
            raise ZeroDivisionError

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            with pytest.raises(ZeroDivisionError):
                await loop.create_connection(broken, *addr)
            gc.collect()
        if loop_name == "pyloop":
            assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
        server.close()
        await server.wait_closed()

    run(loop, main())


# ---------------------------------------------------------- Unix connections


@needs_unix
def test_unix_connection_missing_path(loop, sock_path):
    with pytest.raises(FileNotFoundError):
        run(loop, loop.create_unix_connection(asyncio.Protocol, sock_path))


@needs_unix
def test_unix_connection_argument_errors(loop, sock_path, tls):
    tcp = socket.socket()
    try:
        with pytest.raises(ValueError, match="path and sock can not be specified at the same time"):
            run(loop, loop.create_unix_connection(asyncio.Protocol, sock_path, sock=tcp))
        with pytest.raises(ValueError, match="no path and sock were specified"):
            run(loop, loop.create_unix_connection(asyncio.Protocol))
        with pytest.raises(ValueError, match="A UNIX Domain Stream Socket was expected"):
            run(loop, loop.create_unix_connection(asyncio.Protocol, sock=tcp))
        with pytest.raises(ValueError, match="you have to pass server_hostname when using ssl"):
            run(loop, loop.create_unix_connection(asyncio.Protocol, sock_path,
                                                  ssl=tls.client_context()))
        with pytest.raises(ValueError, match="server_hostname is only meaningful with ssl"):
            run(loop, loop.create_unix_connection(asyncio.Protocol, sock_path,
                                                  server_hostname="x"))
        with pytest.raises(ValueError, match="ssl_handshake_timeout is only meaningful with ssl"):
            run(loop, loop.create_unix_connection(asyncio.Protocol, sock_path,
                                                  ssl_handshake_timeout=1))
    finally:
        tcp.close()


@needs_unix
def test_unix_connection_sock(loop, sock_path):
    async def main():
        server = await loop.create_unix_server(EchoProtocol, sock_path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(sock_path)
        reader, writer = await asyncio.open_unix_connection(sock=sock)
        assert await echo_roundtrip(reader, writer, b"unix sock=") == b"unix sock="
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()

    run(loop, main())


# ------------------------------------------------------ connect_accepted_socket


def test_connect_accepted_socket(loop):
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    conn, _ = listener.accept()

    async def main():
        tr, proto = await loop.connect_accepted_socket(EchoProtocol, conn)
        assert tr.get_extra_info("peername") == client.getsockname()
        client.sendall(b"accepted")
        got = b""
        while len(got) < 8:
            got += await loop.sock_recv(client, 100)
        assert got == b"accepted"
        tr.close()

    client.setblocking(False)
    try:
        run(loop, main())
    finally:
        client.close()
        listener.close()


def test_connect_accepted_socket_errors(loop):
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tcp = socket.socket()
    try:
        with pytest.raises(ValueError, match="A Stream Socket was expected"):
            run(loop, loop.connect_accepted_socket(asyncio.Protocol, udp))
        with pytest.raises(ValueError, match="ssl_handshake_timeout is only meaningful with ssl"):
            run(loop, loop.connect_accepted_socket(asyncio.Protocol, tcp,
                                                   ssl_handshake_timeout=1))
    finally:
        udp.close()
        tcp.close()


def test_connect_accepted_socket_tls(loop, tls):
    listener = socket.create_server(("127.0.0.1", 0))

    async def main():
        connecting = asyncio.ensure_future(asyncio.open_connection(
            *listener.getsockname(), ssl=tls.client_context(), server_hostname="localhost"))
        listener.setblocking(False)
        conn, _ = await loop.sock_accept(listener)
        tr, _ = await loop.connect_accepted_socket(EchoProtocol, conn, ssl=tls.server_context())
        reader, writer = await connecting
        assert await echo_roundtrip(reader, writer, b"tls accepted") == b"tls accepted"
        writer.close()
        await writer.wait_closed()
        tr.close()

    try:
        run(loop, main())
    finally:
        listener.close()


# --------------------------------------------------------------------- TLS


def test_tls_client_handshake_timeout(loop, tls):
    """A server that never answers the ClientHello: the client gives up."""
    async def main():
        silent = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        port = silent.sockets[0].getsockname()[1]
        t0 = loop.time()
        with pytest.raises(ConnectionAbortedError, match="SSL handshake is taking longer"):
            await loop.create_connection(
                asyncio.Protocol, "127.0.0.1", port, ssl=tls.client_context(),
                server_hostname="localhost", ssl_handshake_timeout=0.2)
        assert loop.time() - t0 >= 0.15
        silent.close()
        await silent.wait_closed()

    run(loop, main())


def test_start_tls_upgrade(loop, tls):
    """A plain connection upgraded in place on both sides (STARTTLS style)."""
    async def main():
        done = loop.create_future()

        async def handle(reader, writer):
            try:
                assert await reader.readline() == b"STARTTLS\n"
                writer.write(b"GO\n")
                await writer.start_tls(tls.server_context())
                assert writer.get_extra_info("ssl_object") is not None
                line = await reader.readline()
                writer.write(line.upper())
                await writer.drain()
                done.set_result(line)
            except BaseException as exc:  # report in the test, not the log
                done.set_exception(exc)
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert writer.get_extra_info("ssl_object") is None
        writer.write(b"STARTTLS\n")
        assert await reader.readline() == b"GO\n"
        await writer.start_tls(tls.client_context(), server_hostname="localhost")
        assert writer.get_extra_info("ssl_object") is not None
        assert writer.get_extra_info("peercert")["subject"]
        writer.write(b"secret\n")
        assert await reader.readline() == b"SECRET\n"
        assert await done == b"secret\n"
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_start_tls_protocol_level(loop, tls):
    """loop.start_tls() with plain protocols: the returned transport is the
    one the protocol must use; the old one stays behind it."""
    async def main():
        server_proto = Collect(loop)
        server = await loop.create_server(lambda: server_proto, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client_proto = Collect(loop)
        ctr, _ = await loop.create_connection(lambda: client_proto, "127.0.0.1", port)
        str_ = await server_proto.made

        server_up = asyncio.ensure_future(loop.start_tls(
            str_, server_proto, tls.server_context(), server_side=True))
        client_tls = await loop.start_tls(
            ctr, client_proto, tls.client_context(), server_hostname="localhost")
        server_tls = await server_up
        assert client_tls is not ctr
        assert client_tls.get_extra_info("sslcontext") is not None
        client_tls.write(b"over tls")
        assert await server_proto.wait_for_bytes(8) == b"over tls"
        server_tls.write(b"reply")
        assert await client_proto.wait_for_bytes(5) == b"reply"
        client_tls.close()
        await client_proto.lost
        await server_proto.lost
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_start_tls_argument_errors(loop, tls):
    class NotATransport:
        def __repr__(self):
            return "<not a transport>"

    async def main():
        with pytest.raises(TypeError, match="sslcontext is expected to be an instance of ssl.SSLContext"):
            await loop.start_tls(NotATransport(), asyncio.Protocol(), object())
        with pytest.raises(TypeError, match="is not supported by start_tls"):
            await loop.start_tls(NotATransport(), asyncio.Protocol(), tls.client_context())

    run(loop, main())


# ------------------------------------------------------------------ sendfile


DATA = bytes(range(256)) * 4096  # 1 MiB, not all one byte


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(DATA)
    with open(path, "rb") as f:
        yield f


async def _sendfile_pair(loop, ssl_server=None, ssl_client=None):
    """A server collecting everything until EOF, and a client transport."""
    server_proto = Collect(loop)
    server = await loop.create_server(lambda: server_proto, "127.0.0.1", 0, ssl=ssl_server)
    port = server.sockets[0].getsockname()[1]
    kwargs = {}
    if ssl_client is not None:
        kwargs = dict(ssl=ssl_client, server_hostname="localhost")
    client_proto = Collect(loop)
    tr, _ = await loop.create_connection(lambda: client_proto, "127.0.0.1", port, **kwargs)
    return server, server_proto, tr


def test_sendfile_native_whole_file(loop, data_file):
    async def main():
        server, received, tr = await _sendfile_pair(loop)
        tr.write(b"HEAD")
        sent = await loop.sendfile(tr, data_file)
        tr.write(b"TAIL")
        assert sent == len(DATA)
        assert data_file.tell() == len(DATA)
        tr.close()
        assert await received.eof == b"HEAD" + DATA + b"TAIL"
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_sendfile_offset_and_count(loop, data_file):
    async def main():
        server, received, tr = await _sendfile_pair(loop)
        sent = await loop.sendfile(tr, data_file, 1000, 5000)
        assert sent == 5000
        assert data_file.tell() == 6000
        tr.close()
        assert await received.eof == DATA[1000:6000]
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_sendfile_forced_fallback(loop, data_file):
    """With native sendfile unavailable the loop reads and writes chunks."""
    async def main():
        server, received, tr = await _sendfile_pair(loop)

        async def no_native(transp, file, offset, count):
            raise asyncio.SendfileNotAvailableError("not here")

        loop._sendfile_native = no_native
        sent = await loop.sendfile(tr, data_file, 10, len(DATA) - 20)
        assert sent == len(DATA) - 20
        assert data_file.tell() == len(DATA) - 10
        assert tr.is_reading()  # restored
        tr.close()
        assert await received.eof == DATA[10:-10]
        with pytest.raises(asyncio.SendfileNotAvailableError):
            server2, _, tr2 = await _sendfile_pair(loop)
            try:
                await loop.sendfile(tr2, data_file, fallback=False)
            finally:
                tr2.close()
                server2.close()
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_sendfile_over_tls_uses_fallback(loop, tls, data_file):
    async def main():
        server, received, tr = await _sendfile_pair(
            loop, tls.server_context(), tls.client_context())
        tr.write(b"<")
        sent = await loop.sendfile(tr, data_file)
        tr.write(b">")
        assert sent == len(DATA)
        with pytest.raises(RuntimeError, match="fallback is disabled"):
            await loop.sendfile(tr, data_file, fallback=False)
        tr.close()
        assert await received.eof == b"<" + DATA + b">"
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_sendfile_errors(loop, data_file):
    async def main():
        server, received, tr = await _sendfile_pair(loop)

        class NoSendfile(asyncio.Transport):
            def is_closing(self):
                return False

        with pytest.raises(RuntimeError, match="not supported"):
            await loop.sendfile(NoSendfile(), data_file)
        tr.close()
        with pytest.raises(RuntimeError, match="Transport is closing"):
            await loop.sendfile(tr, data_file)
        assert data_file.tell() == 0
        server.close()
        await server.wait_closed()

    run(loop, main())


class _StalledReceiver(Collect):
    """Stops reading at once, with a small receive buffer: a sender fills
    the connection quickly and stays blocked until resume()."""

    def connection_made(self, transport):
        transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        transport.pause_reading()
        super().connection_made(transport)


def test_sendfile_write_refused_while_in_progress(loop, data_file):
    async def main():
        receiver = _StalledReceiver(loop)
        server = await loop.create_server(lambda: receiver, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        tr, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
        tr.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)
        server_tr = await receiver.made
        started = loop.create_future()

        async def send():
            started.set_result(None)
            return await loop.sendfile(tr, data_file)

        task = asyncio.ensure_future(send())
        await started
        # 1 MiB cannot fit in the two small socket buffers: sendfile waits.
        assert not task.done()
        with pytest.raises(RuntimeError, match="sendfile is in progress"):
            tr.write(b"x")
        server_tr.resume_reading()
        assert await task == len(DATA)
        tr.close()
        assert await receiver.eof == DATA
        server.close()
        await server.wait_closed()

    run(loop, main())
