"""User-visible semantics of stream (TCP / Unix) transports, on asyncio and pyloop.

Every test drives a transport made by the loop under test against a raw peer
socket (a TCP connection on 127.0.0.1 port 0 or a Unix socketpair) and asserts
what asyncio documents: byte order through the write fast path and the queue,
half-close, close() vs abort(), extra info, read pausing, write flow control,
BufferedProtocol, protocol switching, argument errors and callback order.

Synchronisation is always on futures set by protocol callbacks or on data the
peer has read; the only ``sleep(0)`` calls let the loop poll a socket whose
readiness is already established (data sitting in the kernel queue), and are
used to show that something does *not* happen.
"""

from __future__ import annotations

import asyncio
import fcntl
import random
import socket
import struct
import sys
import termios

import pytest

from ._netutil import run

pytestmark = pytest.mark.timeout(120)

KINDS = ["tcp", "unix"]
MiB = 1024 * 1024


# ------------------------------------------------------------------ helpers


class Rec(asyncio.Protocol):
    """Records every callback in order; futures for made/eof/lost."""

    def __init__(self, loop, eof_result=None):
        self.loop = loop
        self.events = []
        self.data = bytearray()
        self.made = loop.create_future()
        self.eof = loop.create_future()
        self.lost = loop.create_future()
        self.transport = None
        self.eof_result = eof_result
        self.lost_calls = 0
        self._want = []

    def connection_made(self, transport):
        self.events.append("made")
        self.transport = transport
        self.made.set_result(transport)

    def data_received(self, data):
        self.events.append("data")
        assert isinstance(data, bytes)
        self.data += data
        self._check_wants()

    def eof_received(self):
        self.events.append("eof")
        if not self.eof.done():
            self.eof.set_result(None)
        return self.eof_result

    def connection_lost(self, exc):
        self.events.append("lost")
        self.lost_calls += 1
        if not self.lost.done():
            self.lost.set_result(exc)
        for _, fut in self._want:
            if not fut.done():
                fut.set_exception(AssertionError(f"connection lost ({exc!r}) with "
                                                 f"{len(self.data)} bytes"))

    def pause_writing(self):
        self.events.append("pause_writing")

    def resume_writing(self):
        self.events.append("resume_writing")

    def _check_wants(self):
        keep = []
        for n, fut in self._want:
            if len(self.data) >= n:
                if not fut.done():
                    fut.set_result(bytes(self.data))
            else:
                keep.append((n, fut))
        self._want = keep

    def wait_bytes(self, n):
        fut = self.loop.create_future()
        self._want.append((n, fut))
        self._check_wants()
        return fut


def raw_pair(kind):
    """(ours, peer): two connected stream sockets, both non-blocking."""
    if kind == "tcp":
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            lsock.bind(("127.0.0.1", 0))
            lsock.listen(1)
            peer = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            peer.connect(lsock.getsockname())
            ours, _ = lsock.accept()
        finally:
            lsock.close()
    else:
        ours, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    ours.setblocking(False)
    peer.setblocking(False)
    return ours, peer


async def make_transport(loop, kind, protocol):
    """A transport of the loop under test on one end; the raw peer socket."""
    ours, peer = raw_pair(kind)
    tr, pr = await loop.create_connection(lambda: protocol, sock=ours)
    assert pr is protocol
    await protocol.made
    return tr, peer


