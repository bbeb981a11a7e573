"""Closing a socket, or the loop, while a ``loop.sock_*`` operation waits on it.

uvloop is the reference (its own tests ``test_socket_recv_and_close``,
``test_socket_connect_and_close``, ``test_socket_close_loop_and_close``...): a
waiting operation holds the socket's fd, so ``sock.close()`` only marks the
socket closed; the operation completes as it would have on the open socket,
and the real close happens when it lets go of the fd (when it completes, is
cancelled, is removed with ``remove_reader``/``remove_writer``, or the loop
closes).  The fd number therefore stays out of reach of new sockets while
the operation waits.  Stock asyncio closes the fd under the operation, which
then never completes: those tests are skipped there, and every wait is
bounded so that a hang fails the test instead of stalling the run.

Also: ``remove_reader``/``remove_writer`` of a socket object that was
registered and then closed (asyncio finds the registration by the object),
and a refused connection that leaves no reference cycle behind.
"""

import asyncio
import gc
import socket
import sys

import pytest

from ._util import TIMEOUT, run, socketpair_nb, tcp_listener

ASYNCIO_HANGS = pytest.mark.skip_loops(
    "asyncio", reason="asyncio closes the fd under the waiting operation, which then never completes "
                      "(its epoll registration went with the fd)")


@pytest.fixture
def pair():
    a, b = socketpair_nb()
    yield a, b
    a.close()
    b.close()


async def _until_waiting(loop, task):
    """Let ``task`` start and block in its operation."""
    for _ in range(3):
        await asyncio.sleep(0)
    assert not task.done()


# --------------------------------------------------------------------------- receiving


@ASYNCIO_HANGS
@pytest.mark.parametrize("op", ["sock_recv", "sock_recv_into"])
def test_close_while_receiving_defers_the_close_until_the_data(loop, pair, op):
    a, b = pair
    fd = a.fileno()
    buf = bytearray(16)

    async def main():
        if op == "sock_recv":
            task = asyncio.ensure_future(loop.sock_recv(a, 16))
        else:
            task = asyncio.ensure_future(loop.sock_recv_into(a, buf))
        await _until_waiting(loop, task)
        a.close()
        # The fd is still the operation's: no new socket can get its number.
        with socket.socket() as other:
            assert other.fileno() != fd
        assert not task.done()
        b.send(b"helo")
        got = await asyncio.wait_for(task, TIMEOUT)
        # The operation let go of the fd: the deferred close happened.
        assert a.fileno() == -1
        return got

    got = run(loop, main())
    assert (got if op == "sock_recv" else bytes(buf[:got])) == b"helo"
    # The peer sees the close.
    b.setblocking(True)
    b.settimeout(TIMEOUT)
    assert b.recv(1) == b""


@ASYNCIO_HANGS
def test_close_while_receiving_then_peer_closes(loop, pair):
    a, b = pair

    async def main():
        task = asyncio.ensure_future(loop.sock_recv(a, 16))
        await _until_waiting(loop, task)
        a.close()
        b.close()
        return await asyncio.wait_for(task, TIMEOUT)

    assert run(loop, main()) == b""
    assert a.fileno() == -1


@ASYNCIO_HANGS
def test_cancelling_after_close_closes_at_once(loop, pair):
    a, b = pair

    async def main():
        task = asyncio.ensure_future(loop.sock_recv(a, 16))
        await _until_waiting(loop, task)
        a.close()
        assert a.fileno() != -1          # deferred: the operation holds the fd
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert a.fileno() == -1

    run(loop, main())
    b.setblocking(True)
    b.settimeout(TIMEOUT)
    assert b.recv(1) == b""


@ASYNCIO_HANGS
def test_remove_reader_after_close_lets_go(loop, pair):
    # uvloop's test_socket_cancel_sock_recv_2: the waiting operation's watch
    # removed by hand, then the socket closed: closed for real at once.
    a, b = pair

    async def main():
        task = asyncio.ensure_future(loop.sock_recv(a, 16))
        await _until_waiting(loop, task)
        loop.remove_reader(a)
        a.close()
        assert a.fileno() == -1
        assert not task.done()           # nothing settles it any more, as in asyncio
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(loop, main())


# --------------------------------------------------------------------------- accept, connect, send


@ASYNCIO_HANGS
def test_close_while_accepting(loop):
    srv = tcp_listener()
    srv.setblocking(False)
    addr = srv.getsockname()
    cli = socket.socket()
    conn = None
    try:
        async def main():
            task = asyncio.ensure_future(loop.sock_accept(srv))
            await _until_waiting(loop, task)
            srv.close()
            cli.setblocking(False)
            await loop.sock_connect(cli, addr)
            return await asyncio.wait_for(task, TIMEOUT)

        conn, _ = run(loop, main())
        assert srv.fileno() == -1
        assert conn.getpeername() == cli.getsockname()
    finally:
        if conn is not None:
            conn.close()
        cli.close()
        srv.close()


