"""loop.sock_* coroutines on raw non-blocking sockets."""

import asyncio
import errno
import os
import socket
import tempfile

import pytest

from ._util import TIMEOUT, run, socketpair_nb, tcp_listener


@pytest.fixture
def pair():
    a, b = socketpair_nb()
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def tcp_pair():
    """A connected pair of non-blocking TCP sockets on 127.0.0.1."""
    srv = tcp_listener()
    cli = socket.create_connection(srv.getsockname(), timeout=TIMEOUT)
    conn, _ = srv.accept()
    srv.close()
    cli.setblocking(False)
    conn.setblocking(False)
    yield cli, conn
    cli.close()
    conn.close()


@pytest.fixture
def udp_pair():
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("127.0.0.1", 0))
    b.bind(("127.0.0.1", 0))
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


async def _recv_exactly(loop, sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = await loop.sock_recv(sock, min(1 << 16, n - len(buf)))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


# --------------------------------------------------------------------------- recv


def test_sock_recv_waits_for_data(loop, pair):
    a, b = pair

    async def main():
        task = asyncio.ensure_future(loop.sock_recv(a, 100))
        await asyncio.sleep(0)
        assert not task.done()
        b.send(b"payload")
        return await task

    assert run(loop, main()) == b"payload"


def test_sock_recv_with_data_already_there(loop, pair):
    a, b = pair
    b.send(b"early")
    assert run(loop, loop.sock_recv(a, 100)) == b"early"


def test_sock_recv_respects_nbytes(loop, pair):
    a, b = pair
    b.send(b"abcdef")
    assert run(loop, loop.sock_recv(a, 2)) == b"ab"
    assert run(loop, loop.sock_recv(a, 100)) == b"cdef"


def test_sock_recv_eof(loop, pair):
    a, b = pair
    b.close()
    assert run(loop, loop.sock_recv(a, 100)) == b""


def test_sock_recv_into(loop, pair):
    a, b = pair
    buf = bytearray(10)

    async def main():
        task = asyncio.ensure_future(loop.sock_recv_into(a, buf))
        await asyncio.sleep(0)
        b.send(b"12345")
        return await task

    assert run(loop, main()) == 5
    assert buf[:5] == b"12345"


def test_sock_recv_into_memoryview_slice(loop, pair):
    a, b = pair
    buf = bytearray(b"." * 8)
    b.send(b"xyz")
    n = run(loop, loop.sock_recv_into(a, memoryview(buf)[2:]))
    assert n == 3
    assert buf == bytearray(b"..xyz...")


def test_concurrent_recvs_on_different_sockets(loop):
    pairs = [socketpair_nb() for _ in range(20)]
    try:
        async def main():
            tasks = [asyncio.ensure_future(loop.sock_recv(a, 100)) for a, _ in pairs]
            await asyncio.sleep(0)
            for i, (_, b) in enumerate(reversed(pairs)):
                b.send(str(len(pairs) - 1 - i).encode())
            return await asyncio.gather(*tasks)

        assert run(loop, main()) == [str(i).encode() for i in range(len(pairs))]
    finally:
        for a, b in pairs:
            a.close()
            b.close()


def test_cancelled_sock_recv_leaves_socket_usable_and_unwatched(loop, pair):
    a, b = pair

    async def main():
        task = asyncio.ensure_future(loop.sock_recv(a, 100))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # No reader is left behind for the cancelled operation.
        assert not loop.remove_reader(a.fileno())
        b.send(b"after-cancel")
        # Nothing consumed the data: a fresh sock_recv gets all of it.
        return await loop.sock_recv(a, 100)

    assert run(loop, main()) == b"after-cancel"


def test_cancelled_sock_recv_then_add_reader(loop, pair):
    a, b = pair

    async def main():
        task = asyncio.ensure_future(loop.sock_recv(a, 100))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        fut = loop.create_future()

        def on_readable():
            loop.remove_reader(a.fileno())
            fut.set_result(a.recv(100))

        loop.add_reader(a.fileno(), on_readable)
        b.send(b"via-reader")
        return await fut

    assert run(loop, main()) == b"via-reader"


def test_sock_recv_timeout_via_wait_for(loop, pair):
    a, b = pair

    async def main():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(loop.sock_recv(a, 100), 0.01)
        b.send(b"later")
        return await loop.sock_recv(a, 100)

    assert run(loop, main()) == b"later"


# --------------------------------------------------------------------------- send


def test_sock_sendall_small(loop, pair):
    a, b = pair
    assert run(loop, loop.sock_sendall(a, b"hello")) is None
    assert run(loop, loop.sock_recv(b, 100)) == b"hello"


def test_sock_sendall_empty(loop, pair):
    a, _ = pair
    assert run(loop, loop.sock_sendall(a, b"")) is None


@pytest.mark.parametrize("kind", ["unix", "tcp"])
def test_sock_sendall_larger_than_socket_buffer(loop, pair, tcp_pair, kind):
    a, b = pair if kind == "unix" else tcp_pair
    # Several times what the kernel can buffer (loopback TCP buffers can be MBs).
    kernel = a.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) + b.getsockopt(
        socket.SOL_SOCKET, socket.SO_RCVBUF
    )
    size = max(8 << 20, -(-4 * kernel // 4096) * 4096)
    payload = os.urandom(4096) * (size // 4096)

    async def main():
        reader = asyncio.ensure_future(_recv_exactly(loop, b, size))
        await loop.sock_sendall(a, memoryview(payload))
        return await reader

    assert run(loop, main()) == payload


def test_sock_sendall_to_closed_peer_raises(loop, pair):
    a, b = pair
    b.close()

    async def main():
        with pytest.raises(OSError):
            for _ in range(100):
                await loop.sock_sendall(a, b"x" * 65536)

    run(loop, main())


def test_sock_sendall_accepts_bytearray_and_memoryview(loop, pair):
    a, b = pair
    run(loop, loop.sock_sendall(a, bytearray(b"ba")))
    run(loop, loop.sock_sendall(a, memoryview(b"mv")))
    assert run(loop, _recv_exactly(loop, b, 4)) == b"bamv"


# --------------------------------------------------------------------------- UDP


def test_sock_sendto_and_recvfrom(loop, udp_pair):
    a, b = udp_pair

    async def main():
        task = asyncio.ensure_future(loop.sock_recvfrom(b, 100))
        await asyncio.sleep(0)
        sent = await loop.sock_sendto(a, b"datagram", b.getsockname())
        data, addr = await task
        return sent, data, addr

    sent, data, addr = run(loop, main())
    assert sent == len(b"datagram")
    assert data == b"datagram"
    assert addr == a.getsockname()


def test_sock_recvfrom_into(loop, udp_pair):
    a, b = udp_pair
    buf = bytearray(64)

    async def main():
        task = asyncio.ensure_future(loop.sock_recvfrom_into(b, buf))
        await asyncio.sleep(0)
        a.sendto(b"into", b.getsockname())
        return await task

    n, addr = run(loop, main())
    assert n == 4 and buf[:4] == b"into"
    assert addr == a.getsockname()


def test_sock_recvfrom_into_with_nbytes(loop, udp_pair):
    a, b = udp_pair
    buf = bytearray(64)
    a.sendto(b"truncated-datagram", b.getsockname())
    n, _ = run(loop, loop.sock_recvfrom_into(b, buf, 5))
    assert n == 5 and buf[:5] == b"trunc"


def test_sock_recv_on_udp(loop, udp_pair):
    a, b = udp_pair
    a.sendto(b"one", b.getsockname())
    assert run(loop, loop.sock_recv(b, 100)) == b"one"


# --------------------------------------------------------------------------- connect / accept


def test_sock_connect_and_accept_tcp(loop):
    srv = tcp_listener()
    srv.setblocking(False)
    cli = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    cli.setblocking(False)
    conn = None
    try:
        async def main():
            accept = asyncio.ensure_future(loop.sock_accept(srv))
            await loop.sock_connect(cli, srv.getsockname())
            return await accept

        conn, addr = run(loop, main())
        assert addr == cli.getsockname()
        assert conn.getpeername() == cli.getsockname()
        # Accepted sockets come back non-blocking, ready for more sock_* calls.
        assert conn.gettimeout() == 0
        run(loop, loop.sock_sendall(cli, b"ping"))
        assert run(loop, loop.sock_recv(conn, 100)) == b"ping"
    finally:
        if conn is not None:
            conn.close()
        cli.close()
        srv.close()


def test_sock_accept_waits_for_a_client(loop):
    srv = tcp_listener()
    srv.setblocking(False)
    cli = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    conn = None
    try:
        async def main():
            accept = asyncio.ensure_future(loop.sock_accept(srv))
            await asyncio.sleep(0)
            assert not accept.done()
            cli.setblocking(False)
            await loop.sock_connect(cli, srv.getsockname())
            return await accept

        conn, _ = run(loop, main())
    finally:
        if conn is not None:
            conn.close()
        cli.close()
        srv.close()


def test_sock_connect_unix(loop):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "sock")
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(path)
        srv.listen(1)
        srv.setblocking(False)
        cli = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        cli.setblocking(False)
        conn = None
        try:
            async def main():
                accept = asyncio.ensure_future(loop.sock_accept(srv))
                await loop.sock_connect(cli, path)
                return await accept

            conn, _ = run(loop, main())
            run(loop, loop.sock_sendall(conn, b"unix"))
            assert run(loop, loop.sock_recv(cli, 10)) == b"unix"
        finally:
            if conn is not None:
                conn.close()
            cli.close()
            srv.close()


def test_sock_connect_refused(loop):
    # A bound but not listening TCP socket answers a SYN with RST: refused,
    # deterministically, and nobody else can grab the port meanwhile.
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))
    cli = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    cli.setblocking(False)
    try:
        with pytest.raises(OSError) as ei:
            run(loop, loop.sock_connect(cli, holder.getsockname()))
        assert isinstance(ei.value, ConnectionRefusedError) or ei.value.errno == errno.ECONNREFUSED
        # The loop is still fine and not watching the failed socket.
        assert not loop.remove_writer(cli.fileno())
        assert run(loop, asyncio.sleep(0, "ok")) == "ok"
    finally:
        cli.close()
        holder.close()


