"""connect_read_pipe / connect_write_pipe, on asyncio and pyloop.

Every test runs on stock asyncio (the reference) and on pyloop.

Determinism: no sleeps.  Tests wait on futures fed by protocol callbacks,
bounded by generous timeouts; "nothing was delivered" is asserted only for
bytes already in a pipe (``os.write`` returned) after the loop polled a few
times.
"""

import asyncio
import errno
import gc
import io
import os
import socket
import stat
import sys
import tempfile
import tty
import warnings

import pytest

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(sys.platform == 'win32', reason='POSIX pipes'),
]

TIMEOUT = 30.0
BIG = 4 * 1024 * 1024 + 123       # far more than a pipe buffer (64 KiB)


def run(loop, aw, timeout=TIMEOUT):
    return loop.run_until_complete(asyncio.wait_for(aw, timeout))


async def spin(n=5):
    """Let the loop poll and run callbacks a few times."""
    for _ in range(n):
        await asyncio.sleep(0)


class Fds:
    """Raw fds a test made; closes whatever is still open at teardown."""

    def __init__(self):
        self.fds = []

    def add(self, *fds):
        self.fds.extend(fds)
        return fds if len(fds) > 1 else fds[0]

    def pipe(self):
        return self.add(*os.pipe())

    def openpty(self):
        return self.add(*os.openpty())

    def close(self, fd):
        os.close(fd)
        self.fds.remove(fd)

    def close_all(self):
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass


@pytest.fixture
def fds():
    f = Fds()
    yield f
    f.close_all()


def wrap(fd, mode):
    """A pipe object for the transport, which takes ownership of the fd."""
    return io.open(fd, mode, buffering=0, closefd=True)


class Reader(asyncio.Protocol):
    def __init__(self):
        loop = asyncio.get_running_loop()
        self.transport = None
        self.events = []
        self.data = bytearray()
        self.made = loop.create_future()
        self.lost = loop.create_future()
        self._want = None

    def connection_made(self, transport):
        self.transport = transport
        self.events.append('made')
        self.made.set_result(None)

    def data_received(self, data):
        assert isinstance(data, bytes)
        assert 'eof' not in self.events and not self.lost.done()
        if not self.events or self.events[-1] != 'data':
            self.events.append('data')
        self.data += data
        if self._want is not None and len(self.data) >= self._want[0]:
            fut, self._want = self._want[1], None
            fut.set_result(None)

    async def wait_bytes(self, n):
        if len(self.data) >= n:
            return
        fut = asyncio.get_running_loop().create_future()
        self._want = (n, fut)
        await fut

    def eof_received(self):
        self.events.append('eof')

    def connection_lost(self, exc):
        assert not self.lost.done(), 'connection_lost called twice'
        self.events.append('lost')
        self.lost.set_result(exc)


class Writer(asyncio.BaseProtocol):
    def __init__(self):
        loop = asyncio.get_running_loop()
        self.transport = None
        self.events = []
        self.lost = loop.create_future()
        self.resumed_fut = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport
        self.events.append('made')

    def pause_writing(self):
        self.events.append('pause')

    def resume_writing(self):
        self.events.append('resume')
        if not self.resumed_fut.done():
            self.resumed_fut.set_result(None)

    def connection_lost(self, exc):
        assert not self.lost.done(), 'connection_lost called twice'
        self.events.append('lost')
        self.lost.set_result(exc)


