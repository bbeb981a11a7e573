"""Helpers for the reliability tests: bounded runs, polling with a deadline,
child processes that import the working tree, and a protocol that records
what it saw and checks asyncio's callback contract as it goes.

The contract checked by :class:`Recorder` (asyncio's documented one):
``connection_made`` first and once; ``connection_lost`` last and once; no
callback after it; ``pause_writing``/``resume_writing`` alternate, starting
with a pause; ``get_write_buffer_size()`` never negative.  Violations are
collected in ``Recorder.violations`` rather than raised, because an
exception inside a callback would be swallowed by the loop's handler.
"""

from __future__ import annotations

import asyncio
import os
import select
import socket
import struct
import subprocess
import sys
import time
from typing import Any, Awaitable, Callable

#: Bound for anything that should take milliseconds; only ever signals a hang.
TIMEOUT = 30.0

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(loop: asyncio.AbstractEventLoop, aw: Awaitable[Any], timeout: float = TIMEOUT) -> Any:
    """run_until_complete(aw), failing with TimeoutError instead of hanging."""
    return loop.run_until_complete(asyncio.wait_for(aw, timeout))


async def until(cond: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    """Let the loop run until ``cond()`` holds; fail naming ``what`` after
    ``timeout`` seconds.  For conditions the loop itself makes true (a
    callback ran): yields one iteration at a time, no wall-clock sleep."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0)


async def poll(cond: Callable[[], bool], what: str, timeout: float = TIMEOUT,
               interval: float = 0.005) -> None:
    """Wait for a condition that another process makes true: check every
    ``interval`` seconds until ``timeout``.  Not synchronisation by sleeping:
    the condition is what we wait for, the interval only spares the CPU."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(interval)


async def polled(rounds: int = 3) -> None:
    """Make sure the loop has polled for I/O ``rounds`` times.

    ``sleep(0)`` is not enough: pyloop polls at most every 50 us while
    callbacks are ready.  A reader callback runs only after a poll saw its
    fd ready, and every fd that was ready at that poll (the reactors are
    level-triggered) had its callback run in the same iteration -- so
    afterwards, "nothing happened" means nothing will."""
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    try:
        a.setblocking(False)
        b.setblocking(False)
        for _ in range(rounds):
            seen = loop.create_future()
            loop.add_reader(b.fileno(), lambda f=seen: f.done() or f.set_result(None))
            try:
                a.send(b"x")
                await seen
            finally:
                loop.remove_reader(b.fileno())
            assert b.recv(1) == b"x"
    finally:
        a.close()
        b.close()


def reset_socket(sock: socket.socket) -> None:
    """Close with SO_LINGER 0: the kernel sends RST instead of FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def linger_zero(transport: asyncio.BaseTransport) -> None:
    """Make the transport's socket send RST when it is closed."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def child_env() -> dict[str, str]:
    """Environment for a child Python that imports pyloop from this tree."""
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def spawn_python(code: str, *args: str, **kwargs: Any) -> subprocess.Popen:
    """Start ``python -c code args...`` with this tree importable."""
    return subprocess.Popen([sys.executable, "-c", code, *args], env=child_env(), **kwargs)


def run_python(code: str, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
    """Run ``python -c code args...`` to completion (bounded), capturing output."""
    return subprocess.run([sys.executable, "-c", code, *args], env=child_env(),
                          capture_output=True, text=True, timeout=timeout)


class LineReader:
    """Lines from a child's stdout (a pipe), each awaited with a deadline:
    ``expect(word)`` returns the words after ``word`` on the first line that
    starts with it."""

    def __init__(self, proc):
        self.proc = proc
        self.buf = b""

    def expect(self, word: str, timeout: float = TIMEOUT) -> list[str]:
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while True:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                parts = line.decode().split()
                if parts and parts[0] == word:
                    return parts[1:]
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"child said no {word!r} in time; got {self.buf!r}")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    err = self.proc.stderr.read().decode(errors="replace")
                    raise AssertionError(f"child exited before {word!r}: {err}")
                self.buf += chunk


class HandlerLog:
    """An exception handler that records contexts instead of logging them."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.contexts: list[dict[str, Any]] = []
        loop.set_exception_handler(self)

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.contexts.append(context)

    def exceptions(self) -> list[BaseException]:
        return [c["exception"] for c in self.contexts if "exception" in c]


class Recorder(asyncio.Protocol):
    """Records callbacks as ``(kind, arg)`` events and checks the contract."""

    def __init__(self, keep_open: bool = False):
        self.events: list[tuple[str, Any]] = []
        self.received = bytearray()
        self.violations: list[str] = []
        self.transport: asyncio.Transport | None = None
        self.keep_open = keep_open
        self.writing_paused = False
        self.lost = False
        self.lost_exc: BaseException | None = None
        self.eof = False

    def _note(self, kind: str, arg: Any = None) -> None:
        if self.lost:
            self.violations.append(f"{kind} after connection_lost")
        if self.transport is not None:
            size = self.transport.get_write_buffer_size()
            if size < 0:
                self.violations.append(f"negative write buffer size {size} in {kind}")
        self.events.append((kind, arg))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.events:
            self.violations.append(f"connection_made after {self.events[0][0]}")
        self.transport = transport  # type: ignore[assignment]
        self._note("made")

    def data_received(self, data: bytes) -> None:
        self._note("data", len(data))
        if self.eof:
            self.violations.append("data after eof_received")
        self.received += data

    def eof_received(self) -> bool:
        self._note("eof")
        self.eof = True
        return self.keep_open

    def pause_writing(self) -> None:
        if self.writing_paused:
            self.violations.append("pause_writing twice in a row")
        self.writing_paused = True
        self._note("pause")

    def resume_writing(self) -> None:
        if not self.writing_paused:
            self.violations.append("resume_writing without pause_writing")
        self.writing_paused = False
        self._note("resume")

    def connection_lost(self, exc: BaseException | None) -> None:
        self._note("lost", None if exc is None else type(exc).__name__)
        self.lost = True
        self.lost_exc = exc

    def skeleton(self) -> list[tuple[str, Any]]:
        """The events whose order must not depend on timing or chunking."""
        return [e for e in self.events if e[0] in ("made", "eof", "lost")]


class BufferedRecorder(Recorder, asyncio.BufferedProtocol):
    """A Recorder that reads through ``get_buffer``, at most ``chunks[i]``
    bytes per read, cycling through ``chunks``: a reader that takes the
    data in the sizes the test chooses."""

    def __init__(self, chunks: list[int], keep_open: bool = False):
        Recorder.__init__(self, keep_open)
        self.chunks = chunks
        self._next = 0
        self._buf = bytearray(max(chunks))

    def get_buffer(self, sizehint: int) -> memoryview:
        if self.lost:
            self.violations.append("get_buffer after connection_lost")
        size = self.chunks[self._next % len(self.chunks)]
        self._next += 1
        return memoryview(self._buf)[:size]

    def buffer_updated(self, nbytes: int) -> None:
        self._note("data", nbytes)
        if self.eof:
            self.violations.append("data after eof_received")
        self.received += self._buf[:nbytes]


class EchoServer(asyncio.Protocol):
    """Echo everything back; close on EOF; counts connections lost."""

    lost_count = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[attr-defined]

    def connection_lost(self, exc: BaseException | None) -> None:
        type(self).lost_count += 1


async def echo_once(host: str, port: int, payload: bytes, timeout: float = TIMEOUT) -> bytes:
    """Open a stream connection, send ``payload``, read it back, close."""
    async def go() -> bytes:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(payload)
            await writer.drain()
            return await reader.readexactly(len(payload))
        finally:
            writer.close()
    return await asyncio.wait_for(go(), timeout)