def test_sock_connect_udp(loop, udp_pair):
    a, b = udp_pair
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.setblocking(False)
    try:
        run(loop, loop.sock_connect(c, b.getsockname()))
        run(loop, loop.sock_sendall(c, b"connected-udp"))
        assert run(loop, loop.sock_recv(b, 100)) == b"connected-udp"
    finally:
        c.close()


def test_cancelled_sock_accept_leaves_listener_usable(loop):
    srv = tcp_listener()
    srv.setblocking(False)
    cli = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    cli.setblocking(False)
    conn = None
    try:
        async def main():
            t = asyncio.ensure_future(loop.sock_accept(srv))
            await asyncio.sleep(0)
            t.cancel()
            with pytest.raises(asyncio.CancelledError):
                await t
            assert not loop.remove_reader(srv.fileno())
            await loop.sock_connect(cli, srv.getsockname())
            return await loop.sock_accept(srv)

        conn, _ = run(loop, main())
    finally:
        if conn is not None:
            conn.close()
        cli.close()
        srv.close()


# --------------------------------------------------------------------------- sendfile


@pytest.fixture
def data_file():
    content = os.urandom(1024) * 1024 + b"tail"  # > 1 MiB, not a multiple of a page
    with tempfile.NamedTemporaryFile() as f:
        f.write(content)
        f.flush()
        f.seek(0)
        with open(f.name, "rb") as rf:
            yield rf, content