@ASYNCIO_HANGS
def test_close_while_connecting(loop):
    # uvloop's test_socket_connect_and_close: the close is scheduled right
    # behind the connect, which completes all the same.
    srv = tcp_listener()
    sock = socket.socket()
    sock.setblocking(False)
    try:
        async def main():
            task = asyncio.ensure_future(loop.sock_connect(sock, srv.getsockname()))
            loop.call_soon(sock.close)
            await asyncio.wait_for(task, TIMEOUT)
            return "ok"

        assert run(loop, main()) == "ok"
        assert sock.fileno() == -1
    finally:
        sock.close()
        srv.close()


@ASYNCIO_HANGS
def test_close_while_sending(loop, pair):
    a, b = pair
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    payload = bytes(range(256)) * 4096          # far more than the socket buffers hold

    async def main():
        task = asyncio.ensure_future(loop.sock_sendall(a, payload))
        await _until_waiting(loop, task)
        a.close()
        got = bytearray()
        while len(got) < len(payload):
            chunk = await asyncio.wait_for(loop.sock_recv(b, 1 << 16), TIMEOUT)
            assert chunk, "the sender's end closed before all the data went out"
            got += chunk
        await asyncio.wait_for(task, TIMEOUT)
        assert a.fileno() == -1
        assert await asyncio.wait_for(loop.sock_recv(b, 1), TIMEOUT) == b""
        return bytes(got)

    assert run(loop, main()) == payload


# --------------------------------------------------------------------------- closing the loop


@pytest.mark.skip_loops("asyncio", reason="asyncio's sock.close() closes the fd at once")
def test_loop_close_lets_go_of_waiting_sockets(loop_factory):
    loop = loop_factory()
    a, b = socketpair_nb()
    try:
        async def main():
            task = asyncio.ensure_future(loop.sock_recv(a, 16))
            await _until_waiting(loop, task)
            return task

        task = run(loop, main())
        a.close()
        assert a.fileno() != -1          # the waiting operation still holds it
        loop.close()
        assert a.fileno() == -1          # closing the loop let go of it
        assert not task.done()           # a closed loop runs nothing
        b.setblocking(True)
        b.settimeout(TIMEOUT)
        assert b.recv(1) == b""
    finally:
        a.close()
        b.close()


# --------------------------------------------------------------------------- remove_reader of a closed socket


@pytest.mark.skip_loops("uvloop", reason="uvloop's remove_reader/remove_writer return None")
@pytest.mark.parametrize("writer", [False, True], ids=["reader", "writer"])
def test_remove_watcher_of_closed_socket_finds_it_by_object(loop, writer):
    # anyio closes a socket and then removes the reader it waited with.
    add = loop.add_writer if writer else loop.add_reader
    remove = loop.remove_writer if writer else loop.remove_reader
    sock = socket.socket()
    sock.setblocking(False)
    add(sock, lambda: None)
    sock.close()
    assert sock.fileno() == -1
    assert remove(sock) is True
    # Gone: a closed socket without a registration is an invalid fd again.
    with pytest.raises(ValueError):
        remove(sock)


@pytest.mark.skip_loops("uvloop", reason="uvloop's remove_reader returns None and accepts any closed socket")
def test_remove_reader_of_unregistered_closed_socket_is_an_error(loop):
    sock = socket.socket()
    sock.close()
    with pytest.raises(ValueError):
        loop.remove_reader(sock)


def test_remove_reader_by_number_after_registering_the_object(loop, pair):
    a, _ = pair
    loop.add_reader(a, lambda: None)
    assert loop.remove_reader(a.fileno()) in (True, None)      # uvloop: None
    a.close()
    assert a.fileno() == -1


# --------------------------------------------------------------------------- no reference cycle


def _exceptions_alive(cls):
    return sum(1 for o in gc.get_objects() if type(o) is cls)


@pytest.mark.parametrize("how", ["create_connection", "happy_eyeballs", "sock_connect"])
def test_refused_connection_leaves_no_cycle(loop, loop_name, how):
    # A bound but not listening socket refuses deterministically.  With the
    # cycle collector off, the exception must be freed by reference counting
    # alone once nobody holds it (asyncio: the `fut = None` in a finally).
    fixed = sys.version_info >= (3, 13, 1) or (3, 12, 8) <= sys.version_info < (3, 13)
    if how == "happy_eyeballs" and loop_name != "pyloop" and not fixed:
        pytest.skip(f"{loop_name} leaves the errors in asyncio's staggered_race cycle before 3.12.8/3.13.1 "
                    "(CPython gh-124858)")
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    addr = holder.getsockname()

    async def attempt():
        if how == "create_connection":
            await loop.create_connection(asyncio.Protocol, *addr)
        elif how == "happy_eyeballs":
            await loop.create_connection(asyncio.Protocol, *addr, happy_eyeballs_delay=0.25)
        else:
            with socket.socket() as sock:
                sock.setblocking(False)
                await loop.sock_connect(sock, addr)

    async def main():
        try:
            await attempt()
        except ConnectionRefusedError:
            return True
        return False

    gc.collect()
    before = _exceptions_alive(ConnectionRefusedError)
    gc.disable()
    try:
        assert run(loop, main())
        after = _exceptions_alive(ConnectionRefusedError)
    finally:
        gc.enable()
        holder.close()
    assert after == before