async def read_exactly(loop, sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = await loop.sock_recv(sock, min(n - len(buf), 256 * 1024))
        if not chunk:
            raise AssertionError(f"EOF after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


async def read_to_eof(loop, sock):
    buf = bytearray()
    while True:
        chunk = await loop.sock_recv(sock, 256 * 1024)
        if not chunk:
            return bytes(buf)
        buf += chunk


def inq(sock):
    """Bytes waiting in sock's receive queue (FIONREAD)."""
    raw = fcntl.ioctl(sock.fileno(), termios.FIONREAD, struct.pack("i", 0))
    return struct.unpack("i", raw)[0]


async def spin(n=10):
    """Let the loop run n iterations (readiness is already established)."""
    for _ in range(n):
        await asyncio.sleep(0)


def payload(size, seed=0):
    return random.Random(seed).randbytes(size)


# ------------------------------------------------------------------ basics


@pytest.mark.parametrize("kind", KINDS)
def test_is_asyncio_transport_and_callback_order(loop, kind):
    async def main():
        ours, peer = raw_pair(kind)
        # Data (and EOF) are already queued before the transport exists:
        # connection_made must still come first.
        peer.sendall(b"early bytes")
        peer.shutdown(socket.SHUT_WR)
        proto = Rec(loop)
        tr, _ = await loop.create_connection(lambda: proto, sock=ours)
        assert isinstance(tr, asyncio.Transport)
        assert isinstance(tr, asyncio.BaseTransport)
        assert tr.get_protocol() is proto
        assert await proto.lost is None
        await spin()
        assert proto.events[0] == "made"
        assert proto.events[-2:] == ["eof", "lost"]
        assert set(proto.events[1:-2]) == {"data"}
        assert proto.lost_calls == 1
        assert bytes(proto.data) == b"early bytes"
        assert tr.is_closing()
        peer.close()

    run(loop, main())


@pytest.mark.parametrize("kind", KINDS)
def test_get_extra_info(loop, kind):
    async def main():
        proto = Rec(loop)
        tr, peer = await make_transport(loop, kind, proto)
        sock = tr.get_extra_info("socket")
        assert sock is not None
        assert sock.type == socket.SOCK_STREAM
        assert sock.family == (socket.AF_INET if kind == "tcp" else socket.AF_UNIX)
        assert sock.getsockname() == peer.getpeername()
        assert tr.get_extra_info("sockname") == peer.getpeername()
        assert tr.get_extra_info("peername") == peer.getsockname()
        if kind == "tcp":
            assert tr.get_extra_info("peername")[0] == "127.0.0.1"
        assert tr.get_extra_info("no-such-key") is None
        sentinel = object()
        assert tr.get_extra_info("no-such-key", sentinel) is sentinel
        assert tr.get_extra_info("sslcontext") is None
        tr.close()
        assert await proto.lost is None
        peer.close()

    run(loop, main())


@pytest.mark.parametrize("kind", KINDS)
def test_write_argument_errors(loop, kind):
    async def main():
        proto = Rec(loop)
        tr, peer = await make_transport(loop, kind, proto)
        for bad in ("text", 123, None, [b"a"], object()):
            with pytest.raises(TypeError):
                tr.write(bad)
        tr.write(b"")  # allowed, sends nothing
        tr.write(b"ok")
        assert tr.can_write_eof() is True
        tr.write_eof()
        with pytest.raises(RuntimeError):
            tr.write(b"after eof")
        assert await read_to_eof(loop, peer) == b"ok"
        tr.close()
        assert await proto.lost is None
        peer.close()

    run(loop, main())


# ------------------------------------------------------------- byte order


@pytest.mark.parametrize("kind", KINDS)
def test_random_chunks_keep_order(loop, kind):
    """Fast-path sends and queued writes interleave without reordering; types
    mixed; a total far beyond any socket buffer."""

    async def main():
        proto = Rec(loop)
        tr, peer = await make_transport(loop, kind, proto)
        data = payload(6 * MiB, seed=1)
        rng = random.Random(2)
        reader = asyncio.ensure_future(read_exactly(loop, peer, len(data)))
        pos = 0
        while pos < len(data):
            n = rng.choice([1, 7, 100, 1500, 4096, 65536, 300_000])
            chunk = data[pos:pos + n]
            kind_ = rng.randrange(3)
            if kind_ == 1:
                chunk = bytearray(chunk)
            elif kind_ == 2:
                chunk = memoryview(chunk)
            tr.write(chunk)
            pos += n
            if rng.random() < 0.05:
                await asyncio.sleep(0)  # let some flushes happen in between
        got = await reader
        assert got == data
        tr.close()
        assert await proto.lost is None
        assert await read_to_eof(loop, peer) == b""
        peer.close()

    run(loop, main())


@pytest.mark.parametrize("kind", KINDS)
def test_bytearray_reused_after_write(loop, loop_name, kind):
    """A caller may overwrite its bytearray as soon as write() returns, both
    when the write goes out at once and when part of it is queued."""
    if loop_name == "asyncio" and sys.version_info >= (3, 12):
        pytest.skip("asyncio 3.12/3.13 queue the caller's bytearray or memoryview itself, not a "
                    "copy, so a later change to it changes what is sent; pyloop copies, as 3.11's "
                    "asyncio did")

    async def main():
        proto = Rec(loop)
        tr, peer = await make_transport(loop, kind, proto)
        buf = bytearray(200_000)
        expected = bytearray()
        for i in range(40):
            buf[:] = bytes([i]) * len(buf)
            expected += buf
            tr.write(buf)
            view = memoryview(buf)[1000:3000]
            expected += view
            tr.write(view)
            del view
        buf[:] = b"\xff" * len(buf)  # scribble once more after the last write
        got = await read_exactly(loop, peer, len(expected))
        assert got == bytes(expected)
        tr.close()
        assert await proto.lost is None
        peer.close()

    run(loop, main())


@pytest.mark.parametrize("kind", KINDS)
def test_writelines(loop, kind):
    async def main():
        proto = Rec(loop)
        tr, peer = await make_transport(loop, kind, proto)
        big = payload(3 * MiB, seed=3)
        parts = [b"alpha-", bytearray(b"beta-"), memoryview(b"gamma-"), b""]
        tr.writelines(parts)
        tr.writelines(iter([big, b"-tail"]))  # queued behind the fast path
        tr.writelines([b"-after", bytearray(b"-queue")])
        expected = b"alpha-beta-gamma-" + big + b"-tail-after-queue"
        assert await read_exactly(loop, peer, len(expected)) == expected
        tr.close()
        assert await proto.lost is None
        peer.close()

    run(loop, main())


# -------------------------------------------------------------- half-close


@pytest.mark.parametrize("kind", KINDS)
def test_write_eof_half_close(loop, kind):
    async def main():
        proto = Rec(loop)
        tr, peer = await make_transport(loop, kind, proto)
        assert tr.can_write_eof()
        big = payload(2 * MiB, seed=4)
        tr.write(b"head")
        tr.write(big)            # mostly queued
        tr.write_eof()           # EOF follows the queue
        assert not tr.is_closing()
        assert await read_to_eof(loop, peer) == b"head" + big
        # The other direction still works.
        await loop.sock_sendall(peer, b"reply after eof")
        assert await proto.wait_bytes(15) == b"reply after eof"
        assert not proto.lost.done()
        peer.shutdown(socket.SHUT_WR)
        assert await proto.lost is None  # eof_received returned None: closed
        assert proto.events.count("eof") == 1
        assert proto.lost_calls == 1
        peer.close()

    run(loop, main())


@pytest.mark.parametrize("kind", KINDS)
def test_eof_received_true_keeps_transport_open(loop, kind):
    async def main():
        proto = Rec(loop, eof_result=True)
        tr, peer = await make_transport(loop, kind, proto)
        await loop.sock_sendall(peer, b"question")
        peer.shutdown(socket.SHUT_WR)
        await proto.eof
        await spin()
        assert not tr.is_closing()
        assert not proto.lost.done()
        assert bytes(proto.data) == b"question"
        big = payload(MiB, seed=5)
        tr.write(b"answer:")
        tr.write(big)
        tr.close()               # flushes, then connection_lost(None)
        assert tr.is_closing()
        assert await read_to_eof(loop, peer) == b"answer:" + big
        assert await proto.lost is None
        assert proto.lost_calls == 1
        peer.close()

    run(loop, main())


@pytest.mark.parametrize("eof_result", [None, False, 0, ""])
@pytest.mark.parametrize("kind", KINDS)
def test_eof_received_falsy_closes(loop, kind, eof_result):
    async def main():
        proto = Rec(loop, eof_result=eof_result)
        tr, peer = await make_transport(loop, kind, proto)
        peer.shutdown(socket.SHUT_WR)
        assert await proto.lost is None
        assert tr.is_closing()
        assert proto.events == ["made", "eof", "lost"]
        assert await read_to_eof(loop, peer) == b""  # our side closed too
        peer.close()

    run(loop, main())


# ------------------------------------------------------------ close / abort


@pytest.mark.parametrize("kind", KINDS)
def test_close_flushes_queue_then_connection_lost(loop, kind):
    async def main():
        proto = Rec(loop)
        tr, peer = await make_transport(loop, kind, proto)
        data = payload(8 * MiB, seed=6)
        for i in range(0, len(data), 100_000):
            tr.write(data[i:i + 100_000])
        assert tr.get_write_buffer_size() > 0  # the peer reads nothing yet
        assert not tr.is_closing()
        tr.close()
        assert tr.is_closing()
        tr.close()  # idempotent
        await spin()
        assert not proto.lost.done()  # not before the queue is flushed
        got = await read_to_eof(loop, peer)
        assert len(got) == len(data)
        assert got == data
        assert await proto.lost is None
        assert proto.lost_calls == 1
        await spin()
        assert proto.lost_calls == 1
        peer.close()

    run(loop, main())


@pytest.mark.parametrize("kind", KINDS)
def test_close_stops_reading_at_once(loop, kind):
    async def main():
        proto = Rec(loop)
        tr, peer = await make_transport(loop, kind, proto)
        await loop.sock_sendall(peer, b"unread")
        tr.close()
        assert await proto.lost is None
        assert "data" not in proto.events
        assert proto.events == ["made", "lost"]
        peer.close()

    run(loop, main())


@pytest.mark.parametrize("kind", KINDS)
def test_abort_drops_queue(loop, kind):
    async def main():
        proto = Rec(loop)
        tr, peer = await make_transport(loop, kind, proto)
        data = payload(32 * MiB, seed=7)
        tr.write(data)
        assert tr.get_write_buffer_size() > MiB  # the peer has read nothing
        tr.abort()
        assert tr.is_closing()
        assert tr.get_write_buffer_size() == 0
        assert await proto.lost is None
        assert proto.lost_calls == 1
        try:
            got = await read_to_eof(loop, peer)
        except ConnectionResetError:
            got = b""
        assert len(got) < len(data)
        assert data.startswith(got)
        tr.abort()  # a second abort/close is harmless
        tr.close()
        await spin()
        assert proto.lost_calls == 1
        peer.close()

    run(loop, main())


# ----------------------------------------------------------- read pausing


@pytest.mark.parametrize("kind", KINDS)
def test_pause_resume_reading(loop, kind):
    async def main():
        proto = Rec(loop)
        tr, peer = await make_transport(loop, kind, proto)
        assert tr.is_reading()
        await loop.sock_sendall(peer, b"one")
        assert await proto.wait_bytes(3) == b"one"
        tr.pause_reading()
        assert not tr.is_reading()
        tr.pause_reading()  # idempotent
        await loop.sock_sendall(peer, b"two")
        sock = tr.get_extra_info("socket")
        for _ in range(1000):
            if inq(sock) == 3:
                break
            await asyncio.sleep(0)
        assert inq(sock) == 3  # readable, but paused
        await spin(20)
        assert bytes(proto.data) == b"one"
        assert proto.events.count("data") == 1
        tr.resume_reading()
        assert tr.is_reading()
        tr.resume_reading()  # idempotent
        assert await proto.wait_bytes(6) == b"onetwo"
        # EOF is not delivered while paused either.
        tr.pause_reading()
        peer.shutdown(socket.SHUT_WR)
        await spin(20)
        assert not proto.eof.done()
        tr.resume_reading()
        assert await proto.lost is None
        assert proto.events[-2:] == ["eof", "lost"]
        tr.pause_reading()  # after close: no error, still not reading
        assert not tr.is_reading()
        peer.close()

    run(loop, main())


@pytest.mark.parametrize("kind", KINDS)
def test_pause_reading_from_another_callback_same_iteration(loop, kind):
    """Two transports readable in the same poll: whichever runs first pauses
    (or closes) the other; the other must get nothing until resumed."""

    async def main():
        protos = [Rec(loop), Rec(loop)]
        pairs = [await make_transport(loop, kind, p) for p in protos]
        trs = [t for t, _ in pairs]
        peers = [p for _, p in pairs]
        first = []

        def make_handler(me):
            other = 1 - me
            orig = protos[me].data_received

            def data_received(data):
                if not first:
                    first.append(me)
                    trs[other].pause_reading()
                orig(data)
            return data_received

        for i in (0, 1):
            protos[i].data_received = make_handler(i)
            trs[i].set_protocol(protos[i])  # pick up the patched method
        # Both readable before the loop polls again.
        peers[0].sendall(b"A")
        peers[1].sendall(b"B")
        for _ in range(1000):
            if all(inq(t.get_extra_info("socket")) for t in trs) or first:
                break
            await asyncio.sleep(0)
        await spin(20)
        assert len(first) == 1
        winner, loser = first[0], 1 - first[0]
        assert bytes(protos[winner].data) == b"AB"[winner:winner + 1]
        assert bytes(protos[loser].data) == b""
        trs[loser].resume_reading()
        assert await protos[loser].wait_bytes(1) == b"AB"[loser:loser + 1]
        for t in trs:
            t.close()
        for p in protos:
            assert await p.lost is None
        for p in peers:
            p.close()

    run(loop, main())


# ---------------------------------------------------------- flow control


@pytest.mark.parametrize("kind", KINDS)
def test_write_buffer_limits(loop, kind):
    async def main():
        proto = Rec(loop)
        tr, peer = await make_transport(loop, kind, proto)
        assert tr.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
        tr.set_write_buffer_limits(high=1000, low=100)
        assert tr.get_write_buffer_limits() == (100, 1000)
        tr.set_write_buffer_limits(high=800)
        assert tr.get_write_buffer_limits() == (200, 800)
        tr.set_write_buffer_limits(low=300)
        assert tr.get_write_buffer_limits() == (300, 1200)
        tr.set_write_buffer_limits()
        assert tr.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
        tr.set_write_buffer_limits(0, 0)
        assert tr.get_write_buffer_limits() == (0, 0)
        with pytest.raises(ValueError):
            tr.set_write_buffer_limits(high=10, low=20)
        with pytest.raises(ValueError):
            tr.set_write_buffer_limits(high=10, low=-1)
        assert tr.get_write_buffer_limits() == (0, 0)
        assert tr.get_write_buffer_size() == 0
        tr.close()
        assert await proto.lost is None
        peer.close()

    run(loop, main())


@pytest.mark.parametrize("kind", KINDS)
def test_pause_resume_writing_at_the_marks(loop, kind):
    async def main():
        high, low = 256 * 1024, 64 * 1024
        proto = Rec(loop)
        tr, peer = await make_transport(loop, kind, proto)
        tr.set_write_buffer_limits(high=high, low=low)
        sizes = []
        orig_pause, orig_resume = proto.pause_writing, proto.resume_writing
        proto.pause_writing = lambda: (sizes.append(("pause", tr.get_write_buffer_size())),
                                       orig_pause())
        proto.resume_writing = lambda: (sizes.append(("resume", tr.get_write_buffer_size())),
                                        orig_resume())
        data = payload(16 * MiB, seed=8)
        chunk = 4096
        pos = 0
        before = None
        # The peer does not read: fill until paused.
        while "pause_writing" not in proto.events:
            assert pos < len(data), "pause_writing never called"
            before = tr.get_write_buffer_size()
            tr.write(data[pos:pos + chunk])
            pos += chunk
        assert proto.events.count("pause_writing") == 1
        assert before <= high  # the write that crossed the mark paused it
        kind_, at = sizes[0]
        assert kind_ == "pause" and at > high
        assert tr.get_write_buffer_size() > high
        # More writes while paused: buffered, no second pause.
        tr.write(data[pos:pos + chunk])
        pos += chunk
        assert proto.events.count("pause_writing") == 1
        assert "resume_writing" not in proto.events
        got = await read_exactly(loop, peer, pos)
        assert got == data[:pos]
        assert proto.events.count("resume_writing") == 1
        assert sizes[1][0] == "resume" and sizes[1][1] <= low
        assert proto.events.index("resume_writing") > proto.events.index("pause_writing")
        assert tr.get_write_buffer_size() == 0
        tr.close()
        assert await proto.lost is None
        peer.close()

    run(loop, main())


def test_write_buffer_size_is_exact(loop):
    """get_write_buffer_size() counts exactly the bytes the transport still
    holds.  On a Unix socketpair every byte the kernel took sits in the peer's
    receive queue, so written == buffered + read by peer + FIONREAD(peer) at
    any moment between callbacks -- including when the transport has sent only
    part of a queued chunk."""

    async def main():
        proto = Rec(loop)
        tr, peer = await make_transport(loop, "unix", proto)
        tr.set_write_buffer_limits(high=0)
        data = payload(4 * MiB, seed=9)
        tr.write(data[:1])      # fast path
        tr.write(data[1:])      # most of it queued as one chunk
        got = bytearray()
        mismatches = []
        for step in range(100_000):
            in_kernel = inq(peer)
            buffered = tr.get_write_buffer_size()
            if len(data) != buffered + len(got) + in_kernel:
                mismatches.append((step, buffered, len(got), in_kernel))
            if len(got) == len(data):
                break
            try:
                got += peer.recv(10_000)   # an odd size: partial chunk sends
            except BlockingIOError:
                pass
            await asyncio.sleep(0)
        assert bytes(got) == data
        assert not mismatches, f"size off at (step, buffered, read, inq): {mismatches[:5]}"
        tr.close()
        assert await proto.lost is None
        peer.close()

    run(loop, main())


# -------------------------------------------------------- BufferedProtocol


class BufRec(asyncio.BufferedProtocol):
    def __init__(self, loop, size):
        self.buf = bytearray(size)
        self.data = bytearray()
        self.hints = []
        self.events = []
        self.made = loop.create_future()
        self.lost = loop.create_future()
        self.eof = loop.create_future()

    def connection_made(self, transport):
        self.events.append("made")
        self.transport = transport
        self.made.set_result(transport)

    def get_buffer(self, sizehint):
        self.hints.append(sizehint)
        return memoryview(self.buf)

    def buffer_updated(self, nbytes):
        assert 0 < nbytes <= len(self.buf)
        self.events.append("data")
        self.data += self.buf[:nbytes]
        self.buf[:nbytes] = b"\0" * nbytes  # scribble: we own the buffer again

    def eof_received(self):
        self.events.append("eof")
        self.eof.set_result(None)

    def connection_lost(self, exc):
        self.events.append("lost")
        self.lost.set_result(exc)


@pytest.mark.parametrize("size", [1, 7, 65536])
@pytest.mark.parametrize("kind", KINDS)
def test_buffered_protocol(loop, kind, size):
    async def main():
        proto = BufRec(loop, size)
        tr, peer = await make_transport(loop, kind, proto)
        data = payload(256 * 1024 if size < 64 else 4 * MiB, seed=10)
        await loop.sock_sendall(peer, data)
        peer.shutdown(socket.SHUT_WR)
        assert await proto.lost is None
        assert bytes(proto.data) == data
        assert proto.events[0] == "made"
        assert proto.events[-2:] == ["eof", "lost"]
        assert all(isinstance(h, int) for h in proto.hints)
        # Replies still go out on a buffered-protocol transport.
        peer.close()

    run(loop, main())


# ------------------------------------------------------ protocol switching


@pytest.mark.parametrize("kind", KINDS)
def test_set_protocol_mid_stream(loop, kind):
    async def main():
        first = Rec(loop)
        second = Rec(loop)
        third = BufRec(loop, 5)
        third.made.set_result(None)
        tr, peer = await make_transport(loop, kind, first)
        assert tr.get_protocol() is first
        await loop.sock_sendall(peer, b"to-first")
        await first.wait_bytes(8)
        tr.set_protocol(second)
        assert tr.get_protocol() is second
        await loop.sock_sendall(peer, b"to-second")
        assert await second.wait_bytes(9) == b"to-second"
        tr.set_protocol(third)  # switching to a BufferedProtocol
        assert tr.get_protocol() is third
        await loop.sock_sendall(peer, b"to-third, in pieces")
        peer.shutdown(socket.SHUT_WR)
        assert await third.lost is None
        assert bytes(third.data) == b"to-third, in pieces"
        assert bytes(first.data) == b"to-first"
        assert bytes(second.data) == b"to-second"
        assert first.events == ["made", "data"]
        assert "lost" not in second.events and "made" not in second.events
        assert third.events[-2:] == ["eof", "lost"]
        peer.close()

    run(loop, main())


# ------------------------------------------------- through create_server


def test_server_and_client_transports_echo(loop):
    """create_server/create_connection transports on 127.0.0.1 port 0."""

    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            self.transport.write(data)

        def eof_received(self):
            self.transport.write(b"<bye>")
            return False  # close after the flush

    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        addr = server.sockets[0].getsockname()
        proto = Rec(loop)  # eof_received -> None: closes on the server's EOF
        tr, _ = await loop.create_connection(lambda: proto, *addr)
        assert tr.get_extra_info("peername") == addr
        data = payload(3 * MiB, seed=11)
        tr.write(data)
        tr.write_eof()
        assert await proto.lost is None
        assert bytes(proto.data) == data + b"<bye>"
        tr.close()
        server.close()
        await server.wait_closed()

    run(loop, main())
