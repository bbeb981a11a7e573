"""add_reader / add_writer / remove_reader / remove_writer."""

import os
import resource
import socket

import pytest

from ._util import fill_send_buffer, run, run_forever, socketpair_nb


@pytest.fixture
def pair():
    a, b = socketpair_nb()
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def pipe():
    r, w = os.pipe()
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    fds = [r, w]
    yield fds
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def test_reader_called_with_args_when_data_arrives(loop, pair):
    a, b = pair
    fut = loop.create_future()

    def on_readable(sock, tag):
        data = sock.recv(100)
        loop.remove_reader(sock.fileno())
        fut.set_result((tag, data))

    loop.add_reader(a.fileno(), on_readable, a, "tag")
    b.send(b"hello")
    assert run(loop, fut) == ("tag", b"hello")


def test_reader_keeps_firing_while_data_is_pending(loop, pair):
    # Level-triggered, like asyncio: a reader that does not consume data is called again.
    a, b = pair
    calls = []

    def on_readable():
        calls.append(1)
        if len(calls) == 5:
            loop.remove_reader(a.fileno())
            loop.stop()

    loop.add_reader(a.fileno(), on_readable)
    b.send(b"x")
    run_forever(loop)
    assert len(calls) == 5
    assert a.recv(10) == b"x"


def test_reader_accepts_file_objects(loop, pair):
    a, b = pair
    fut = loop.create_future()
    loop.add_reader(a, lambda: fut.done() or fut.set_result(a.recv(10)))
    b.send(b"obj")
    assert run(loop, fut) == b"obj"
    assert loop.remove_reader(a) is True
    assert loop.remove_reader(a) is False


def test_writer_called_when_writable(loop, pair):
    a, _ = pair
    fut = loop.create_future()

    def on_writable(x):
        loop.remove_writer(a.fileno())
        fut.set_result(x)

    loop.add_writer(a.fileno(), on_writable, "w")
    assert run(loop, fut) == "w"


def test_writer_fires_once_buffer_drains(loop, pair):
    a, b = pair
    fill_send_buffer(a)
    fut = loop.create_future()

    def on_writable():
        loop.remove_writer(a.fileno())
        fut.set_result(a.send(b"more"))

    loop.add_writer(a.fileno(), on_writable)

    def drain():
        try:
            while b.recv(1 << 16):
                pass
        except BlockingIOError:
            pass

    loop.add_reader(b.fileno(), drain)
    assert run(loop, fut) == 4
    loop.remove_reader(b.fileno())


def test_remove_return_values(loop, pair):
    a, _ = pair
    fd = a.fileno()
    assert loop.remove_reader(fd) is False
    assert loop.remove_writer(fd) is False
    loop.add_reader(fd, print)
    assert loop.remove_writer(fd) is False
    assert loop.remove_reader(fd) is True
    assert loop.remove_reader(fd) is False
    loop.add_writer(fd, print)
    assert loop.remove_reader(fd) is False
    assert loop.remove_writer(fd) is True
    assert loop.remove_writer(fd) is False


def test_removed_reader_is_not_called(loop, pair):
    a, b = pair
    called = []
    loop.add_reader(a.fileno(), called.append, "reader")
    assert loop.remove_reader(a.fileno())
    b.send(b"x")
    # Give the loop several iterations in which the fd is readable.
    loop.call_later(0.02, loop.stop)
    run_forever(loop)
    assert called == []


def test_replacing_a_reader(loop, pair):
    a, b = pair
    calls = []
    fut = loop.create_future()

    def second():
        calls.append("second")
        a.recv(10)
        loop.remove_reader(a.fileno())
        fut.set_result(None)

    loop.add_reader(a.fileno(), calls.append, "first")
    loop.add_reader(a.fileno(), second)
    b.send(b"x")
    run(loop, fut)
    assert calls == ["second"]
    assert loop.remove_reader(a.fileno()) is False


def test_replacing_a_writer(loop, pair):
    a, _ = pair
    calls = []
    fut = loop.create_future()

    def second():
        calls.append("second")
        loop.remove_writer(a.fileno())
        fut.set_result(None)

    loop.add_writer(a.fileno(), calls.append, "first")
    loop.add_writer(a.fileno(), second)
    run(loop, fut)
    assert calls == ["second"]


