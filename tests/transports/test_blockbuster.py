"""The loop's own machinery under blockbuster, the blocking-call detector that aiohttp's and
anyio's test suites switch on for every test.

blockbuster wraps the blocking functions of ``os``, ``io``, ``socket`` and ``time`` and fails a
call made while an event loop runs in the calling thread, unless the call is made from one of
asyncio's own functions, which it exempts by name.  pyloop's equivalents are not in that list:
the non-blocking system calls they make (``sendfile`` on a non-blocking socket, the stale-socket
check of ``create_unix_server``, reading a new child's exec status) must therefore not go through
the wrapped Python functions at all.  Here each path runs with blockbuster active in its
strictest mode (every module scanned) and must finish without a ``BlockingError``, neither
raised nor handed to the loop's exception handler.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile

import pytest

blockbuster = pytest.importorskip("blockbuster")

TIMEOUT = 60.0
PAYLOAD = bytes(range(256)) * 4096   # 1 MiB: more than one sendfile call on loopback


@pytest.fixture
def data_file():
    # Written before the loop runs: writing a file from a coroutine is a blocking call.
    with tempfile.NamedTemporaryFile(prefix="pyloop-bb-", delete=False) as f:
        f.write(PAYLOAD)
    try:
        with open(f.name, "rb") as fobj:
            yield fobj
    finally:
        os.unlink(f.name)


@pytest.fixture
def unix_path():
    with tempfile.TemporaryDirectory(prefix="pyloop-bb-") as d:
        yield os.path.join(d, "sock")


def run_detected(loop, coro_fn, *args):
    """Run ``coro_fn(*args)`` on ``loop`` with blockbuster active; fail on any BlockingError,
    raised or reported to the exception handler."""
    reported = []

    def handler(lp, context):
        reported.append(context)

    loop.set_exception_handler(handler)

    async def main():
        return await asyncio.wait_for(coro_fn(*args), TIMEOUT)

    with blockbuster.blockbuster_ctx():
        result = loop.run_until_complete(main())
    blocking = [c for c in reported if isinstance(c.get("exception"), blockbuster.BlockingError)]
    assert not blocking, blocking
    assert not reported, reported
    return result


class Collect(asyncio.Protocol):
    def __init__(self, expected):
        self.expected = expected
        self.data = bytearray()
        self.done = asyncio.get_running_loop().create_future()

    def data_received(self, data):
        self.data += data
        if len(self.data) >= self.expected and not self.done.done():
            self.done.set_result(bytes(self.data))

    def connection_lost(self, exc):
        if not self.done.done():
            self.done.set_result(bytes(self.data))


_NO_UVLOOP_SENDFILE = pytest.mark.skip_loops("uvloop", reason="uvloop has no loop.sendfile/sock_sendfile")


@_NO_UVLOOP_SENDFILE
def test_tcp_server_and_loop_sendfile(loop, data_file):
    async def main():
        loop_ = asyncio.get_running_loop()
        sent = loop_.create_future()

        class Sender(asyncio.Protocol):
            def connection_made(self, transport):
                async def send():
                    try:
                        n = await loop_.sendfile(transport, data_file)
                        transport.close()
                        sent.set_result(n)
                    except BaseException as exc:
                        transport.close()
                        sent.set_exception(exc)
                loop_.create_task(send())

        server = await loop_.create_server(Sender, "127.0.0.1", 0)
        try:
            port = server.sockets[0].getsockname()[1]
            _, client = await loop_.create_connection(lambda: Collect(len(PAYLOAD)), "127.0.0.1", port)
            received = await client.done
            assert await sent == len(PAYLOAD)
            assert received == PAYLOAD
        finally:
            server.close()
            await server.wait_closed()

    run_detected(loop, main)


@_NO_UVLOOP_SENDFILE
def test_sock_sendfile(loop, data_file):
    async def main():
        loop_ = asyncio.get_running_loop()
        a, b = socket.socketpair()
        with a, b:
            a.setblocking(False)
            b.setblocking(False)
            reader = loop_.create_task(_sock_read_all(loop_, b, len(PAYLOAD)))
            n = await loop_.sock_sendfile(a, data_file, 0, None)
            assert n == len(PAYLOAD)
            assert await reader == PAYLOAD

    run_detected(loop, main)


async def _sock_read_all(loop, sock, n):
    data = bytearray()
    while len(data) < n:
        chunk = await loop.sock_recv(sock, 65536)
        if not chunk:
            break
        data += chunk
    return bytes(data)


@pytest.mark.parametrize("stale", [False, True], ids=["fresh-path", "stale-file"])
@pytest.mark.parametrize("cleanup_socket", [False, True])
def test_unix_server(loop, loop_name, unix_path, cleanup_socket, stale):
    if loop_name == "asyncio" and cleanup_socket and sys.version_info < (3, 13):
        pytest.skip("cleanup_socket is new in Python 3.13's asyncio")
    if loop_name == "asyncio" and stale:
        pytest.skip("blockbuster fails asyncio's own os.remove of the stale file (it exempts "
                    "only asyncio's os.stat there)")
    if stale:
        # A socket file left behind by a previous server: create_unix_server stats and removes it.
        left = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        left.bind(unix_path)
        left.close()
    kwargs = {"cleanup_socket": cleanup_socket} if cleanup_socket else {}

    async def main():
        loop_ = asyncio.get_running_loop()

        class Echo(asyncio.Protocol):
            def connection_made(self, transport):
                self.transport = transport

            def data_received(self, data):
                self.transport.write(data)
                self.transport.close()

        server = await loop_.create_unix_server(Echo, unix_path, **kwargs)
        try:
            transport, client = await loop_.create_unix_connection(lambda: Collect(5), unix_path)
            transport.write(b"hello")
            assert await client.done == b"hello"
            transport.close()
        finally:
            server.close()
            await server.wait_closed()

    run_detected(loop, main)


@pytest.mark.parametrize("stdin", [subprocess.PIPE, subprocess.DEVNULL])
def test_subprocess_exec(loop, stdin):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "print('hi')", stdin=stdin, stdout=subprocess.PIPE)
        out, _ = await proc.communicate()
        assert out.strip() == b"hi"
        assert await proc.wait() == 0

    run_detected(loop, main)


def test_subprocess_shell_and_missing_program(loop):
    async def main():
        proc = await asyncio.create_subprocess_shell("exit 3")
        assert await proc.wait() == 3
        with pytest.raises(FileNotFoundError):
            await asyncio.create_subprocess_exec("/nonexistent/pyloop-no-such-program")

    run_detected(loop, main)