def payload(n):
    block = bytes(range(256)) * 64
    return (block * (n // len(block) + 1))[:n]


# ---- reading ----------------------------------------------------------------


def test_read_data_then_eof(loop, fds):
    r, w = fds.pipe()
    pipe = wrap(r, 'rb')
    fds.fds.remove(r)

    async def main():
        tr, proto = await loop.connect_read_pipe(Reader, pipe)
        assert proto.events == ['made'] and proto.transport is tr
        assert not os.get_blocking(r)
        assert tr.get_extra_info('pipe') is pipe
        assert tr.is_reading() and not tr.is_closing()
        os.write(w, b'hello ')
        await proto.wait_bytes(6)
        os.write(w, b'world')
        await proto.wait_bytes(11)
        fds.close(w)
        assert await proto.lost is None
        assert bytes(proto.data) == b'hello world'
        assert proto.events == ['made', 'data', 'eof', 'lost']
        assert tr.is_closing()
        assert pipe.closed          # the transport owned it

    run(loop, main())


def test_read_large_stream(loop, fds):
    r, w = fds.pipe()
    data = payload(BIG)

    async def main():
        rt, reader = await loop.connect_read_pipe(Reader, wrap(r, 'rb'))
        wt, writer = await loop.connect_write_pipe(Writer, wrap(w, 'wb'))
        fds.fds[:] = []
        wt.write(data)
        wt.close()
        assert await reader.lost is None
        assert await writer.lost is None
        assert bytes(reader.data) == data

    run(loop, main())


def test_read_fifo(loop):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, 'fifo')
        os.mkfifo(path)
        r = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        w = os.open(path, os.O_WRONLY | os.O_NONBLOCK)

        async def main():
            tr, proto = await loop.connect_read_pipe(Reader, wrap(r, 'rb'))
            os.write(w, b'through the fifo')
            os.close(w)
            assert await proto.lost is None
            assert bytes(proto.data) == b'through the fifo'
            assert proto.events == ['made', 'data', 'eof', 'lost']

        run(loop, main())


def test_read_socket(loop):
    a, b = socket.socketpair()

    async def main():
        tr, proto = await loop.connect_read_pipe(Reader, a)
        b.sendall(b'sock data')
        b.close()
        assert await proto.lost is None
        assert bytes(proto.data) == b'sock data'
        assert a.fileno() == -1

    run(loop, main())


def test_pause_and_resume_reading(loop, fds):
    r, w = fds.pipe()

    async def main():
        tr, proto = await loop.connect_read_pipe(Reader, wrap(r, 'rb'))
        fds.fds.remove(r)
        tr.pause_reading()
        tr.pause_reading()
        assert not tr.is_reading()
        os.write(w, b'held back')
        await spin(10)
        assert proto.data == b''
        tr.resume_reading()
        tr.resume_reading()
        assert tr.is_reading()
        await proto.wait_bytes(9)
        assert bytes(proto.data) == b'held back'
        tr.close()
        assert not tr.is_reading()
        assert await proto.lost is None

    run(loop, main())


def test_close_reader_calls_connection_lost_once(loop, fds):
    r, w = fds.pipe()

    async def main():
        tr, proto = await loop.connect_read_pipe(Reader, wrap(r, 'rb'))
        fds.fds.remove(r)
        tr.close()
        assert tr.is_closing()
        assert not proto.lost.done()     # from the loop, not from close()
        tr.close()
        assert await proto.lost is None
        await spin()
        assert proto.events == ['made', 'lost']
        tr.resume_reading()
        tr.pause_reading()

    run(loop, main())


def test_read_pipe_rejects_regular_file(loop):
    with tempfile.TemporaryFile() as f:
        with pytest.raises(ValueError, match='Pipe transport is for pipes/sockets only'):
            run(loop, loop.connect_read_pipe(Reader, f))
        assert not f.closed          # not taken over
        f.write(b'still usable')


def test_write_pipe_rejects_regular_file(loop):
    with tempfile.TemporaryFile() as f:
        with pytest.raises(ValueError, match='Pipe transport is only for '
                                             'pipes, sockets and character devices'):
            run(loop, loop.connect_write_pipe(Writer, f))
        assert not f.closed


# ---- writing ----------------------------------------------------------------


def test_write_small_goes_out_at_once(loop, fds):
    r, w = fds.pipe()

    async def main():
        tr, proto = await loop.connect_write_pipe(Writer, wrap(w, 'wb'))
        fds.fds.remove(w)
        assert proto.events == ['made'] and proto.transport is tr
        assert not os.get_blocking(w)
        assert tr.can_write_eof()
        tr.write(b'abc')
        tr.write(bytearray(b'def'))
        tr.write(memoryview(b'xghix')[1:4])
        tr.writelines([b'jk', bytearray(b'l'), memoryview(b'm')])
        tr.write(b'')
        assert tr.get_write_buffer_size() == 0      # the fast path took it
        assert os.read(r, 100) == b'abcdefghijklm'
        tr.close()
        assert await proto.lost is None
        assert os.read(r, 100) == b''               # EOF: write end closed

    run(loop, main())


def test_close_flushes_everything_first(loop, fds):
    r, w = fds.pipe()
    data = payload(BIG)

    async def main():
        tr, proto = await loop.connect_write_pipe(Writer, wrap(w, 'wb'))
        fds.fds.remove(w)
        tr.write(data)
        assert 0 < tr.get_write_buffer_size() < len(data)
        assert proto.events == ['made', 'pause']
        tr.close()
        assert tr.is_closing()
        tr.write(b'ignored after close')
        rt, reader = await loop.connect_read_pipe(Reader, wrap(r, 'rb'))
        fds.fds.remove(r)
        assert await proto.lost is None
        assert await reader.lost is None
        assert bytes(reader.data) == data
        assert proto.events == ['made', 'pause', 'resume', 'lost']

    run(loop, main())


def test_write_eof_flushes_then_reader_sees_eof(loop, fds):
    r, w = fds.pipe()
    data = payload(300000)

    async def main():
        tr, proto = await loop.connect_write_pipe(Writer, wrap(w, 'wb'))
        rt, reader = await loop.connect_read_pipe(Reader, wrap(r, 'rb'))
        fds.fds[:] = []
        tr.write(data)
        tr.write_eof()
        assert tr.is_closing()
        tr.write_eof()
        assert await reader.lost is None
        assert reader.events == ['made', 'data', 'eof', 'lost']
        assert bytes(reader.data) == data
        assert await proto.lost is None

    run(loop, main())


def test_queued_data_is_a_private_copy(loop, fds):
    r, w = fds.pipe()

    async def main():
        tr, proto = await loop.connect_write_pipe(Writer, wrap(w, 'wb'))
        fds.fds.remove(w)
        tr.write(payload(200000))          # fills the pipe; the rest queues
        assert tr.get_write_buffer_size() > 0
        buf = bytearray(b'original')
        tr.write(buf)
        buf[:] = b'mutated!'
        tr.close()
        rt, reader = await loop.connect_read_pipe(Reader, wrap(r, 'rb'))
        fds.fds.remove(r)
        await reader.lost
        assert bytes(reader.data[-8:]) == b'original'
        assert len(reader.data) == 200008

    run(loop, main())


def test_write_flow_control(loop, fds):
    r, w = fds.pipe()

    async def main():
        tr, proto = await loop.connect_write_pipe(Writer, wrap(w, 'wb'))
        fds.fds.remove(w)
        tr.set_write_buffer_limits(high=1000, low=100)
        assert tr.get_write_buffer_limits() == (100, 1000)
        tr.write(payload(1 << 20))
        assert proto.events == ['made', 'pause']
        tr.write(b'more')
        assert proto.events == ['made', 'pause']
        # Drain from the loop until resume_writing comes.
        rt, reader = await loop.connect_read_pipe(Reader, wrap(r, 'rb'))
        fds.fds.remove(r)
        await proto.resumed_fut
        assert tr.get_write_buffer_size() <= 100
        assert proto.events == ['made', 'pause', 'resume']
        tr.close()
        await reader.lost
        assert len(reader.data) == (1 << 20) + 4

    run(loop, main())


def test_set_write_buffer_limits(loop, fds):
    r, w = fds.pipe()

    async def main():
        tr, proto = await loop.connect_write_pipe(Writer, wrap(w, 'wb'))
        fds.fds.remove(w)
        assert tr.get_write_buffer_limits() == (16384, 65536)
        with pytest.raises(ValueError, match='must be >= low'):
            tr.set_write_buffer_limits(high=1, low=2)
        tr.set_write_buffer_limits(high=400)
        assert tr.get_write_buffer_limits() == (100, 400)
        tr.set_write_buffer_limits(low=50)
        assert tr.get_write_buffer_limits() == (50, 200)
        # Lowering the mark below what is queued pauses at once.
        tr.write(payload(70000))
        assert tr.get_write_buffer_size() > 0
        tr.set_write_buffer_limits(high=10000)
        tr.set_write_buffer_limits(high=1)
        assert proto.events.count('pause') == 1
        tr.abort()
        await proto.lost

    run(loop, main())


def test_abort_drops_queued_data(loop, fds):
    r, w = fds.pipe()

    async def main():
        tr, proto = await loop.connect_write_pipe(Writer, wrap(w, 'wb'))
        fds.fds.remove(w)
        tr.write(payload(BIG))
        tr.abort()
        assert tr.is_closing()
        assert tr.get_write_buffer_size() == 0
        tr.abort()
        tr.close()
        assert await proto.lost is None
        await spin()
        assert proto.events.count('lost') == 1
        got = b''
        while True:
            chunk = os.read(r, 1 << 16)
            if not chunk:
                break
            got += chunk
        assert 0 < len(got) < BIG
        assert got == payload(len(got))

    run(loop, main())


def test_write_after_loss_is_ignored(loop, fds, caplog):
    r, w = fds.pipe()

    async def main():
        tr, proto = await loop.connect_write_pipe(Writer, wrap(w, 'wb'))
        fds.fds.remove(w)
        tr.close()
        await proto.lost
        for _ in range(10):
            tr.write(b'late')
        assert tr.get_write_buffer_size() == 0
        assert os.read(r, 100) == b''

    run(loop, main())
    assert any('pipe closed by peer' in r.getMessage() for r in caplog.records)


@pytest.mark.skip_loops('asyncio', reason='asyncio asserts (AssertionError) instead')
def test_write_rejects_non_bytes(loop, fds):
    r, w = fds.pipe()

    async def main():
        tr, proto = await loop.connect_write_pipe(Writer, wrap(w, 'wb'))
        fds.fds.remove(w)
        for bad in ('text', 1, None):
            with pytest.raises(TypeError, match='bytes-like'):
                tr.write(bad)
        tr.close()
        await proto.lost

    run(loop, main())


# ---- the reading side going away ---------------------------------------------


def test_reader_closed_while_idle(loop, fds):
    r, w = fds.pipe()

    async def main():
        tr, proto = await loop.connect_write_pipe(Writer, wrap(w, 'wb'))
        fds.fds.remove(w)
        tr.write(b'taken at once')
        fds.close(r)
        assert await proto.lost is None     # nothing was lost
        assert tr.is_closing()

    run(loop, main())


def test_reader_closed_with_data_queued(loop, fds):
    r, w = fds.pipe()

    async def main():
        tr, proto = await loop.connect_write_pipe(Writer, wrap(w, 'wb'))
        fds.fds.remove(w)
        tr.write(payload(BIG))
        assert tr.get_write_buffer_size() > 0
        fds.close(r)
        exc = await proto.lost
        assert isinstance(exc, BrokenPipeError)
        assert tr.get_write_buffer_size() == 0
        await spin()
        assert proto.events.count('lost') == 1

    run(loop, main())


def test_reader_closed_while_closing(loop, fds):
    r, w = fds.pipe()

    async def main():
        tr, proto = await loop.connect_write_pipe(Writer, wrap(w, 'wb'))
        fds.fds.remove(w)
        tr.write(payload(BIG))
        tr.close()                 # flushing...
        fds.close(r)               # ...but nobody reads any more
        assert isinstance(await proto.lost, BrokenPipeError)

    run(loop, main())


def test_socket_peer_closed(loop):
    a, b = socket.socketpair()

    async def main():
        tr, proto = await loop.connect_write_pipe(Writer, wrap(a.detach(), 'wb'))
        tr.write(b'1')
        assert await loop.sock_recv(b, 10) == b'1'
        b.close()
        assert await proto.lost is None

    b.setblocking(False)
    run(loop, main())


# ---- ptys ---------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, 'openpty'), reason='needs os.openpty')
def test_pty_write_and_read(loop, fds):
    master, slave = fds.openpty()
    tty.setraw(slave)
    slave_w = os.dup(slave)

    async def main():
        assert stat.S_ISCHR(os.fstat(slave).st_mode)
        rt, reader = await loop.connect_read_pipe(Reader, wrap(slave, 'rb'))
        wt, writer = await loop.connect_write_pipe(Writer, wrap(slave_w, 'wb'))
        fds.fds.remove(slave)
        wt.write(b'to the master')
        got = b''
        while len(got) < 13:
            got += await loop.run_in_executor(None, os.read, master, 100)
        assert got == b'to the master'
        os.write(master, b'to the slave')
        await reader.wait_bytes(12)
        assert bytes(reader.data) == b'to the slave'
        wt.close()
        rt.close()
        assert await writer.lost is None
        assert await reader.lost is None

    run(loop, main())


@pytest.mark.skipif(not hasattr(os, 'openpty'), reason='needs os.openpty')
def test_pty_master_sees_eio_when_slave_closes(loop, fds):
    master, slave = fds.openpty()
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    async def main():
        tr, proto = await loop.connect_read_pipe(Reader, wrap(master, 'rb'))
        fds.fds.remove(master)
        fds.close(slave)
        exc = await proto.lost
        # Linux: reading a pty master whose slave is gone fails with EIO --
        # an ending, not an error worth reporting.
        if exc is not None:
            assert isinstance(exc, OSError) and exc.errno == errno.EIO
        assert tr.is_closing()

    run(loop, main())
    assert contexts == []


@pytest.mark.skipif(not hasattr(os, 'openpty'), reason='needs os.openpty')
def test_pty_large_write_flushes(loop, fds):
    master, slave = fds.openpty()
    tty.setraw(slave)
    data = payload(200000)

    async def main():
        wt, writer = await loop.connect_write_pipe(Writer, wrap(slave, 'wb'))
        rt, reader = await loop.connect_read_pipe(Reader, wrap(master, 'rb'))
        fds.fds[:] = []
        wt.write(data)
        assert wt.get_write_buffer_size() > 0    # a pty holds a few KiB
        await reader.wait_bytes(len(data))
        assert bytes(reader.data) == data
        wt.close()
        rt.close()
        await writer.lost
        await reader.lost

    run(loop, main())


# ---- ownership and leaks --------------------------------------------------------


@pytest.mark.skip_loops('asyncio', reason='asyncio does not register pipe transports')
def test_transports_registered_for_their_fds(loop, fds):
    r, w = fds.pipe()

    async def main():
        rt, reader = await loop.connect_read_pipe(Reader, wrap(r, 'rb'))
        wt, writer = await loop.connect_write_pipe(Writer, wrap(w, 'wb'))
        fds.fds[:] = []
        assert loop._transports[r] is rt
        assert loop._transports[w] is wt
        wt.close()
        await reader.lost
        await writer.lost

    run(loop, main())


@pytest.mark.skip_loops('asyncio', reason='asyncio does not register pipe transports')
def test_add_reader_refused_on_pipe_transport_fd(loop, fds):
    r, w = fds.pipe()

    async def main():
        rt, reader = await loop.connect_read_pipe(Reader, wrap(r, 'rb'))
        fds.fds.remove(r)
        with pytest.raises(RuntimeError, match='is used by transport'):
            loop.add_reader(r, lambda: None)
        rt.close()
        await reader.lost

    run(loop, main())


def test_unclosed_transports_warn(loop_factory, fds):
    loop = loop_factory()
    r, w = fds.pipe()
    rpipe, wpipe = wrap(r, 'rb'), wrap(w, 'wb')
    fds.fds[:] = []

    async def main():
        rt, _ = await loop.connect_read_pipe(asyncio.Protocol, rpipe)
        wt, _ = await loop.connect_write_pipe(asyncio.BaseProtocol, wpipe)
        return rt, wt

    rt, wt = run(loop, main())
    loop.close()
    # repr still works on a closed loop and says the pipe is open.
    assert 'open' in repr(rt) and 'open' in repr(wt)
    with pytest.warns(ResourceWarning, match='unclosed transport') as record:
        del rt, wt
        gc.collect()
    assert len([w for w in record if issubclass(w.category, ResourceWarning)]) >= 2
    assert rpipe.closed and wpipe.closed


@pytest.mark.skip_loops('asyncio', reason=(
    'asyncio half-builds the transport, which then warns and closes the pipe'))
def test_connect_on_closed_loop_leaves_pipe_to_caller(loop_factory, fds):
    loop = loop_factory()
    loop.close()
    r, w = fds.pipe()
    rpipe = wrap(r, 'rb')
    fds.fds.remove(r)
    with rpipe:
        with warnings.catch_warnings():
            warnings.simplefilter('error', ResourceWarning)
            coro = loop.connect_read_pipe(asyncio.Protocol, rpipe)
            with pytest.raises(RuntimeError, match='closed'):
                coro.send(None)
            gc.collect()
        assert not rpipe.closed