def test_pipe_reader_and_writer(loop, pipe):
    r, w = pipe
    got = loop.create_future()
    wrote = loop.create_future()

    def on_writable():
        loop.remove_writer(w)
        os.write(w, b"through the pipe")
        wrote.set_result(None)

    def on_readable():
        loop.remove_reader(r)
        got.set_result(os.read(r, 100))

    loop.add_reader(r, on_readable)
    loop.add_writer(w, on_writable)
    assert run(loop, got) == b"through the pipe"
    assert wrote.done()


def test_pipe_reader_sees_eof_when_writer_closes(loop, pipe):
    r, w = pipe
    fut = loop.create_future()

    def on_readable():
        loop.remove_reader(r)
        fut.set_result(os.read(r, 100))

    loop.add_reader(r, on_readable)
    os.close(w)
    pipe.remove(w)
    assert run(loop, fut) == b""


def test_reader_woken_by_peer_close(loop, pair):
    a, b = pair
    fut = loop.create_future()

    def on_readable():
        loop.remove_reader(a.fileno())
        fut.set_result(a.recv(10))

    loop.add_reader(a.fileno(), on_readable)
    b.close()
    assert run(loop, fut) == b""


def test_writer_woken_when_peer_closes(loop, pair):
    # A writer waiting on a full buffer is woken (to discover the error) when the peer goes away.
    a, b = pair
    fill_send_buffer(a)
    fut = loop.create_future()

    def on_writable():
        loop.remove_writer(a.fileno())
        try:
            a.send(b"x")
        except OSError as e:
            fut.set_result(type(e))
        else:
            fut.set_result(None)

    loop.add_writer(a.fileno(), on_writable)
    b.close()
    assert run(loop, fut) in (BrokenPipeError, ConnectionResetError)


@pytest.mark.parametrize("bad", [-1, -100, "abc", 1.5, None, object()])
def test_invalid_fd_objects_raise_value_error(loop, bad):
    with pytest.raises(ValueError):
        loop.add_reader(bad, print)
    with pytest.raises(ValueError):
        loop.add_writer(bad, print)


@pytest.mark.parametrize("bad", [-1, "abc", object()])
def test_remove_with_invalid_fd_objects_raises_value_error(loop, bad):
    with pytest.raises(ValueError):
        loop.remove_reader(bad)
    with pytest.raises(ValueError):
        loop.remove_writer(bad)


def test_object_whose_fileno_is_negative_is_rejected(loop):
    class Bad:
        def fileno(self):
            return -1

    with pytest.raises(ValueError):
        loop.add_reader(Bad(), print)


def test_reader_and_writer_on_the_same_fd(loop, pair):
    a, b = pair
    events = []
    done = loop.create_future()

    def on_writable():
        events.append("w")
        loop.remove_writer(a.fileno())
        b.send(b"ping")  # makes a readable

    def on_readable():
        events.append("r")
        a.recv(10)
        loop.remove_reader(a.fileno())
        done.set_result(None)

    loop.add_reader(a.fileno(), on_readable)
    loop.add_writer(a.fileno(), on_writable)
    run(loop, done)
    assert events == ["w", "r"]


def test_removing_writer_keeps_reader_and_vice_versa(loop, pair):
    a, b = pair
    fd = a.fileno()
    got = loop.create_future()
    loop.add_reader(fd, lambda: got.done() or got.set_result(a.recv(100)))
    loop.add_writer(fd, print)
    assert loop.remove_writer(fd) is True
    b.send(b"still-reading")
    assert run(loop, got) == b"still-reading"
    assert loop.remove_reader(fd) is True

    wfut = loop.create_future()
    loop.add_reader(fd, print)
    loop.add_writer(fd, lambda: wfut.done() or wfut.set_result("still-writing"))
    assert loop.remove_reader(fd) is True
    assert run(loop, wfut) == "still-writing"
    assert loop.remove_writer(fd) is True


