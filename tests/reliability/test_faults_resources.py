"""Running out of file descriptors while serving, on asyncio and pyloop.

A child process (so the test runner keeps its own limit) lowers
RLIMIT_NOFILE, serves an echo server, and fills its descriptor table.  New
clients then queue in the kernel's backlog: accept() fails with EMFILE.
The loop must report that once to the exception handler, keep serving the
connection it already has, and -- once descriptors are freed -- accept the
queued clients and serve them.
"""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from ._fault_util import TIMEOUT, LineReader, spawn_python

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX resource limits"),
]

EMFILE_SERVER = r"""
import asyncio, errno, os, resource, sys

name = sys.argv[1]
if name == "pyloop":
    import pyloop
    loop = pyloop.new_event_loop()
else:
    loop = asyncio.new_event_loop()

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(128, hard), hard))

fillers = []
reports = []
served = []

def say(*words):
    print(*words, flush=True)

def handler(loop, ctx):
    reports.append(ctx)
    exc = ctx.get("exception")
    if isinstance(exc, OSError) and exc.errno == errno.EMFILE and len(reports) == 1:
        say("EMFILE")

class Echo(asyncio.Protocol):
    def connection_made(self, tr):
        self.tr = tr
        served.append(self)
        if len(served) == 1:
            # The first client is in: take every descriptor left.
            while True:
                try:
                    fillers.append(os.open(os.devnull, os.O_RDONLY))
                except OSError as exc:
                    assert exc.errno == errno.EMFILE, exc
                    break
            say("FULL", len(fillers))
    def data_received(self, data):
        if data == b"free":
            for fd in fillers:
                os.close(fd)
            say("FREED", len(fillers))
            fillers.clear()
        self.tr.write(data)

async def main():
    loop.set_exception_handler(handler)
    server = await loop.create_server(Echo, "127.0.0.1", 0, backlog=50)
    say("PORT", server.sockets[0].getsockname()[1])
    # Serve until the parent closes our stdin.
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await reader.read()
    server.close()
    other = [r for r in reports
             if not (isinstance(r.get("exception"), OSError)
                     and r["exception"].errno == errno.EMFILE)]
    say("DONE", len(served), len(reports), len(other))

loop.run_until_complete(main())
loop.close()
"""


def _echo(sock: socket.socket, payload: bytes) -> bytes:
    sock.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = sock.recv(len(payload) - len(got))
        if not chunk:
            break
        got += chunk
    return got


def test_emfile_on_accept_recovers(loop_name):
    proc = spawn_python(EMFILE_SERVER, loop_name, stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    clients: list[socket.socket] = []
    try:
        out = LineReader(proc)
        (port,) = out.expect("PORT")
        first = socket.create_connection(("127.0.0.1", int(port)), timeout=TIMEOUT)
        clients.append(first)
        out.expect("FULL")
        assert _echo(first, b"hello") == b"hello"
        # These wait in the backlog: the server has no descriptor to accept with.
        waiting = [socket.create_connection(("127.0.0.1", int(port)), timeout=TIMEOUT)
                   for _ in range(5)]
        clients += waiting
        for i, s in enumerate(waiting):
            s.sendall(b"ping%d" % i)
        out.expect("EMFILE")
        # Out of descriptors, the loop still serves the connection it has.
        for i in range(20):
            assert _echo(first, b"still-%d" % i) == b"still-%d" % i
        assert _echo(first, b"free") == b"free"
        out.expect("FREED")
        for i, s in enumerate(waiting):
            expected = b"ping%d" % i
            got = b""
            while len(got) < len(expected):
                chunk = s.recv(64)
                assert chunk, f"client {i} dropped instead of served"
                got += chunk
            assert got == expected
            assert _echo(s, b"more") == b"more"
        for s in clients:
            s.close()
        proc.stdin.close()
        served, reports, other = (int(x) for x in out.expect("DONE"))
        assert served == 6
        # asyncio reports every failed accept() (it retries up to backlog
        # times per wakeup); pyloop once per pause.  Both: at least one,
        # and nothing but EMFILE.
        assert reports >= 1
        assert other == 0
        assert proc.wait(TIMEOUT) == 0
    finally:
        for s in clients:
            s.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(TIMEOUT)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None and not stream.closed:
                stream.close()
