"""Large messages through stream transports: reads of every size, the write
queue, vectored writes.

What the transport does with a large message is invisible to a protocol
except through what arrives, how much memory it takes and how the write
buffer is counted; so these tests check exactly that: every byte arrives in
order for messages from 1 byte to 4 MiB (read sizes adapting up and down in
one connection); a ``bytes`` or a view of one waits in the write queue
without a copy (traced memory), while a ``bytearray`` or a view of one is
sent as it was when ``write()`` returned; thousands of small queued writes
go out in order with the buffer size exact; ``writelines`` sends its
buffers as they are, a partial send included; non-byte memoryviews are sent
whole after a partial send; ``get_extra_info`` answers after the close what
it would have answered before.

The peer is a raw socket; nothing here sleeps to synchronise.
"""

from __future__ import annotations

import array
import asyncio
import sys
import tracemalloc

import pytest

from ._netutil import run
from .test_stream_transport import KINDS, MiB, Rec, inq, make_transport, payload, read_exactly

pytestmark = pytest.mark.timeout(180)

# Around the transport's read sizes (8 and 32 KiB, 128 KiB, the 256 KiB spare
# buffer) and well beyond them; up, down and up again.
SIZES = [1, 1000, 4095, 4096, 8191, 8192, 8193, 8208, 8209, 16 * 1024 + 1, 32767, 32 * 1024 + 16,
         65536, 100 * 1024,
         128 * 1024 - 200, 128 * 1024 + 1, 256 * 1024, 300 * 1024, MiB, 4 * MiB,
         100, 20_000, 3 * MiB, 7, 256 * 1024 + 1]

NOT_COPIED = pytest.mark.skip_loops(
    "asyncio", reason="asyncio (3.11) copies every queued write into one bytearray")

# 3.12's asyncio queues the caller's buffer itself (zero-copy writes, CPython
# gh-91166), so a bytearray changed after write() goes out changed, as on uvloop.
MUTABLE_COPIED_BY = ["uvloop"] + (["asyncio"] if sys.version_info >= (3, 12) else [])


def assert_same_bytes(got, expected):
    """``got == expected`` for messages of megabytes: on a mismatch name the
    first differing offset (pytest's own diff of such bytes takes minutes)."""
    if got == expected:
        return
    at = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
    pytest.fail(f"{len(got)} bytes arrived for {len(expected)}; first difference at offset {at}: "
                f"{bytes(got[at:at + 16])!r} for {bytes(expected[at:at + 16])!r}", pytrace=False)


class Echo(asyncio.Protocol):
    def __init__(self, loop):
        self.made = loop.create_future()
        self.chunks = 0
        self.non_bytes = 0

    def connection_made(self, transport):
        self.transport = transport
        self.made.set_result(transport)

    def data_received(self, data):
        self.chunks += 1
        if type(data) is not bytes:
            self.non_bytes += 1
        self.transport.write(data)

    def connection_lost(self, exc):
        pass


@pytest.mark.parametrize("kind", KINDS)
def test_echo_of_every_size(loop, kind):
    """One connection echoes messages from 1 byte to 4 MiB, sizes going up
    and down, so the transport's reads grow and shrink; the echo comes back
    whole every time, and data_received only ever sees bytes."""

    async def main():
        proto = Echo(loop)
        tr, peer = await make_transport(loop, kind, proto)
        for i, size in enumerate(SIZES):
            data = payload(size, seed=i)
            back = asyncio.ensure_future(read_exactly(loop, peer, size))
            await loop.sock_sendall(peer, data)
            assert await back == data, f"message {i} of {size} bytes"
        assert proto.non_bytes == 0
        assert proto.chunks >= len(SIZES)
        tr.close()
        peer.close()

    run(loop, main())


async def _queued_growth(loop, kind, make_data):
    """Write what make_data() gives while the peer reads nothing; the traced
    memory the write added, and the bytes the peer then reads."""
    proto = Rec(loop)
    tr, peer = await make_transport(loop, kind, proto)
    tr.set_write_buffer_limits(high=64 * MiB)
    tracemalloc.start()
    try:
        data, expected = make_data()
        before = tracemalloc.get_traced_memory()[0]
        tr.write(data)
        grown = tracemalloc.get_traced_memory()[0] - before
        assert tr.get_write_buffer_size() > 0, "all of it went at once: the test proves nothing"
        if isinstance(data, memoryview):
            data.release()      # the caller's view: the transport must hold its own
        del data
    finally:
        tracemalloc.stop()
    got = await read_exactly(loop, peer, len(expected))
    tr.close()
    assert await proto.lost is None
    peer.close()
    return grown, got, expected