def test_sock_sendfile_whole_file(loop, tcp_pair, data_file):
    a, b = tcp_pair
    f, content = data_file

    async def main():
        reader = asyncio.ensure_future(_recv_exactly(loop, b, len(content)))
        sent = await loop.sock_sendfile(a, f)
        return sent, await reader

    sent, got = run(loop, main())
    assert sent == len(content)
    assert got == content
    assert f.tell() == len(content)


def test_sock_sendfile_offset_and_count(loop, tcp_pair, data_file):
    a, b = tcp_pair
    f, content = data_file

    async def main():
        reader = asyncio.ensure_future(_recv_exactly(loop, b, 5000))
        sent = await loop.sock_sendfile(a, f, 1000, 5000)
        return sent, await reader

    sent, got = run(loop, main())
    assert sent == 5000
    assert got == content[1000:6000]
    assert f.tell() == 6000


def test_sock_sendfile_over_unix_socket(loop, pair, data_file):
    a, b = pair
    f, content = data_file

    async def main():
        reader = asyncio.ensure_future(_recv_exactly(loop, b, len(content)))
        sent = await loop.sock_sendfile(a, f)
        return sent, await reader

    sent, got = run(loop, main())
    assert sent == len(content) and got == content


def test_sock_sendfile_empty_file(loop, tcp_pair):
    a, _ = tcp_pair
    with tempfile.TemporaryFile() as f:
        assert run(loop, loop.sock_sendfile(a, f)) == 0


