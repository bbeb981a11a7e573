"""pyloop's TLS layer driven directly: ciphertext cut at every kind of boundary.

SSLProtocol feeds OpenSSL whole TLS records only (a partial record waits in its buffer for its end), so
the way the stream cuts the ciphertext must never change what the application receives.  These tests
put a SSLProtocol on a fake stream, do the handshake with an in-memory peer (ssl.MemoryBIO), and feed
it the peer's ciphertext in chunks of seeded random sizes -- one byte at a time, across record
headers, with application data in the same chunk as the handshake's last flight -- then compare
what the application protocol got with what the peer sent.  pyloop only: this is its own machinery.
"""

import asyncio
import random
import ssl

import pytest

from ._netutil import tls

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skip_loops("asyncio", "uvloop", reason="drives pyloop's own TLS layer directly"),
]

__all__ = ["tls"]  # fixture, used by name


class FakeStream:
    """What SSLProtocol needs of the stream below: write, flow control, close."""

    def __init__(self):
        self.sent = bytearray()
        self.closed = False
        self.forced = None
        self.reading = True

    def write(self, data):
        self.sent += data

    def take(self):
        out, self.sent = bytes(self.sent), bytearray()
        return out

    def pause_reading(self):
        self.reading = False

    def resume_reading(self):
        self.reading = True

    def close(self):
        self.closed = True

    def _force_close(self, exc):
        self.forced = exc
        self.closed = True

    def get_extra_info(self, name, default=None):
        return default


class App(asyncio.Protocol):
    def __init__(self):
        self.data = bytearray()
        self.events = []

    def connection_made(self, transport):
        self.transport = transport
        self.events.append("made")

    def data_received(self, data):
        self.data += data

    def eof_received(self):
        self.events.append("eof")

    def connection_lost(self, exc):
        self.events.append(("lost", exc))


def feed(proto, data, sizes):
    """Hand data to the protocol the way the socket transport does, in chunks of the given sizes."""
    pos = 0
    while pos < len(data):
        n = min(next(sizes), len(data) - pos)
        span = proto.get_buffer(-1)
        memoryview(span)[:n] = data[pos:pos + n]
        proto.buffer_updated(n)
        pos += n


def random_sizes(seed, low=1, high=700):
    rng = random.Random(seed)
    while True:
        yield rng.randint(low, high)


def settle(loop):
    """Run the callbacks the protocol queued (the first read after the handshake...)."""
    loop.run_until_complete(asyncio.sleep(0))
    loop.run_until_complete(asyncio.sleep(0))


def handshake(loop, tls, sizes, *, first_data=b""):
    """A server SSLProtocol on a FakeStream and a client MemoryBIO peer, connected; first_data goes
    out with the client's last flight."""
    from pyloop._transports.tls_protocol import SSLProtocol

    app, stream = App(), FakeStream()
    waiter = loop.create_future()
    proto = SSLProtocol(loop, app, tls.server_context(), waiter, server_side=True)
    proto.connection_made(stream)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    peer = tls.client_context().wrap_bio(inc, out, server_hostname="localhost")
    while True:
        try:
            peer.do_handshake()
            break
        except ssl.SSLWantReadError:
            feed(proto, out.read(), sizes)
            inc.write(stream.take())
    if first_data:
        peer.write(first_data)
    feed(proto, out.read(), sizes)  # the Finished message, and the first data with it
    settle(loop)
    assert waiter.done() and waiter.exception() is None
    inc.write(stream.take())  # session tickets
    return proto, stream, app, peer, inc, out


@pytest.mark.parametrize("seed", range(8))
def test_records_cut_anywhere_arrive_whole(loop, tls, seed):
    rng = random.Random(1000 + seed)
    sizes = random_sizes(seed, 1, rng.choice([1, 7, 300, 5000, 40000]))
    first = bytes(rng.randrange(256) for _ in range(rng.randint(1, 3000)))
    proto, stream, app, peer, inc, out = handshake(loop, tls, sizes, first_data=first)
    sent = bytearray(first)
    for _ in range(30):
        chunk = bytes(rng.randrange(256) for _ in range(rng.choice([1, 100, 5000, 16384, 40000])))
        peer.write(chunk)
        sent += chunk
    feed(proto, out.read(), sizes)
    settle(loop)
    assert bytes(app.data) == bytes(sent)
    # and back: what the application writes reaches the peer intact
    app.transport.write(b"reply" * 1000)
    inc.write(stream.take())
    assert peer.read(10000) == b"reply" * 1000


def test_one_byte_at_a_time_then_close_notify(loop, tls):
    sizes = random_sizes(0, 1, 1)
    proto, stream, app, peer, inc, out = handshake(loop, tls, random_sizes(1), first_data=b"hi")
    peer.write(b"byte by byte")
    try:
        peer.unwrap()
    except ssl.SSLWantReadError:
        pass
    feed(proto, out.read(), sizes)
    settle(loop)
    assert bytes(app.data) == b"hibyte by byte"
    assert "eof" in app.events
    # our close_notify answered theirs: the shutdown is complete and the stream closed
    inc.write(stream.take())
    peer.unwrap()
    assert stream.closed and stream.forced is None


def test_garbage_after_the_handshake_is_a_fatal_error(loop, tls):
    proto, stream, app, peer, inc, out = handshake(loop, tls, random_sizes(2))
    reports = []
    loop.set_exception_handler(lambda lp, ctx: reports.append(ctx))
    feed(proto, b"GET / HTTP/1.1\r\nHost: example\r\n\r\n" * 3, random_sizes(3))
    settle(loop)
    assert isinstance(stream.forced, ssl.SSLError)
    assert reports == []  # an SSLError is an OSError: the connection's news, not the loop's
    assert app.data == b""


def test_buffer_updated_beyond_the_buffer_is_refused(loop, tls):
    proto, stream, app, peer, inc, out = handshake(loop, tls, random_sizes(4))
    span = proto.get_buffer(-1)
    with pytest.raises(ValueError, match="does not match the buffer"):
        proto.buffer_updated(len(span) + 1)
    with pytest.raises(ValueError, match="does not match the buffer"):
        proto.buffer_updated(0)