@NOT_COPIED
@pytest.mark.parametrize("kind", KINDS)
def test_queued_bytes_is_not_copied(loop, kind):
    def make():
        big = payload(16 * MiB, seed=5)
        return big, big

    grown, got, expected = run(loop, _queued_growth(loop, kind, make))
    assert grown < MiB, f"write() of 16 MiB bytes allocated {grown} bytes"
    assert_same_bytes(got, expected)


@NOT_COPIED
@pytest.mark.parametrize("kind", KINDS)
def test_queued_view_of_bytes_is_not_copied_and_outlives_the_callers_view(loop, kind):
    def make():
        big = payload(16 * MiB + 10, seed=6)
        return memoryview(big)[10:], big[10:]

    grown, got, expected = run(loop, _queued_growth(loop, kind, make))
    assert grown < MiB, f"write() of a 16 MiB view of bytes allocated {grown} bytes"
    assert_same_bytes(got, expected)


@pytest.mark.skip_loops(*MUTABLE_COPIED_BY, reason="this loop queues a reference to the caller's bytearray")
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("how", ["bytearray", "view-of-bytearray", "writelines"])
def test_mutable_buffers_are_sent_as_they_were(loop, kind, how):
    """A bytearray (or a view of one) changed right after write() or
    writelines() returned goes out as it was, also when most of it waited
    in the queue."""

    async def main():
        proto = Rec(loop)
        tr, peer = await make_transport(loop, kind, proto)
        tr.set_write_buffer_limits(high=64 * MiB)
        buf = bytearray(payload(4 * MiB, seed=7))
        expected = bytes(buf)
        if how == "bytearray":
            tr.write(buf)
        elif how == "view-of-bytearray":
            tr.write(memoryview(buf))
        else:
            head = payload(3 * MiB, seed=8)
            tr.writelines([head, buf, b"-tail"])
            expected = head + expected + b"-tail"
        assert tr.get_write_buffer_size() > 0
        buf[:] = b"\0" * len(buf)         # same size: allowed even while exported
        assert_same_bytes(await read_exactly(loop, peer, len(expected)), expected)
        tr.close()
        assert await proto.lost is None
        peer.close()

    run(loop, main())


@pytest.mark.skip_loops("asyncio", reason="asyncio (3.11) slices a partly sent memoryview by items, "
                                          "not bytes (CPython gh-135862)")
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("how", ["write", "writelines"])
def test_partly_sent_non_byte_view_goes_whole(loop, kind, how):
    """A memoryview whose items are not bytes (array('H'), a 2-D cast) that
    the kernel takes in part is continued at the right byte."""

    async def main():
        proto = Rec(loop)
        tr, peer = await make_transport(loop, kind, proto)
        tr.set_write_buffer_limits(high=64 * MiB)
        words = array.array("H", range(65536)) * 24          # 3 MiB
        flat = memoryview(words)
        square = memoryview(payload(2048 * 1024, seed=9)).cast("B", (1024, 2048))
        expected = words.tobytes() + square.tobytes()
        if how == "write":
            tr.write(flat)
            tr.write(square)
        else:
            tr.writelines([flat, square])
        assert tr.get_write_buffer_size() > 0
        assert_same_bytes(await read_exactly(loop, peer, len(expected)), expected)
        tr.close()
        assert await proto.lost is None
        peer.close()

    run(loop, main())