def test_sock_sendfile_rejects_text_files(loop, tcp_pair):
    a, _ = tcp_pair
    with tempfile.TemporaryFile("w+") as f:
        f.write("text")
        f.seek(0)
        with pytest.raises(ValueError):
            run(loop, loop.sock_sendfile(a, f))


def test_sock_sendfile_rejects_datagram_sockets(loop, udp_pair, data_file):
    a, _ = udp_pair
    f, _ = data_file
    with pytest.raises(ValueError):
        run(loop, loop.sock_sendfile(a, f))


@pytest.mark.parametrize(
    "offset,count,exc",
    [
        (-1, None, ValueError),
        (0, 0, ValueError),
        (0, -5, ValueError),
        ("0", None, TypeError),
        (0, 1.5, TypeError),
    ],
)
def test_sock_sendfile_validates_offset_and_count(loop, tcp_pair, data_file, offset, count, exc):
    a, _ = tcp_pair
    f, _ = data_file
    with pytest.raises(exc):
        run(loop, loop.sock_sendfile(a, f, offset, count))


# --------------------------------------------------------------------------- debug checks


def _blocking_ops(loop, sock, udp):
    buf = bytearray(10)
    return {
        "sock_recv": lambda: loop.sock_recv(sock, 10),
        "sock_recv_into": lambda: loop.sock_recv_into(sock, buf),
        "sock_sendall": lambda: loop.sock_sendall(sock, b"x"),
        "sock_connect": lambda: loop.sock_connect(sock, ("127.0.0.1", 1)),
        "sock_accept": lambda: loop.sock_accept(sock),
        "sock_recvfrom": lambda: loop.sock_recvfrom(udp, 10),
        "sock_recvfrom_into": lambda: loop.sock_recvfrom_into(udp, buf),
        "sock_sendto": lambda: loop.sock_sendto(udp, b"x", ("127.0.0.1", 9)),
    }


@pytest.mark.parametrize(
    "op",
    [
        "sock_recv",
        "sock_recv_into",
        "sock_sendall",
        "sock_connect",
        "sock_accept",
        "sock_recvfrom",
        "sock_recvfrom_into",
        "sock_sendto",
    ],
)
def test_blocking_socket_rejected_in_debug_mode(loop, op):
    loop.set_debug(True)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        assert sock.gettimeout() is None  # blocking
        with pytest.raises(ValueError, match="non-blocking"):
            run(loop, _blocking_ops(loop, sock, udp)[op]())
    finally:
        sock.close()
        udp.close()


def test_socket_with_timeout_rejected_in_debug_mode(loop):
    loop.set_debug(True)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(5)
    try:
        with pytest.raises(ValueError, match="non-blocking"):
            run(loop, loop.sock_recv(sock, 10))
    finally:
        sock.close()


