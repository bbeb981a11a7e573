"""Misbehaving peers, on asyncio and pyloop: a client process killed with
SIGKILL mid-transfer, a peer that resets while we write, a slow reader
against a fast writer, slowloris clients, and a slow peer on the far side of
a graceful close.

In every case: the error reaches the connection's own protocol
(``connection_lost``) exactly once, the loop keeps serving other clients,
and no byte accepted by ``write()`` before a graceful ``close()`` is lost.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
import time

import pytest

from ._fault_util import (
    TIMEOUT,
    EchoServer,
    Recorder,
    echo_once,
    poll,
    polled,
    reset_socket,
    run,
    spawn_python,
    until,
)

pytestmark = pytest.mark.timeout(180)

MiB = 1 << 20


class Sink(asyncio.Protocol):
    """Counts what arrives and how the connection ended."""

    def __init__(self) -> None:
        self.received = 0
        self.lost_calls: list[BaseException | None] = []
        self.eof = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received += len(data)

    def eof_received(self) -> None:
        self.eof = True

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost_calls.append(exc)


STREAMING_CLIENT = r"""
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
chunk = b"x" * 65536
while True:
    s.sendall(chunk)
"""


def test_peer_killed_mid_transfer(loop):
    """A client process streaming to the server is SIGKILLed: its connection
    ends once (EOF or reset: the kernel closes the socket), the server keeps
    echoing for another client throughout."""
    async def main():
        sinks: list[Sink] = []
        sink_server = await loop.create_server(lambda: sinks.append(Sink()) or sinks[-1],
                                               "127.0.0.1", 0)
        echo_server = await loop.create_server(EchoServer, "127.0.0.1", 0)
        sink_port = sink_server.sockets[0].getsockname()[1]
        echo_port = echo_server.sockets[0].getsockname()[1]
        child = spawn_python(STREAMING_CLIENT, str(sink_port))
        try:
            await poll(lambda: sinks and sinks[0].received >= 4 * MiB, "the child to stream 4 MiB")
            reader, writer = await asyncio.open_connection("127.0.0.1", echo_port)
            writer.write(b"before")
            assert await reader.readexactly(6) == b"before"
            os.kill(child.pid, signal.SIGKILL)
            # The echo client is served while the dead connection winds down.
            for i in range(20):
                msg = f"during-{i}".encode()
                writer.write(msg)
                assert await reader.readexactly(len(msg)) == msg
            await poll(lambda: sinks[0].lost_calls, "connection_lost of the killed client")
            for _ in range(10):
                await asyncio.sleep(0)
            (exc,) = sinks[0].lost_calls
            assert exc is None or isinstance(exc, ConnectionResetError), exc
            writer.write(b"after")
            assert await reader.readexactly(5) == b"after"
            writer.close()
            await writer.wait_closed()
            assert len(sinks) == 1
        finally:
            child.kill()
            child.wait(TIMEOUT)
            sink_server.close()
            echo_server.close()

    run(loop, main(), 60)


class Producer(asyncio.Protocol):
    """Writes ``chunk`` whenever it may (not paused), tracking the write
    buffer at every flow-control callback.  Honours pause_writing."""

    def __init__(self, total: int, chunk: int, high: int | None = None,
                 close_when_done: bool = False) -> None:
        self.total = total
        self.chunk = chunk
        self.high = high
        self.close_when_done = close_when_done
        self.sent = 0
        self.paused = False
        self.pauses: list[int] = []     # buffer size when pause_writing came
        self.resumes: list[int] = []    # ... and resume_writing
        self.max_buffer = 0
        self.lost_calls: list[BaseException | None] = []
        self.writes_after_lost = 0
        self.done = asyncio.get_event_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        if self.high is not None:
            transport.set_write_buffer_limits(high=self.high)  # type: ignore[attr-defined]
        asyncio.get_event_loop().call_soon(self._produce)

    def _produce(self) -> None:
        tr = self.transport
        while not self.paused and self.sent < self.total and not self.lost_calls:
            piece = min(self.chunk, self.total - self.sent)
            tr.write(_pattern(self.sent, piece))  # type: ignore[attr-defined]
            self.sent += piece
            self.max_buffer = max(self.max_buffer, tr.get_write_buffer_size())  # type: ignore[attr-defined]
            if not self.paused:
                # Let the loop run between writes, like a real producer.
                asyncio.get_event_loop().call_soon(self._produce)
                return
        if self.sent >= self.total and self.close_when_done and not self.done.done():
            self.done.set_result(None)
            tr.close()

    def pause_writing(self) -> None:
        assert not self.paused
        self.paused = True
        self.pauses.append(self.transport.get_write_buffer_size())  # type: ignore[attr-defined]

    def resume_writing(self) -> None:
        assert self.paused
        self.paused = False
        self.resumes.append(self.transport.get_write_buffer_size())  # type: ignore[attr-defined]
        asyncio.get_event_loop().call_soon(self._produce)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost_calls.append(exc)
        if not self.done.done():
            self.done.set_result(None)


_PATTERN = bytes(range(251)) * (MiB // 251 + 2)


def _pattern(offset: int, size: int) -> bytes:
    """Bytes offset..offset+size of an endless 0..250 cycle (251 is prime, so
    a lost or repeated chunk shifts the phase and shows)."""
    out = bytearray()
    while size:
        start = offset % 251
        piece = min(size, len(_PATTERN) - start)
        out += _PATTERN[start:start + piece]
        offset += piece
        size -= piece
    return bytes(out)


DOWNLOADING_CLIENT = r"""
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
while True:
    if not s.recv(4096):
        break