def test_reader_not_called_for_writability(loop, pair):
    # fd is writable but has nothing to read: only the writer may run.
    a, _ = pair
    fd = a.fileno()
    calls = {"r": 0, "w": 0}

    def on_writable():
        calls["w"] += 1
        if calls["w"] == 20:
            loop.remove_writer(fd)
            loop.stop()

    loop.add_reader(fd, lambda: calls.__setitem__("r", calls["r"] + 1))
    loop.add_writer(fd, on_writable)
    run_forever(loop)
    loop.remove_reader(fd)
    assert calls == {"r": 0, "w": 20}


def test_writer_not_called_for_readability(loop, pair):
    # fd is readable but its send buffer is full: only the reader may run.
    a, b = pair
    fill_send_buffer(a)
    b.send(b"data")
    fd = a.fileno()
    calls = {"r": 0, "w": 0}

    def on_readable():
        calls["r"] += 1
        if calls["r"] == 20:
            loop.remove_reader(fd)
            loop.stop()

    loop.add_writer(fd, lambda: calls.__setitem__("w", calls["w"] + 1))
    loop.add_reader(fd, on_readable)
    run_forever(loop)
    loop.remove_writer(fd)
    assert calls == {"r": 20, "w": 0}


def test_many_fds_ready_at_once(loop):
    pairs = [socketpair_nb() for _ in range(200)]
    try:
        seen = set()
        done = loop.create_future()

        def on_readable(i, sock):
            sock.recv(10)
            loop.remove_reader(sock.fileno())
            seen.add(i)
            if len(seen) == len(pairs):
                done.set_result(None)

        for i, (a, b) in enumerate(pairs):
            loop.add_reader(a.fileno(), on_readable, i, a)
        for _, b in pairs:
            b.send(b"x")
        run(loop, done)
        assert seen == set(range(len(pairs)))
    finally:
        for a, b in pairs:
            a.close()
            b.close()


def test_high_numbered_fd(loop):
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4200:
        pytest.skip(f"RLIMIT_NOFILE soft limit {soft} too low for a high fd")
    a, b = socketpair_nb()
    high = None
    try:
        high = os.dup2(a.fileno(), 4100)
        fut = loop.create_future()

        def on_readable():
            loop.remove_reader(high)
            fut.set_result(os.read(high, 10))

        loop.add_reader(high, on_readable)
        b.send(b"high")
        assert run(loop, fut) == b"high"
    finally:
        if high is not None:
            os.close(high)
        a.close()
        b.close()


def test_remove_reader_from_another_callback_in_the_same_iteration(loop):
    # Both sockets become readable together; whichever callback runs first
    # removes the other's reader, which must then not run.
    (a1, b1), (a2, b2) = socketpair_nb(), socketpair_nb()
    calls = []
    try:
        def make(me, other):
            def cb():
                calls.append(me)
                loop.remove_reader(me.fileno())
                loop.remove_reader(other.fileno())
                loop.call_soon(loop.stop)

            return cb

        loop.add_reader(a1.fileno(), make(a1, a2))
        loop.add_reader(a2.fileno(), make(a2, a1))
        b1.send(b"x")
        b2.send(b"x")
        run_forever(loop)
        assert len(calls) == 1
    finally:
        for s in (a1, b1, a2, b2):
            s.close()


def test_closing_a_watched_fd_inside_a_callback_in_the_same_iteration(loop):
    # The first callback to run removes and closes the other socket, whose event
    # may already be in the batch being dispatched: it must not be delivered.
    (a1, b1), (a2, b2) = socketpair_nb(), socketpair_nb()
    calls = []
    try:
        def make(me, other):
            def cb():
                calls.append(me)
                loop.remove_reader(me.fileno())
                loop.remove_reader(other.fileno())
                other.close()
                loop.call_soon(loop.stop)

            return cb

        loop.add_reader(a1.fileno(), make(a1, a2))
        loop.add_reader(a2.fileno(), make(a2, a1))
        b1.send(b"x")
        b2.send(b"x")
        run_forever(loop)
        assert len(calls) == 1
    finally:
        for s in (a1, b1, a2, b2):
            s.close()