# --------------------------------------------------------------------------- after a completed receive


@pytest.mark.skip_loops("uvloop", reason="uvloop's remove_reader returns None")
def test_no_reader_left_after_a_completed_recv(loop, pair):
    # pyloop keeps a finished receive's registration for the next one
    # (loop_sock.pxi, "parks" it); for the user there is no reader.
    a, b = pair
    b.send(b"x")

    async def main():
        assert await loop.sock_recv(a, 10) == b"x"
        task = asyncio.ensure_future(loop.sock_recv(a, 10))
        await asyncio.sleep(0)
        b.send(b"y")
        assert await task == b"y"
        assert not loop.remove_reader(a.fileno())
        fut = loop.create_future()
        loop.add_reader(a, lambda: fut.done() or fut.set_result(a.recv(10)))
        b.send(b"z")
        got = await asyncio.wait_for(fut, TIMEOUT)
        assert loop.remove_reader(a)
        return got

    assert run(loop, main()) == b"z"


@pytest.mark.parametrize("woken", [True, False], ids=["woken", "at-once"])
def test_close_after_a_completed_recv(loop, pair, woken):
    # close() right after a receive closes at once, as on asyncio and uvloop:
    # pyloop keeps a woken receive's registration for the next one ("parks"
    # it, loop_sock.pxi) but no longer holds the socket open for it.
    a, b = pair

    async def main():
        if woken:
            # The data comes while the receive waits: the loop wakes it, and
            # this coroutine closes in the same step (before pyloop would
            # drop the registration at the end of the iteration).
            loop.call_soon(b.send, b"x")
        else:
            b.send(b"x")
        assert await loop.sock_recv(a, 10) == b"x"
        a.close()
        assert a.fileno() == -1
        assert a._io_refs == 0
        return await asyncio.wait_for(loop.sock_recv(b, 10), TIMEOUT)

    assert run(loop, main()) == b""


def test_close_after_a_completed_accept(loop):
    srv = tcp_listener()
    srv.setblocking(False)
    client = socket.socket()

    async def main():
        loop.call_soon(client.connect, srv.getsockname())
        conn, _ = await loop.sock_accept(srv)
        conn.close()
        srv.close()
        assert srv.fileno() == -1 and srv._io_refs == 0
        client.settimeout(TIMEOUT)
        return client.recv(1)

    try:
        assert run(loop, main()) == b""
    finally:
        client.close()
        srv.close()


@pytest.mark.skip_loops("asyncio", "uvloop", reason="counts pyloop's iterations (pyloop.monitor)")
def test_recv_registration_left_by_a_close_does_not_spin(loop, pair):
    # The receiving socket is closed right after a receive while a dup()
    # keeps its file open: the registration pyloop kept for the next receive
    # can no longer be removed from epoll (no fd number names that file).  It
    # is edge-triggered, so the peer's data and FIN wake the loop once each;
    # level-triggered it would end every wait at once, for as long as the
    # file stays readable: a loop spinning at 100% CPU while idle.
    from pyloop import monitor

    a, b = pair

    async def main():
        loop.call_soon(b.send, b"x")
        assert await loop.sock_recv(a, 10) == b"x"     # woken, its registration kept
        d = a.dup()
        a.close()
        try:
            b.send(b"unread")
            b.shutdown(socket.SHUT_WR)
            await asyncio.sleep(0)
            before = monitor.metrics(loop).iterations
            await asyncio.sleep(0.2)
            return monitor.metrics(loop).iterations - before, d.recv(100)
        finally:
            d.close()

    iterations, unread = run(loop, main())
    assert unread == b"unread"
    # Idle: the timer and a stale event or two.  A spin makes tens of thousands.
    assert iterations < 50


def test_close_after_the_loop_stopped(loop, pair):
    a, b = pair

    async def main():
        task = asyncio.ensure_future(loop.sock_recv(a, 10))
        await asyncio.sleep(0)
        b.send(b"x")
        return await task

    assert run(loop, main()) == b"x"
    a.close()                            # the loop is not running: at once
    assert a.fileno() == -1
    b.setblocking(True)
    b.settimeout(TIMEOUT)
    assert b.recv(1) == b""