def test_many_small_queued_writes_in_order_and_counted(loop):
    """Thousands of small writes queued behind a full socket leave in order
    (many writev calls of many chunks each), the buffer size exact at every
    step (a Unix socketpair: every byte sent sits in the peer's queue)."""

    async def main():
        proto = Rec(loop)
        tr, peer = await make_transport(loop, "unix", proto)
        tr.set_write_buffer_limits(high=64 * MiB)
        first = payload(2 * MiB, seed=10)
        tr.write(first)                     # fills the socket, queues the rest
        small = [(b"%06d|" % i) * (1 + i % 5) for i in range(20_000)]
        for i, piece in enumerate(small):
            if i % 3 == 0:
                tr.write(piece)
            elif i % 3 == 1:
                tr.write(memoryview(piece))
            else:
                tr.write(bytearray(piece))
        expected = first + b"".join(small)
        got = bytearray()
        while len(got) < len(expected):
            assert tr.get_write_buffer_size() + len(got) + inq(peer) == len(expected)
            try:
                got += peer.recv(50_000)
            except BlockingIOError:
                await asyncio.sleep(0)
        assert_same_bytes(bytes(got), expected)
        assert tr.get_write_buffer_size() == 0
        tr.close()
        assert await proto.lost is None
        peer.close()

    run(loop, main())


@pytest.mark.parametrize("kind", KINDS)
def test_writelines_shapes(loop, kind):
    """writelines with few and many items, odd buffer types, empty items,
    a tuple and a generator, at once and behind a queue: all in order."""

    async def main():
        proto = Rec(loop)
        tr, peer = await make_transport(loop, kind, proto)
        expected = bytearray()

        def put(items, as_given=None):
            tr.writelines(as_given if as_given is not None else items)
            for item in items:
                expected.extend(bytes(item))

        put([b"a", b"", bytearray(b"b"), memoryview(b"cd")])          # vectored, at once
        put([b"%d," % i for i in range(200)])                         # many items: joined
        put([array.array("B", b"xyz"), b"!"])                          # odd type: joined
        items = (b"t1", b"t2")
        put(list(items), as_given=items)                               # a tuple
        put([b"g1", b"g2"], as_given=(x for x in [b"g1", b"g2"]))     # a generator
        put([payload(3 * MiB, seed=11), bytearray(b"after"), b"-end"])  # partly sent
        put([b"queued", memoryview(b"-behind")])                       # behind the queue
        put([])
        assert await read_exactly(loop, peer, len(expected)) == bytes(expected)
        tr.close()
        assert await proto.lost is None
        peer.close()

    run(loop, main())


@pytest.mark.skip_loops("uvloop", reason="uvloop reads sockname from the socket when asked, and after the "
                                         "close raises AttributeError; asyncio (the reference) answers")
@pytest.mark.parametrize("kind", KINDS)
def test_extra_info_answers_after_close(loop, kind):
    """sockname and the socket wrapper, first asked for after the connection
    is gone, answer what they would have before; the wrapper is one object."""

    async def main():
        proto = Rec(loop)
        tr, peer = await make_transport(loop, kind, proto)
        want_sockname = peer.getpeername()
        tr.close()
        assert await proto.lost is None
        assert tr.get_extra_info("sockname") == want_sockname
        sock = tr.get_extra_info("socket")
        assert sock is not None and sock is tr.get_extra_info("socket")
        assert tr.get_extra_info("peername") == peer.getsockname()
        peer.close()

    run(loop, main())


@pytest.mark.skip_loops("asyncio", reason="asyncio (3.11) runs the loss a second time and reports "
                                          "AttributeError on the socket it already closed")
@pytest.mark.parametrize("how", ["close", "abort"])
def test_ending_from_resume_writing_loses_the_connection_once(loop, how):
    """resume_writing() called as the queue drains may close (or abort) the
    transport: connection_lost runs once and nothing reaches the exception
    handler."""

    async def main():
        errors = []
        loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))

        class EndOnResume(Rec):
            def resume_writing(self):
                super().resume_writing()
                getattr(self.transport, how)()

        proto = EndOnResume(loop)
        tr, peer = await make_transport(loop, "unix", proto)
        data = payload(4 * MiB, seed=12)
        tr.write(data)
        assert "pause_writing" in proto.events
        got = bytearray()
        while not proto.lost.done():
            try:
                got += peer.recv(MiB)
            except BlockingIOError:
                await asyncio.sleep(0)
        assert await proto.lost is None
        for _ in range(10):
            await asyncio.sleep(0)      # a second loss would be scheduled by now
        assert proto.lost_calls == 1
        assert errors == []
        if how == "close":
            assert bytes(got) + await read_exactly(loop, peer, len(data) - len(got)) == data
        peer.close()

    run(loop, main())
