"""Bad input to the loop's networking, DNS, pipe and subprocess API.

Each row says which exception stock asyncio raises; pyloop must raise the same type.
No row needs the network: names are numeric or local, ports come from the OS.
The table machinery (and how to add a row) is in _bad_input.py.
"""
from __future__ import annotations

import asyncio
import socket
import ssl
import sys

import pytest

from ._bad_input import NO_RAISE, Case, apply_bugs, params, run_case

pytestmark = pytest.mark.timeout(60)

#: asyncio's pipe transports warn from __del__ when their constructor fails half-way.
HALF_BUILT_PIPE = (pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),)

INET = socket.AF_INET
UDP = socket.SOCK_DGRAM


def aw(fn):
    """Turn ``fn(loop, env) -> awaitable`` into a case call that awaits it on the loop."""
    def call(loop, env):
        async def main():
            return await fn(loop, env)
        return main()
    return call


def _ssl_socket(env):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = env.sock()
    s = ctx.wrap_socket(raw, do_handshake_on_connect=False)
    env.on_cleanup(s.close)
    return s


def _closed_socket(env):
    s = env.sock()
    s.close()
    return s


def _unix_stream_path(env):
    return env.path("srv.sock")


async def _sock_accept_unlistened(loop, env):
    s = env.sock()
    s.bind(("127.0.0.1", 0))
    return await loop.sock_accept(s)


async def _create_server_port_in_use(loop, env):
    taken = env.listener()
    srv = await loop.create_server(asyncio.Protocol, "127.0.0.1", taken.getsockname()[1])
    srv.close()


async def _create_unix_server_on_regular_file(loop, env):
    path = env.path("regular")
    with open(path, "w"):
        pass
    srv = await loop.create_unix_server(asyncio.Protocol, path)
    srv.close()


async def _serve_forever_closed(loop, env):
    srv = await env.server()
    srv.close()
    await srv.serve_forever()


async def _serve_forever_twice(loop, env):
    srv = await env.server()
    first = asyncio.ensure_future(srv.serve_forever())
    await asyncio.sleep(0)
    try:
        await srv.serve_forever()
    finally:
        first.cancel()
        try:
            await first
        except asyncio.CancelledError:
            pass


async def _server_close_twice(loop, env):
    srv = await env.server()
    srv.close()
    srv.close()
    await srv.wait_closed()


async def _unix_connection_to_missing(loop, env):
    return await loop.create_unix_connection(asyncio.Protocol, env.path("missing.sock"))


async def _refused(loop, env):
    tr, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", env.unused_port())
    env.track(tr)


def _create_conn(**kw):
    async def fn(loop, env):
        kw2 = {k: (v(env) if callable(v) and k in ("sock", "host", "port") else v) for k, v in kw.items()}
        tr, _ = await loop.create_connection(kw2.pop("factory", asyncio.Protocol), **kw2)
        env.track(tr)
    return aw(fn)


def _create_conn_listening(**kw):
    """create_connection to a real listener, so the checks made after connecting are reached."""
    async def fn(loop, env):
        lsn = env.listener()
        tr, _ = await loop.create_connection(asyncio.Protocol, *lsn.getsockname(), **kw)
        env.track(tr)
    return aw(fn)


def _create_srv(**kw):
    async def fn(loop, env):
        kw2 = {k: (v(env) if callable(v) and k in ("sock", "path") else v) for k, v in kw.items()}
        factory = kw2.pop("factory", asyncio.Protocol)
        srv = await loop.create_server(factory, **kw2)
        srv.close()
    return aw(fn)


def _create_unix_conn(**kw):
    async def fn(loop, env):
        kw2 = {k: (v(env) if callable(v) and k in ("sock", "path") else v) for k, v in kw.items()}
        tr, _ = await loop.create_unix_connection(asyncio.Protocol, **kw2)
        env.track(tr)
    return aw(fn)


def _create_unix_srv(**kw):
    async def fn(loop, env):
        kw2 = {k: (v(env) if callable(v) and k in ("sock", "path") else v) for k, v in kw.items()}
        srv = await loop.create_unix_server(asyncio.Protocol, **kw2)
        srv.close()
    return aw(fn)