def test_reused_fd_number_after_close_with_a_dup(loop, pair):
    # The receiving socket is closed while a dup() keeps its file open: no
    # registration of the old file may outlive the close, and a new socket
    # that gets the same number sees only its own data.
    a, b = pair
    fd = a.fileno()

    async def main():
        task = asyncio.ensure_future(loop.sock_recv(a, 10))
        await asyncio.sleep(0)
        b.send(b"x")
        assert await task == b"x"
        d = a.dup()
        a.close()
        for _ in range(3):
            await asyncio.sleep(0)
        c, e = socketpair_nb()
        try:
            task = asyncio.ensure_future(loop.sock_recv(c, 10))
            await asyncio.sleep(0)
            b.send(b"old-file")                 # readable through d only
            await asyncio.sleep(0.01)
            assert not task.done()
            e.send(b"new")
            got = await asyncio.wait_for(task, TIMEOUT)
            assert d.recv(100) == b"old-file"
            return got, c.fileno() == fd or e.fileno() == fd
        finally:
            c.close()
            e.close()
            d.close()

    got, _ = run(loop, main())
    assert got == b"new"


def test_sock_accept_loop(loop):
    srv = tcp_listener()
    srv.setblocking(False)
    addr = srv.getsockname()
    clients = [socket.socket() for _ in range(5)]
    accepted = []
    try:
        async def main():
            for c in clients:
                c.setblocking(False)
                connect = asyncio.ensure_future(loop.sock_connect(c, addr))
                conn, _ = await loop.sock_accept(srv)
                accepted.append(conn)
                await connect
            return [conn.getpeername() for conn in accepted]

        assert run(loop, main()) == [c.getsockname() for c in clients]
    finally:
        for s in clients + accepted:
            s.close()
        srv.close()


@pytest.mark.parametrize("sizes", [[40000, 40000, 200000, 100, 40000, 300000], [20000, 1, 70000, 70000, 5]],
                         ids=["grow", "shrink"])
def test_sock_recv_sizes_follow_the_traffic(loop, sizes):
    # pyloop receives into a bytes object sized from the previous receive
    # once those are large (loop_sock.pxi, _recv_direct); whatever the next
    # message's size, every byte arrives once and in order.
    a, b = socketpair_nb()
    payload = os.urandom(sum(sizes))

    async def main():
        got = bytearray()
        offset = 0
        for size in sizes:
            task = asyncio.ensure_future(_recv_exactly(loop, a, size))
            await asyncio.sleep(0)
            await loop.sock_sendall(b, payload[offset:offset + size])
            offset += size
            got += await asyncio.wait_for(task, TIMEOUT)
        return bytes(got)

    try:
        assert run(loop, main()) == payload
    finally:
        a.close()
        b.close()


def test_close_after_a_run_interrupted_after_a_recv(loop, pair):
    # A KeyboardInterrupt ends the run in the middle of an iteration: the
    # receive's parked registration is let go of all the same.
    a, b = pair

    async def main():
        loop.call_soon(b.send, b"x")
        assert await loop.sock_recv(a, 10) == b"x"
        raise KeyboardInterrupt

    task = asyncio.ensure_future(main(), loop=loop)
    with pytest.raises(KeyboardInterrupt):
        loop.run_until_complete(task)
    a.close()
    assert a.fileno() == -1


@pytest.mark.parametrize("name", ["sock_recv", "sock_recv_into", "sock_recvfrom", "sock_recvfrom_into",
                                  "sock_sendall", "sock_sendto", "sock_connect", "sock_accept"])
def test_sock_methods_are_coroutine_functions(loop, name):
    # pyloop's are compiled (loop_sock.pxi) and bound through SockMixin: they
    # must still look like asyncio's (create_task needs a coroutine).
    assert asyncio.iscoroutinefunction(getattr(loop, name))
    assert getattr(type(loop), name).__doc__