def test_closed_fd_still_watched_does_not_crash_the_loop(loop):
    a, b = socketpair_nb()
    c, d = socketpair_nb()  # opened first, so it does not reuse a's number
    fd = a.fileno()
    loop.add_reader(fd, print, "stale")
    a.close()  # without remove_reader
    b.close()
    # The loop keeps working: timers fire, other fds are served.
    try:
        assert run(loop, _recv_via_reader(loop, c, d, b"after-close")) == b"after-close"
        loop.remove_reader(fd)  # late cleanup: must not raise
    finally:
        c.close()
        d.close()


def test_stale_registration_removed_then_number_reused(loop):
    a, b = socketpair_nb()
    stale_fd = a.fileno()
    loop.add_reader(stale_fd, print, "stale")
    a.close()
    b.close()
    loop.remove_reader(stale_fd)
    c, d = socketpair_nb()
    try:
        if c.fileno() != stale_fd:
            pytest.skip("the OS did not reuse the fd number")
        assert run(loop, _recv_via_reader(loop, c, d, b"reused")) == b"reused"
    finally:
        c.close()
        d.close()


@pytest.mark.skip_loops(
    "asyncio",
    reason="asyncio's selector keeps the stale registration of a closed fd, so a new "
    "reader on the reused number is never called (a CPython limitation); pyloop, "
    "like uvloop, must re-register the fd with the kernel",
)
def test_closed_fd_number_reused_and_watched_without_removal(loop):
    a, b = socketpair_nb()
    stale_fd = a.fileno()
    loop.add_reader(stale_fd, print, "stale")
    a.close()  # without remove_reader
    b.close()
    c, d = socketpair_nb()
    try:
        if c.fileno() != stale_fd:
            pytest.skip("the OS did not reuse the fd number")
        assert run(loop, _recv_via_reader(loop, c, d, b"reused"), timeout=10) == b"reused"
    finally:
        c.close()
        d.close()


async def _recv_via_reader(loop, sock, peer, payload):
    fut = loop.create_future()

    def on_readable():
        loop.remove_reader(sock.fileno())
        if not fut.done():
            fut.set_result(sock.recv(100))

    loop.add_reader(sock.fileno(), on_readable)
    loop.call_later(0.001, peer.send, payload)
    return await fut


def test_remove_reader_on_closed_loop_does_not_raise(loop, pair):
    a, _ = pair
    loop.add_reader(a.fileno(), print)
    loop.close()
    # Cleanup code often runs after the loop closed: asyncio answers False.
    assert not loop.remove_reader(a.fileno())
    assert not loop.remove_writer(a.fileno())


def test_reader_on_a_socket_that_is_closed_and_removed_is_forgotten(loop):
    a, b = socketpair_nb()
    loop.add_reader(a.fileno(), print)
    loop.remove_reader(a.fileno())
    a.close()
    b.close()
    loop.call_soon(loop.stop)
    run_forever(loop)


def test_udp_socket_reader(loop):
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        rx.bind(("127.0.0.1", 0))
        rx.setblocking(False)
        fut = loop.create_future()

        def on_readable():
            loop.remove_reader(rx.fileno())
            fut.set_result(rx.recvfrom(100)[0])

        loop.add_reader(rx.fileno(), on_readable)
        tx.sendto(b"dgram", rx.getsockname())
        assert run(loop, fut) == b"dgram"
    finally:
        rx.close()
        tx.close()


def test_watching_a_closed_fd_raises_oserror(loop):
    fd = os.open(os.devnull, os.O_RDONLY)
    os.close(fd)
    with pytest.raises(OSError):
        loop.add_reader(fd, print)
    with pytest.raises(OSError):
        loop.add_writer(fd, print)
    # Nothing half-registered remains.
    assert not loop.remove_reader(fd)
    assert not loop.remove_writer(fd)


def test_watching_a_regular_file_raises_oserror(loop):
    import tempfile

    with tempfile.TemporaryFile() as f:
        with pytest.raises(OSError):
            loop.add_reader(f.fileno(), print)
        assert not loop.remove_reader(f.fileno())