def _datagram(**kw):
    async def fn(loop, env):
        kw2 = {k: (v(env) if callable(v) and k == "sock" else v) for k, v in kw.items()}
        tr, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, **kw2)
        env.track(tr)
    return aw(fn)


async def _connection_with_listener(loop, env, factory):
    lsn = env.listener()
    tr, _ = await loop.create_connection(factory, *lsn.getsockname())
    env.track(tr)


def _factory_not_callable(loop, env):
    return _connection_with_listener(loop, env, 1)


def _factory_raises(loop, env):
    def factory():
        raise ZeroDivisionError("factory failed")
    return _connection_with_listener(loop, env, factory)


def _subprocess(kind, cmd, **kw):
    async def fn(loop, env):
        kw2 = dict(kw)
        if kind == "exec":
            args = cmd if isinstance(cmd, (list, tuple)) else [cmd]
            tr, _ = await loop.subprocess_exec(asyncio.SubprocessProtocol, *args, **kw2)
        else:
            tr, _ = await loop.subprocess_shell(asyncio.SubprocessProtocol, cmd, **kw2)
        tr.close()
    return aw(fn)


def _read_pipe(make):
    async def fn(loop, env):
        tr, _ = await loop.connect_read_pipe(asyncio.Protocol, make(env))
        env.track(tr)
    return aw(fn)


def _write_pipe(make):
    async def fn(loop, env):
        tr, _ = await loop.connect_write_pipe(asyncio.Protocol, make(env))
        env.track(tr)
    return aw(fn)


def _closed_file(env):
    f = env.file("rb")
    f.close()
    return f


def _sock_op(op, *args, sock=lambda env: env.socketpair()[0]):
    """``await loop.<op>(sock, *args)``; ``sock`` builds the socket from env."""
    async def fn(loop, env):
        return await getattr(loop, op)(sock(env), *args)
    return aw(fn)


def _blocking(env):
    return env.socketpair(blocking=True)[0]


def _udp(env):
    s = env.sock(type=UDP)
    s.bind(("127.0.0.1", 0))
    return s


def _udp_blocking(env):
    s = env.sock(type=UDP, blocking=True)
    s.bind(("127.0.0.1", 0))
    return s


def _tcp(env):
    return env.sock()


def _sendfile(file_mode="rb", sock=lambda env: env.socketpair()[0], **kw):
    async def fn(loop, env):
        return await loop.sock_sendfile(sock(env), env.file(file_mode), **kw)
    return aw(fn)


SELF_PY = [sys.executable, "-c", "pass"]