"""


def test_peer_killed_while_downloading(loop):
    """A client process reading a large stream is SIGKILLed: the kernel
    resets its socket (it dies with unread data), the server's writer gets
    connection_lost once with the reset, stops producing, and another client
    is served meanwhile."""
    async def main():
        producers: list[Producer] = []

        def factory() -> Producer:
            producers.append(Producer(total=1 << 40, chunk=128 * 1024))
            return producers[-1]

        server = await loop.create_server(factory, "127.0.0.1", 0)
        echo_server = await loop.create_server(EchoServer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        echo_port = echo_server.sockets[0].getsockname()[1]
        child = spawn_python(DOWNLOADING_CLIENT, str(port))
        try:
            await poll(lambda: producers and producers[0].sent >= 8 * MiB,
                       "the child to download 8 MiB")
            prod = producers[0]
            os.kill(child.pid, signal.SIGKILL)
            assert await echo_once("127.0.0.1", echo_port, b"meanwhile") == b"meanwhile"
            await poll(lambda: prod.lost_calls, "connection_lost of the killed client")
            await polled()
            (exc,) = prod.lost_calls
            assert isinstance(exc, (ConnectionResetError, BrokenPipeError)), exc
            sent = prod.sent
            await polled()
            assert prod.sent == sent  # the producer stopped
            assert prod.transport.get_write_buffer_size() == 0  # type: ignore[attr-defined]
            assert await echo_once("127.0.0.1", echo_port, b"after") == b"after"
        finally:
            child.kill()
            child.wait(TIMEOUT)
            server.close()
            echo_server.close()

    run(loop, main(), 60)


@pytest.mark.parametrize("family", ["tcp", "unix"])
def test_reset_while_writing_reaches_connection_lost_once(loop, caplog, family, tmp_path):
    """The peer resets (TCP: SO_LINGER 0; Unix: closes with unread data, so
    our next send fails with EPIPE) while the server writes a lot: the error
    reaches connection_lost once; later writes are dropped silently, with
    asyncio's warning once five have been dropped; other clients are still
    served."""
    async def main():
        producers: list[Producer] = []

        def factory() -> Producer:
            producers.append(Producer(total=64 * MiB, chunk=256 * 1024))
            return producers[-1]

        if family == "tcp":
            server = await loop.create_server(factory, "127.0.0.1", 0)
            peer = socket.create_connection(server.sockets[0].getsockname())
        else:
            path = str(tmp_path / "s")
            server = await loop.create_unix_server(factory, path)
            peer = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            peer.connect(path)
        echo_server = await loop.create_server(EchoServer, "127.0.0.1", 0)
        echo_port = echo_server.sockets[0].getsockname()[1]
        peer.setblocking(False)
        got = 0
        while got < 2 * MiB:
            got += len(await loop.sock_recv(peer, 65536))
        if family == "tcp":
            reset_socket(peer)
        else:
            peer.close()
        await until(lambda: producers[0].lost_calls, "connection_lost after the reset")
        prod = producers[0]
        (exc,) = prod.lost_calls
        assert isinstance(exc, (ConnectionResetError, BrokenPipeError)), exc
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="asyncio"):
            for _ in range(8):
                prod.transport.write(b"dropped")  # type: ignore[attr-defined]
        warnings = [r for r in caplog.records if "socket.send() raised exception" in r.getMessage()]
        # asyncio counts the loss itself as the first; the 5th..8th calls warn.
        assert 1 <= len(warnings) <= 8
        assert prod.transport.get_write_buffer_size() == 0  # type: ignore[attr-defined]
        for _ in range(10):
            await asyncio.sleep(0)
        assert len(prod.lost_calls) == 1
        assert await echo_once("127.0.0.1", echo_port, b"still serving") == b"still serving"
        server.close()
        echo_server.close()

    run(loop, main(), 60)


class SlowReader(asyncio.BufferedProtocol):
    """Reads at most ``size`` bytes per read and pauses reading every
    ``pause_every`` reads for ``pause_iterations`` loop iterations: a reader
    far slower than the writer on the same loop."""

    def __init__(self, size: int, pause_every: int, pause_iterations: int) -> None:
        self.buf = bytearray(size)
        self.data = bytearray()
        self.reads = 0
        self.pause_every = pause_every
        self.pause_iterations = pause_iterations
        self.eof = False
        self.lost = asyncio.get_event_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def get_buffer(self, sizehint: int) -> bytearray:
        return self.buf

    def buffer_updated(self, nbytes: int) -> None:
        self.data += self.buf[:nbytes]
        self.reads += 1
        if self.reads % self.pause_every == 0:
            self.transport.pause_reading()  # type: ignore[attr-defined]
            asyncio.get_event_loop().create_task(self._resume_later())

    async def _resume_later(self) -> None:
        for _ in range(self.pause_iterations):
            await asyncio.sleep(0)
        if not self.transport.is_closing():
            self.transport.resume_reading()  # type: ignore[attr-defined]

    def eof_received(self) -> None:
        self.eof = True

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)


@pytest.mark.parametrize("high", [16 * 1024, 256 * 1024])
def test_slow_reader_bounds_the_write_buffer(loop, high):
    """A writer that honours pause_writing never has much more than the
    high-water mark queued, gets resume_writing at or below the low mark,
    and every byte arrives in order."""
    chunk = 32 * 1024
    total = 24 * MiB

    async def main():
        prod_holder: list[Producer] = []

        def factory() -> Producer:
            prod_holder.append(Producer(total=total, chunk=chunk, high=high, close_when_done=True))
            return prod_holder[-1]

        server = await loop.create_server(factory, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        _, reader = await loop.create_connection(lambda: SlowReader(4096, 8, 3), "127.0.0.1", port)
        assert await reader.lost is None
        prod = prod_holder[0]
        await prod.done
        low = high // 4
        assert prod.pauses, "the slow reader never made the writer pause"
        assert len(prod.resumes) >= len(prod.pauses) - 1
        # The write that crosses the mark triggers the pause: at most one
        # chunk beyond it.  That is the memory bound a producer relies on.
        assert all(high < size <= high + chunk for size in prod.pauses), (high, prod.pauses[:5])
        assert all(size <= low for size in prod.resumes), (low, prod.resumes[:5])
        assert prod.max_buffer <= high + chunk
        assert reader.eof
        assert len(reader.data) == total
        assert reader.data == _pattern(0, total)
        server.close()

    run(loop, main(), 120)


def _slowloris(port: int, count: int, stop: threading.Event, opened: list[int]) -> None:
    """``count`` clients that each send one byte of a never-finished request
    line every few milliseconds, round-robin, until ``stop``."""
    socks = []
    try:
        for _ in range(count):
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT))
            opened.append(1)
        while not stop.is_set():
            for s in socks:
                try:
                    s.send(b"G")
                except OSError:
                    pass
            stop.wait(0.005)  # the attack's pace, not synchronisation
    finally:
        for s in socks:
            s.close()


def test_slowloris_does_not_starve_a_normal_client(loop):
    """Many clients trickling a request one byte at a time, never finishing
    it, do not keep the server from answering a normal client promptly."""
    active = [0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        active[0] += 1
        try:
            while True:
                line = await reader.readline()
                if not line.endswith(b"\n"):
                    break
                writer.write(b"echo " + line)
                await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()
            active[0] -= 1

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        stop = threading.Event()
        opened: list[int] = []
        attacker = threading.Thread(target=_slowloris, args=(port, 200, stop, opened))
        attacker.start()
        try:
            await poll(lambda: len(opened) == 200, "the slowloris clients to connect")
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            worst = 0.0
            for i in range(50):
                t0 = time.monotonic()
                writer.write(b"request %d\n" % i)
                answer = await asyncio.wait_for(reader.readline(), TIMEOUT)
                worst = max(worst, time.monotonic() - t0)
                assert answer == b"echo request %d\n" % i
            # Generous: a starved client waits for ever; a served one for
            # milliseconds even on a loaded 2-core machine.
            assert worst < 5.0, worst
            writer.close()
        finally:
            stop.set()
            await loop.run_in_executor(None, attacker.join, TIMEOUT)
            server.close()
            await until(lambda: active[0] == 0, "the handlers to see their clients go")

    run(loop, main(), 120)


def _slow_drain(sock: socket.socket, out: list[bytes], done: threading.Event) -> None:
    """Read everything in small pieces, pausing now and then, until EOF."""
    sock.settimeout(TIMEOUT)
    n = 0
    try:
        while True:
            data = sock.recv(1024)
            if not data:
                break
            out.append(data)
            n += 1
            if n % 64 == 0:
                time.sleep(0.001)  # slowness, not synchronisation
    finally:
        done.set()


@pytest.mark.parametrize("family", ["tcp", "unix"])
@pytest.mark.parametrize("ending", ["close", "write_eof"])
def test_graceful_close_delivers_every_accepted_byte(loop, family, ending, tmp_path):
    """Large writes followed at once by close() (or write_eof()), with a
    slow peer: the peer gets every byte, then EOF; connection_lost(None)
    comes only after the queue was flushed."""
    sizes = [1, 3 * MiB, 17, 512 * 1024, 2 * MiB + 5]
    total = sum(sizes)

    async def main():
        if family == "tcp":
            listener = socket.create_server(("127.0.0.1", 0))
            peer_addr = listener.getsockname()
            a = socket.create_connection(peer_addr)
        else:
            a, listener = socket.socketpair()
        try:
            if family == "tcp":
                b, _ = listener.accept()
            else:
                b = listener
            proto = Recorder(keep_open=True)
            if family == "tcp":
                tr, _ = await loop.create_connection(lambda: proto, sock=a)
            else:
                tr, _ = await loop.create_unix_connection(lambda: proto, sock=a)
            chunks: list[bytes] = []
            drained = threading.Event()
            reader = threading.Thread(target=_slow_drain, args=(b, chunks, drained))
            reader.start()
            offset = 0
            for size in sizes:
                tr.write(_pattern(offset, size))
                offset += size
            assert tr.get_write_buffer_size() > 0  # the kernel cannot take 5.5 MiB at once
            if ending == "close":
                tr.close()
                tr.write(b"")  # harmless
            else:
                tr.write_eof()
            await poll(drained.is_set, "the peer to read up to EOF")
            reader.join(TIMEOUT)
            received = b"".join(chunks)
            assert len(received) == total
            assert received == _pattern(0, total)
            if ending == "write_eof":
                assert not proto.lost
                b.close()
                await until(lambda: proto.eof, "eof_received after the peer closed")
                assert not proto.lost  # eof_received returned True: half-open
                tr.close()
                await until(lambda: proto.lost, "connection_lost after close()")
            else:
                await until(lambda: proto.lost, "connection_lost after the flush")
            assert proto.skeleton()[-1] == ("lost", None)
            assert [k for k, _ in proto.events].count("lost") == 1
            assert not proto.violations
        finally:
            b.close()
            listener.close()

    run(loop, main(), 120)


@pytest.mark.skip_loops("asyncio", reason="asyncio's transport has dropped its loop by then, so "
                        "write() and abort() raise AttributeError (CPython 3.11)")
def test_write_and_abort_after_flushing_close_touch_nothing(loop):
    """Regression: after a close() that had to flush, connection_lost ran and
    the socket was closed; a later write() sent on the old descriptor number
    -- which by then belonged to another socket -- and abort() called
    connection_lost a second time."""
    async def main():
        a, b = socket.socketpair()
        proto = Recorder()
        handler_calls: list[dict] = []
        loop.set_exception_handler(lambda lp, ctx: handler_calls.append(ctx))
        tr, _ = await loop.create_unix_connection(lambda: proto, sock=a)
        old_fd = a.fileno()
        tr.write(b"x" * (8 * MiB))
        assert tr.get_write_buffer_size() > 0
        tr.close()
        b.setblocking(False)
        got = 0
        while True:
            try:
                data = b.recv(MiB)
            except BlockingIOError:
                await asyncio.sleep(0)
                continue
            if not data:
                break
            got += len(data)
        assert got == 8 * MiB
        await until(lambda: proto.lost, "connection_lost after the flush")
        # Another socket takes the descriptor number the transport had.
        with pytest.raises(OSError):
            os.fstat(old_fd)
        c, d = socket.socketpair()
        extra_fd = None
        if c.fileno() == old_fd:
            victim_peer = d
        elif d.fileno() == old_fd:
            victim_peer = c
        else:
            os.dup2(c.fileno(), old_fd)
            extra_fd = old_fd
            victim_peer = d
        try:
            victim_peer.setblocking(False)
            tr.write(b"LEAK")
            tr.abort()
            for _ in range(5):
                await asyncio.sleep(0)
            with pytest.raises(BlockingIOError):
                victim_peer.recv(100)
            assert [k for k, _ in proto.events].count("lost") == 1
            assert not handler_calls
        finally:
            if extra_fd is not None:
                os.close(extra_fd)
            c.close()
            d.close()
            b.close()

    run(loop, main())


@pytest.mark.skip_loops("asyncio", reason="asyncio (3.11) watches the socket again on "
                        "resume_reading() and calls eof_received a second time")
@pytest.mark.parametrize("family", ["tcp", "unix"])
def test_eof_received_once_across_pause_resume(loop, family):
    """Regression: after eof_received returned True (half-open), a
    pause_reading()/resume_reading() pair watched the socket again, which
    reads EOF again and called eof_received a second time."""
    async def main():
        if family == "tcp":
            listener = socket.create_server(("127.0.0.1", 0))
            a = socket.create_connection(listener.getsockname())
            b, _ = listener.accept()
            listener.close()
        else:
            a, b = socket.socketpair()
        proto = Recorder(keep_open=True)
        if family == "tcp":
            tr, _ = await loop.create_connection(lambda: proto, sock=a)
        else:
            tr, _ = await loop.create_unix_connection(lambda: proto, sock=a)
        try:
            b.sendall(b"last words")
            b.shutdown(socket.SHUT_WR)
            await until(lambda: proto.eof, "eof_received")
            for _ in range(3):
                tr.pause_reading()
                tr.resume_reading()
                await polled()
            kinds = [k for k, _ in proto.events]
            assert kinds.count("eof") == 1, kinds
            assert bytes(proto.received) == b"last words"
            # Half-open: writing still works.
            tr.write(b"reply")
            b.settimeout(TIMEOUT)
            assert b.recv(100) == b"reply"
            tr.close()
            await until(lambda: proto.lost, "connection_lost")
            assert not proto.violations
        finally:
            b.close()

    run(loop, main())