CASES: list[Case] = [
    # --- sock_* functions
    Case("sock_recv-blocking-socket", _sock_op("sock_recv", 10, sock=_blocking), ValueError, debug=True,
         reason="asyncio checks for a blocking socket in debug mode only (without, the call blocks)"),
    Case("sock_recv-negative-size", _sock_op("sock_recv", -1), ValueError),
    Case("sock_recv-str-size", _sock_op("sock_recv", "x"), TypeError),
    Case("sock_recv-ssl-socket", _sock_op("sock_recv", 1, sock=_ssl_socket), TypeError),
    Case("sock_recv-closed-socket", _sock_op("sock_recv", 1, sock=_closed_socket), OSError,
         reason="recv on fd -1 fails with EBADF: a plain OSError"),
    Case("sock_recv-not-a-socket", _sock_op("sock_recv", 1, sock=lambda env: 1), AttributeError,
         reason="asyncio calls sock methods without a type check"),
    Case("sock_recv_into-bytes", _sock_op("sock_recv_into", b"immutable"), TypeError),
    Case("sock_recv_into-str", _sock_op("sock_recv_into", "x"), TypeError),
    Case("sock_recv_into-blocking", _sock_op("sock_recv_into", bytearray(4), sock=_blocking), ValueError, debug=True,
         reason="asyncio checks for a blocking socket in debug mode only (without, the call blocks)"),
    Case("sock_recv_into-ssl-socket", _sock_op("sock_recv_into", bytearray(4), sock=_ssl_socket), TypeError),
    Case("sock_sendall-str", _sock_op("sock_sendall", "text"), TypeError),
    Case("sock_sendall-None", _sock_op("sock_sendall", None), TypeError),
    Case("sock_sendall-int", _sock_op("sock_sendall", 5), TypeError),
    Case("sock_sendall-blocking", _sock_op("sock_sendall", b"x", sock=_blocking), ValueError, debug=True,
         reason="asyncio checks for a blocking socket in debug mode only (without, the call blocks)"),
    Case("sock_sendall-ssl-socket", _sock_op("sock_sendall", b"x", sock=_ssl_socket), TypeError),
    Case("sock_sendall-closed-socket", _sock_op("sock_sendall", b"x", sock=_closed_socket), OSError),
    Case("sock_sendall-empty", _sock_op("sock_sendall", b""), NO_RAISE),
    Case("sock_connect-blocking", _sock_op("sock_connect", ("127.0.0.1", 1),
                                           sock=lambda env: env.sock(blocking=True)), ValueError, debug=True,
         reason="asyncio checks for a blocking socket in debug mode only (without, the call blocks)"),
    Case("sock_connect-int-address", _sock_op("sock_connect", 1, sock=_tcp), TypeError),
    Case("sock_connect-refused", aw(lambda lp, env: lp.sock_connect(env.sock(), ("127.0.0.1", env.unused_port()))),
         ConnectionRefusedError),
    Case("sock_connect-ssl-socket", _sock_op("sock_connect", ("127.0.0.1", 1), sock=_ssl_socket), TypeError),
    Case("sock_connect-unix-missing", aw(lambda lp, env: lp.sock_connect(env.sock(socket.AF_UNIX),
                                                                         env.path("nope"))), FileNotFoundError),
    Case("sock_accept-blocking", _sock_op("sock_accept", sock=lambda env: env.sock(blocking=True)), ValueError, debug=True,
         reason="asyncio checks for a blocking socket in debug mode only (without, the call blocks)"),
    Case("sock_accept-not-listening", aw(_sock_accept_unlistened), OSError,
         reason="accept on a socket that is not listening: EINVAL, a plain OSError"),
    Case("sock_accept-ssl-socket", _sock_op("sock_accept", sock=_ssl_socket), TypeError),
    Case("sock_recvfrom-negative", _sock_op("sock_recvfrom", -1, sock=_udp), ValueError),
    Case("sock_recvfrom-blocking", _sock_op("sock_recvfrom", 10, sock=_udp_blocking), ValueError, debug=True,
         reason="asyncio checks for a blocking socket in debug mode only (without, the call blocks)"),
    Case("sock_recvfrom_into-bytes", _sock_op("sock_recvfrom_into", b"ro", sock=_udp), TypeError),
    Case("sock_sendto-str", _sock_op("sock_sendto", "text", ("127.0.0.1", 9), sock=_udp), TypeError),
    Case("sock_sendto-blocking", _sock_op("sock_sendto", b"x", ("127.0.0.1", 9), sock=_udp_blocking),
         ValueError, debug=True,
         reason="asyncio checks for a blocking socket in debug mode only (without, the call blocks)"),
    Case("sock_sendto-bad-address", _sock_op("sock_sendto", b"x", "nowhere", sock=_udp), TypeError),
    Case("sock_sendfile-text-file", _sendfile("r"), ValueError),
    Case("sock_sendfile-blocking-socket", _sendfile(sock=_blocking), ValueError, debug=True,
         reason="asyncio checks for a blocking socket in debug mode only (without, the call blocks)"),
    Case("sock_sendfile-udp-socket", _sendfile(sock=_udp), ValueError),
    Case("sock_sendfile-negative-offset", _sendfile(offset=-1), ValueError),
    Case("sock_sendfile-str-offset", _sendfile(offset="x"), TypeError),
    Case("sock_sendfile-zero-count", _sendfile(count=0), ValueError),
    Case("sock_sendfile-str-count", _sendfile(count="x"), TypeError),
    # --- DNS
    Case("getaddrinfo-int-host", aw(lambda lp, env: lp.getaddrinfo(1, 80)), TypeError),
    Case("getaddrinfo-bad-service", aw(lambda lp, env: lp.getaddrinfo("127.0.0.1", "no-such-service-x")),
         socket.gaierror),
    Case("getaddrinfo-port-too-big", aw(lambda lp, env: lp.getaddrinfo("127.0.0.1", 70000)), NO_RAISE,
         reason="socket.getaddrinfo accepts it (the port is truncated to 16 bits); asyncio passes it through"),
    Case("getaddrinfo-negative-port", aw(lambda lp, env: lp.getaddrinfo("127.0.0.1", -1)), socket.gaierror),
    Case("getaddrinfo-str-family", aw(lambda lp, env: lp.getaddrinfo("127.0.0.1", 80, family="x")), TypeError),
    Case("getaddrinfo-bad-family", aw(lambda lp, env: lp.getaddrinfo("127.0.0.1", 80, family=12345)),
         socket.gaierror),
    Case("getaddrinfo-float-port", aw(lambda lp, env: lp.getaddrinfo("127.0.0.1", 1.5)), OSError,
         reason="socket.getaddrinfo's message for a float port is 'Int or String expected' (an OSError)"),
    Case("getaddrinfo-no-args", aw(lambda lp, env: lp.getaddrinfo()), TypeError),
    Case("getnameinfo-str", aw(lambda lp, env: lp.getnameinfo("127.0.0.1")), TypeError),
    Case("getnameinfo-short-tuple", aw(lambda lp, env: lp.getnameinfo(("127.0.0.1",))), TypeError),
    Case("getnameinfo-str-port", aw(lambda lp, env: lp.getnameinfo(("127.0.0.1", "x"))), TypeError),
    Case("getnameinfo-str-flags", aw(lambda lp, env: lp.getnameinfo(("127.0.0.1", 80), "x")), TypeError),
    Case("getnameinfo-negative-port", aw(lambda lp, env: lp.getnameinfo(("127.0.0.1", -1))), socket.gaierror),
    # --- create_connection
    Case("create_connection-host-and-sock", _create_conn(host="127.0.0.1", port=1, sock=_tcp), ValueError),
    Case("create_connection-no-host-no-sock", _create_conn(), ValueError),
    Case("create_connection-server_hostname-without-ssl", _create_conn(host="127.0.0.1", port=1,
                                                                       server_hostname="x"), ValueError),
    Case("create_connection-handshake-timeout-without-ssl", _create_conn(host="127.0.0.1", port=1,
                                                                         ssl_handshake_timeout=1), ValueError),
    Case("create_connection-shutdown-timeout-without-ssl", _create_conn(host="127.0.0.1", port=1,
                                                                        ssl_shutdown_timeout=1), ValueError),
    Case("create_connection-udp-sock", _create_conn(sock=_udp), ValueError),
    Case("create_connection-refused", aw(_refused), ConnectionRefusedError),
    Case("create_connection-bad-service", _create_conn(host="127.0.0.1", port="no-such-service-x"),
         socket.gaierror),
    Case("create_connection-port-too-big", _create_conn(host="127.0.0.1", port=70000), OverflowError),
    Case("create_connection-negative-handshake-timeout", _create_conn_listening(ssl=True,
                                                                                ssl_handshake_timeout=-1),
         ValueError),
    Case("create_connection-zero-handshake-timeout", _create_conn_listening(ssl=True, ssl_handshake_timeout=0),
         ValueError),
    Case("create_connection-negative-shutdown-timeout", _create_conn_listening(ssl=True,
                                                                               ssl_shutdown_timeout=-1),
         ValueError),
    Case("create_connection-ssl-str", _create_conn_listening(ssl="yes"), AttributeError,
         reason="asyncio does not check the type of ssl=; it fails using it as an SSLContext after connecting"),
    Case("create_connection-ssl-int", _create_conn_listening(ssl=1), AttributeError,
         reason="asyncio does not check the type of ssl=; it fails using it as an SSLContext after connecting"),
    Case("create_connection-factory-not-callable", _factory_not_callable, TypeError),
    Case("create_connection-factory-raises", _factory_raises, ZeroDivisionError),
    Case("create_connection-local_addr-wrong-family", _create_conn(host="127.0.0.1", port=1,
                                                                   local_addr=("::1", 0)), OSError,
         reason="no local address of the remote's family: asyncio's OSError naming the address"),
    # --- create_server
    Case("create_server-host-and-sock", _create_srv(host="127.0.0.1", port=0, sock=_tcp), ValueError),
    Case("create_server-nothing", _create_srv(), ValueError),
    Case("create_server-udp-sock", _create_srv(sock=_udp), ValueError),
    Case("create_server-handshake-timeout-without-ssl", _create_srv(host="127.0.0.1", port=0,
                                                                    ssl_handshake_timeout=1), ValueError),
    Case("create_server-shutdown-timeout-without-ssl", _create_srv(host="127.0.0.1", port=0,
                                                                   ssl_shutdown_timeout=1), ValueError),
    Case("create_server-ssl-str", _create_srv(host="127.0.0.1", port=0, ssl="yes"), NO_RAISE,
         reason="asyncio accepts any ssl= when the server is made; connections fail later"),
    Case("create_server-port-in-use", aw(_create_server_port_in_use), OSError,
         reason="asyncio re-raises EADDRINUSE as a plain OSError with the address in the message"),
    Case("create_server-str-backlog", _create_srv(host="127.0.0.1", port=0, backlog="x"), TypeError),
    Case("create_server-port-too-big", _create_srv(host="127.0.0.1", port=70000), OverflowError),
    Case("create_server-int-host", _create_srv(host=1, port=0), TypeError),
    Case("create_server-bad-service", _create_srv(host="127.0.0.1", port="no-such-service-x"), socket.gaierror),
    Case("server-serve_forever-after-close", aw(_serve_forever_closed), RuntimeError),
    Case("server-serve_forever-twice", aw(_serve_forever_twice), RuntimeError),
    Case("server-close-twice", aw(_server_close_twice), NO_RAISE),
    # --- Unix sockets
    Case("create_unix_connection-nothing", _create_unix_conn(), ValueError),
    Case("create_unix_connection-path-and-sock", _create_unix_conn(path=_unix_stream_path,
                                                                   sock=lambda env: env.sock(socket.AF_UNIX)),
         ValueError),
    Case("create_unix_connection-missing-path", aw(_unix_connection_to_missing), FileNotFoundError),
    Case("create_unix_connection-tcp-sock", _create_unix_conn(sock=_tcp), ValueError),
    Case("create_unix_connection-int-path", _create_unix_conn(path=1), TypeError),
    Case("create_unix_connection-server_hostname-without-ssl", _create_unix_conn(path=_unix_stream_path,
                                                                                 server_hostname="x"), ValueError),
    Case("create_unix_server-nothing", _create_unix_srv(), ValueError),
    Case("create_unix_server-missing-dir", _create_unix_srv(path=lambda env: env.path("no/such/dir.sock")),
         FileNotFoundError),
    Case("create_unix_server-tcp-sock", _create_unix_srv(sock=_tcp), ValueError),
    Case("create_unix_server-int-path", _create_unix_srv(path=1), TypeError),
    Case("create_unix_server-path-and-sock", _create_unix_srv(path=_unix_stream_path,
                                                              sock=lambda env: env.sock(socket.AF_UNIX)),
         ValueError),
    Case("create_unix_server-on-regular-file", aw(_create_unix_server_on_regular_file), OSError,
         reason="a regular file is never removed; the bind's EADDRINUSE becomes a plain OSError"),
    Case("create_unix_server-handshake-timeout-without-ssl", _create_unix_srv(path=_unix_stream_path,
                                                                              ssl_handshake_timeout=1), ValueError),
    # --- datagram endpoints
    Case("create_datagram_endpoint-nothing", _datagram(), ValueError),
    Case("create_datagram_endpoint-sock-and-addr", _datagram(sock=_udp, local_addr=("127.0.0.1", 0)),
         ValueError),
    Case("create_datagram_endpoint-tcp-sock", _datagram(sock=_tcp), ValueError),
    Case("create_datagram_endpoint-reuse_address", _datagram(local_addr=("127.0.0.1", 0), reuse_address=True),
         TypeError, reason="Python 3.11.7 removed the parameter (it was insecure)"),
    Case("create_datagram_endpoint-int-local_addr", _datagram(local_addr=1), TypeError),
    Case("create_datagram_endpoint-bad-service", _datagram(local_addr=("127.0.0.1", "no-such-service-x")),
         socket.gaierror),
    Case("create_datagram_endpoint-family-mismatch", _datagram(family=socket.AF_INET6,
                                                               local_addr=("127.0.0.1", 0)), socket.gaierror),
    # --- pipes
    Case("connect_read_pipe-regular-file", _read_pipe(lambda env: env.file("rb")), ValueError),
    Case("connect_read_pipe-int", _read_pipe(lambda env: 1), AttributeError,
         reason="asyncio calls pipe.fileno() without a type check", marks=HALF_BUILT_PIPE),
    Case("connect_read_pipe-closed-file", _read_pipe(_closed_file), ValueError, marks=HALF_BUILT_PIPE),
    Case("connect_write_pipe-regular-file", _write_pipe(lambda env: env.file("wb")), ValueError),
    Case("connect_write_pipe-None", _write_pipe(lambda env: None), AttributeError,
         reason="asyncio calls pipe.fileno() without a type check"),
    Case("connect_write_pipe-closed-file", _write_pipe(_closed_file), ValueError, marks=HALF_BUILT_PIPE),
    # --- subprocesses
    Case("subprocess_shell-list", _subprocess("shell", ["true"]), ValueError),
    Case("subprocess_shell-universal_newlines", _subprocess("shell", "true", universal_newlines=True),
         ValueError),
    Case("subprocess_shell-shell-false", _subprocess("shell", "true", shell=False), ValueError),
    Case("subprocess_shell-bufsize", _subprocess("shell", "true", bufsize=1), ValueError),
    Case("subprocess_shell-text", _subprocess("shell", "true", text=True), ValueError),
    Case("subprocess_shell-encoding", _subprocess("shell", "true", encoding="utf-8"), ValueError),
    Case("subprocess_shell-errors", _subprocess("shell", "true", errors="strict"), ValueError),
    Case("subprocess_exec-universal_newlines", _subprocess("exec", SELF_PY, universal_newlines=True),
         ValueError),
    Case("subprocess_exec-shell-true", _subprocess("exec", SELF_PY, shell=True), ValueError),
    Case("subprocess_exec-bufsize", _subprocess("exec", SELF_PY, bufsize=1), ValueError),
    Case("subprocess_exec-text", _subprocess("exec", SELF_PY, text=True), ValueError),
    Case("subprocess_exec-encoding", _subprocess("exec", SELF_PY, encoding="utf-8"), ValueError),
    Case("subprocess_exec-missing-program", _subprocess("exec", "/nonexistent/program"), FileNotFoundError),
    Case("subprocess_exec-directory", _subprocess("exec", "/"), PermissionError),
    Case("subprocess_exec-int-program", _subprocess("exec", 1), TypeError),
    Case("subprocess_exec-missing-cwd", _subprocess("exec", SELF_PY, cwd="/nonexistent/dir"),
         FileNotFoundError),
    Case("subprocess_exec-bad-env", _subprocess("exec", SELF_PY, env={"A": 1}), TypeError),
    Case("subprocess_exec-bad-stdin", _subprocess("exec", SELF_PY, stdin="x"), AttributeError,
         reason="subprocess.Popen calls stdin.fileno() on a str"),
]


@pytest.mark.parametrize("case", params(CASES))
def test_bad_input(case: Case, loop_factory, request) -> None:
    apply_bugs(request, case)
    run_case(case, loop_factory)


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 100
