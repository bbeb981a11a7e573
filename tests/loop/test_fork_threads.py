"""Loops and processes, loops and threads.

Fork
----
A forked child inherits a copy of every loop, and the copy shares its kernel
objects with the parent: the epoll instance (so any ``epoll_ctl`` in the child
edits the parent's registrations, and any ``epoll_wait`` steals the parent's
events), the wakeup eventfd, the sockets.  pyloop's answer: the copy refuses to
run or to watch fds (RuntimeError naming fork), bookkeeping calls stay harmless,
and ``close()`` only drops the child's file descriptors, so the parent's loop
goes on as if nothing happened.  A new loop made in the child works.

Every fork test forks from the test itself; the child reports through a pipe
(pickled) and always leaves with ``os._exit``, never returning into pytest.

Threads
-------
Each thread may run its own loop, all at once; ``call_soon_threadsafe`` from many
threads loses nothing and keeps each thread's order while the loop is busy with
its own work.

Where asyncio and pyloop must agree the tests are parametrized over both; the
pyloop-only checks say why asyncio is left out.
"""

import asyncio
import contextvars
import os
import pickle
import select
import signal
import subprocess
import sys
import threading
import time
import traceback

import pytest

from ._util import TIMEOUT, run, run_forever, socketpair_nb

needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is not available")

pyloop_only_fork = pytest.mark.skip_loops(
    "asyncio",
    "uvloop",
    reason="a forked copy of an asyncio loop runs on the shared epoll object, "
    "and its close()/remove_reader() unregister the parent's fds",
)


# ---- fork helpers ------------------------------------------------------------


def _child_exit(w, fn):
    """In the child: run fn(), send ('ok', result) or ('raised', text) through w,
    and leave the process.  Never returns."""
    code = 0
    try:
        try:
            payload = ("ok", fn())
        except BaseException as exc:
            payload = ("raised", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        try:
            data = pickle.dumps(payload)
        except Exception as exc:
            data = pickle.dumps(("raised", f"unpicklable result: {exc!r}"))
        view = memoryview(data)
        while view:
            view = view[os.write(w, view):]
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def _collect(r, pid, timeout=TIMEOUT):
    """In the parent: read the child's report from r, reap the child, return the
    result (or fail with what the child raised)."""
    deadline = time.monotonic() + timeout
    chunks = []
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([r], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                pytest.fail(f"forked child did not report within {timeout} s")
            chunk = os.read(r, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(r)
        _reap(pid, deadline)
    data = b"".join(chunks)
    assert data, "forked child died without a report"
    status, value = pickle.loads(data)
    if status != "ok":
        pytest.fail(f"forked child raised:\n{value}")
    return value


def _reap(pid, deadline):
    while True:
        wpid, status = os.waitpid(pid, os.WNOHANG)
        if wpid:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("forked child did not exit")
        # Not a synchronisation: a bounded wait for a process that already
        # closed its end of the pipe and is about to exit.
        time.sleep(0.001)


def in_child(fn, timeout=TIMEOUT):
    """Fork; run fn() in the child; return its (picklable) result here."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        _child_exit(w, fn)
    os.close(w)
    return _collect(r, pid, timeout)


def _outcome(fn, *args):
    """('ok', repr(result)) or ('raised', exception type name, message)."""
    try:
        return ("ok", repr(fn(*args)))
    except Exception as exc:
        return ("raised", type(exc).__name__, str(exc))


def _prime(loop):
    """Run one iteration so everything registered so far is in the kernel."""
    run(loop, asyncio.sleep(0))


def _reader_fires(loop, rsock, wsock, payload=b"ping"):
    """Register a reader on rsock in loop, send payload through wsock, return what
    the reader got (bounded by the usual timeout)."""
    fut = loop.create_future()

    def on_readable():
        if not fut.done():
            fut.set_result(rsock.recv(100))

    loop.add_reader(rsock.fileno(), on_readable)
    try:
        wsock.send(payload)
        return run(loop, fut)
    finally:
        loop.remove_reader(rsock.fileno())


async def _exercise_loop(loop):
    """A little of everything a loop does; returns a summary to compare."""
    out = {}
    order = []
    loop.call_later(0.02, order.append, "late")
    loop.call_later(0.005, order.append, "early")
    loop.call_soon(order.append, "soon")
    await asyncio.sleep(0.03)
    out["timers"] = order

    a, b = socketpair_nb()
    try:
        data = bytes(range(256)) * 1024  # 256 KiB: more than a socket buffer holds
        send = asyncio.ensure_future(loop.sock_sendall(a, data))
        got = bytearray()
        while len(got) < len(data):
            got += await loop.sock_recv(b, 65536)
        await send
        out["sock"] = bytes(got) == data
    finally:
        a.close()
        b.close()

    out["executor"] = await loop.run_in_executor(None, sum, range(1000))

    fut = loop.create_future()
    t = threading.Thread(target=loop.call_soon_threadsafe, args=(fut.set_result, "ts"))
    t.start()
    out["threadsafe"] = await fut
    t.join(TIMEOUT)
    return out


EXPECTED_EXERCISE = {
    "timers": ["soon", "early", "late"],
    "sock": True,
    "executor": sum(range(1000)),
    "threadsafe": "ts",
}


# ---- fork: the inherited copy --------------------------------------------------


@needs_fork
@pyloop_only_fork
def test_forked_copy_refuses_to_run(loop):
    a, b = socketpair_nb()
    loop.add_reader(a.fileno(), lambda: None)
    _prime(loop)

    def child():
        res = {}
        fut = loop.create_future()
        res["run_until_complete(future)"] = _outcome(loop.run_until_complete, fut)
        started = []

        async def coro():
            started.append(True)

        c = coro()
        res["run_until_complete(coro)"] = _outcome(loop.run_until_complete, c)
        c.close()
        res["coro started"] = bool(started)
        res["run_forever"] = _outcome(loop.run_forever)
        res["add_reader"] = _outcome(loop.add_reader, b.fileno(), lambda: None)
        res["add_writer"] = _outcome(loop.add_writer, b.fileno(), lambda: None)
        res["is_running"] = loop.is_running()
        res["is_closed"] = loop.is_closed()
        return res

    try:
        res = in_child(child)
        for what in ("run_until_complete(future)", "run_until_complete(coro)", "run_forever",
                     "add_reader", "add_writer"):
            outcome = res[what]
            assert outcome[:2] == ("raised", "RuntimeError"), (what, outcome)
            assert "fork" in outcome[2], (what, outcome)
        assert res["coro started"] is False
        assert res["is_running"] is False
        assert res["is_closed"] is False
        # And here nothing changed.
        assert _reader_fires(loop, a, b) == b"ping"
    finally:
        loop.remove_reader(a.fileno())
        a.close()
        b.close()


@needs_fork
@pyloop_only_fork
def test_forked_copy_bookkeeping_calls_and_close(loop):
    a, b = socketpair_nb()
    _prime(loop)

    def child():
        res = {}
        res["call_soon"] = _outcome(loop.call_soon, print)
        res["call_later"] = _outcome(lambda: loop.call_later(10, print).cancel())
        res["call_soon_threadsafe"] = _outcome(loop.call_soon_threadsafe, print)
        res["create_future"] = _outcome(loop.create_future)
        res["time"] = _outcome(loop.time)
        res["remove_reader(unknown)"] = _outcome(loop.remove_reader, b.fileno())
        res["close"] = _outcome(loop.close)
        res["close again"] = _outcome(loop.close)
        res["is_closed"] = loop.is_closed()
        res["call_soon after close"] = _outcome(loop.call_soon, print)
        res["run after close"] = _outcome(loop.run_forever)
        return res

    try:
        res = in_child(child)
    finally:
        a.close()
        b.close()
    for what in ("call_soon", "call_later", "call_soon_threadsafe", "create_future", "time",
                 "close", "close again"):
        assert res[what][0] == "ok", (what, res[what])
    assert res["remove_reader(unknown)"] == ("ok", "False")
    assert res["is_closed"] is True
    assert res["call_soon after close"][:2] == ("raised", "RuntimeError")
    assert "closed" in res["call_soon after close"][2]
    assert res["run after close"][:2] == ("raised", "RuntimeError")
    # The parent's loop still runs.
    assert run(loop, asyncio.sleep(0, "parent")) == "parent"


@needs_fork
def test_child_closing_its_copy_leaves_the_parents_readers(loop):
    # Holds for asyncio too: its close() unregisters only its own self-pipe.
    a, b = socketpair_nb()
    fut = loop.create_future()

    def on_readable():
        if not fut.done():
            fut.set_result(a.recv(100))

    loop.add_reader(a.fileno(), on_readable)
    _prime(loop)
    try:
        assert in_child(loop.close) is None
        # The reader registered before the fork fires after the child's close().
        b.send(b"after-close")
        assert run(loop, fut) == b"after-close"
        loop.remove_reader(a.fileno())
        # New registrations work too.
        assert _reader_fires(loop, a, b, b"new") == b"new"
    finally:
        loop.remove_reader(a.fileno())
        a.close()
        b.close()


@needs_fork
@pyloop_only_fork
def test_child_unwatching_and_closing_leaves_the_parent_intact(loop):
    # What a careful child does with an inherited loop: unwatch every fd and
    # close it.  No epoll_ctl(DEL) may reach the shared epoll object.
    a, b = socketpair_nb()
    readable = loop.create_future()
    writable = loop.create_future()

    def on_readable():
        if not readable.done():
            readable.set_result(a.recv(100))

    def on_writable():
        loop.remove_writer(a.fileno())
        writable.set_result(True)

    loop.add_reader(a.fileno(), on_readable)
    loop.add_writer(a.fileno(), on_writable)

    def child():
        return (loop.remove_reader(a.fileno()), loop.remove_writer(a.fileno()),
                loop.close(), loop.is_closed())

    try:
        assert in_child(child) == (True, True, None, True)
        b.send(b"still here")

        async def both():
            return await readable, await writable

        assert run(loop, both()) == (b"still here", True)
    finally:
        loop.remove_reader(a.fileno())
        loop.remove_writer(a.fileno())
        a.close()
        b.close()


@needs_fork
@pyloop_only_fork
def test_parent_wakeup_survives_child_close(loop):
    # asyncio 3.11's close() in the child unregisters the self-pipe from the
    # shared epoll: the parent's call_soon_threadsafe then no longer wakes it.
    _prime(loop)
    assert in_child(lambda: loop.close()) is None

    started = threading.Event()

    def worker():
        assert started.wait(TIMEOUT)
        # A head start only makes it likely that the loop is asleep in the
        # poller; the test is correct whichever way the race goes.
        time.sleep(0.05)
        loop.call_soon_threadsafe(loop.stop)

    t = threading.Thread(target=worker)
    t.start()
    loop.call_soon(started.set)
    t0 = time.monotonic()
    try:
        run_forever(loop)
    finally:
        t.join(TIMEOUT)
    assert time.monotonic() - t0 < TIMEOUT / 3


@needs_fork
@pyloop_only_fork
def test_child_closing_inherited_transport_and_loop_leaves_the_parents_connection(loop):
    handlers = []

    async def start():
        async def echo(reader, writer):
            handlers.append(asyncio.current_task())
            while data := await reader.read(100):
                writer.write(data)
                await writer.drain()
            writer.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"one")
        assert await reader.readexactly(3) == b"one"
        return server, reader, writer

    server, reader, writer = run(loop, start())

    def child():
        writer.transport.close()
        loop.close()
        return "closed"

    try:
        assert in_child(child) == "closed"

        async def more():
            writer.write(b"two")
            return await reader.readexactly(3)

        assert run(loop, more()) == b"two"
    finally:
        writer.close()
        server.close()

        async def cleanup():
            await writer.wait_closed()
            await server.wait_closed()
            await asyncio.gather(*handlers, return_exceptions=True)

        run(loop, cleanup())


@needs_fork
@pyloop_only_fork
def test_parent_subprocess_survives_child_close(loop):
    async def start():
        return await asyncio.create_subprocess_exec(
            sys.executable, "-c", "import sys; sys.exit(len(sys.stdin.read()))",
            stdin=subprocess.PIPE)

    proc = run(loop, start())
    try:
        assert in_child(lambda: loop.close()) is None

        async def finish():
            proc.stdin.write(b"abcde")
            proc.stdin.close()
            return await proc.wait()

        assert run(loop, finish()) == 5
    finally:
        if proc.returncode is None:
            proc.kill()
            run(loop, proc.wait())


@needs_fork
@pyloop_only_fork
def test_fork_inside_a_running_loop_child_copy_stops(loop):
    # The child returns from os.fork() inside a callback of the running loop.
    # Its next iteration must fail (RuntimeError naming fork) before polling:
    # a poll would take the event below, meant for the parent's reader.
    a, b = socketpair_nb()
    got = []
    arrived = loop.create_future()

    def on_readable():
        got.append((os.getpid(), a.recv(100)))
        if not arrived.done():
            arrived.set_result(None)

    loop.add_reader(a.fileno(), on_readable)
    parent = os.getpid()
    r, w = os.pipe()

    async def main():
        await asyncio.sleep(0)
        b.send(b"for-the-parent")  # a is readable; the parent has not polled since
        pid = os.fork()
        if pid == 0:
            return "child"
        os.close(w)
        # No polling here until the child is gone: only it can take the event.
        report = _collect(r, pid)
        if not report["got"]:
            await arrived
        return report

    try:
        outcome = ("returned", loop.run_until_complete(asyncio.wait_for(main(), TIMEOUT)))
    except BaseException as exc:
        outcome = ("raised", type(exc).__name__, str(exc))
    if os.getpid() != parent:
        os.close(r)
        _child_exit(w, lambda: {"outcome": outcome, "got": got})
    try:
        assert outcome[0] == "returned", outcome
        report = outcome[1]
        assert report["got"] == [], "the child ran the parent's reader"
        assert report["outcome"][:2] == ("raised", "RuntimeError"), report
        assert "fork" in report["outcome"][2], report
        assert got == [(parent, b"for-the-parent")]
    finally:
        loop.remove_reader(a.fileno())
        a.close()
        b.close()


# ---- fork: a new loop in the child ---------------------------------------------


@needs_fork
def test_new_loop_in_child_works(loop_impl, loop):
    _prime(loop)

    def child():
        fresh = loop_impl.new_loop()
        try:
            return fresh.run_until_complete(asyncio.wait_for(_exercise_loop(fresh), TIMEOUT))
        finally:
            fresh.run_until_complete(fresh.shutdown_default_executor())
            fresh.close()

    assert in_child(child) == EXPECTED_EXERCISE
    assert run(loop, _exercise_loop(loop)) == EXPECTED_EXERCISE


@needs_fork
def test_new_loop_in_child_forked_from_a_running_loop(loop_impl, loop):
    # multiprocessing's 'fork' start method from inside a coroutine: the child
    # never returns to the inherited loop, it starts its own.
    def child():
        fresh = loop_impl.new_loop()
        try:
            return fresh.run_until_complete(asyncio.wait_for(_exercise_loop(fresh), TIMEOUT))
        finally:
            fresh.run_until_complete(fresh.shutdown_default_executor())
            fresh.close()

    async def main():
        await asyncio.sleep(0)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            _child_exit(w, child)
        os.close(w)
        return _collect(r, pid)

    assert run(loop, main()) == EXPECTED_EXERCISE


@needs_fork
@pytest.mark.skip_loops("asyncio", "uvloop", reason="tests pyloop.run")
def test_pyloop_run_in_child(loop):
    import pyloop

    _prime(loop)

    async def main():
        return await _exercise_loop(asyncio.get_running_loop())

    assert in_child(lambda: pyloop.run(main())) == EXPECTED_EXERCISE


# ---- threads: one loop per thread ----------------------------------------------

N_LOOP_THREADS = 8


def _run_in_thread(loop_impl, coro):
    if loop_impl.name == "pyloop":
        import pyloop

        return pyloop.run(coro)
    with asyncio.Runner(loop_factory=loop_impl.new_loop) as runner:
        return runner.run(coro)


def test_each_thread_runs_its_own_loop(loop_impl):
    start = threading.Barrier(N_LOOP_THREADS)
    results = [None] * N_LOOP_THREADS
    errors = []

    async def work(i):
        loop = asyncio.get_running_loop()
        me = threading.get_ident()
        out = {"loop": id(loop), "type": type(loop).__name__}

        # Timers: fire in deadline order, each after its deadline.
        fired = []
        handles = [loop.call_later(d, lambda d=d: fired.append((d, loop.time())))
                   for d in (0.03, 0.01, 0.02, 0.0)]
        whens = {d: h.when() for d, h in zip((0.03, 0.01, 0.02, 0.0), handles)}
        await asyncio.sleep(0.05)
        out["timer order"] = [d for d, _ in fired]
        out["timers on time"] = all(t >= whens[d] for d, t in fired)

        # Sockets: a round trip bigger than the socket buffers, both ways.
        a, b = socketpair_nb()
        try:
            payload = bytes([i]) * (300 * 1024)
            send = asyncio.ensure_future(loop.sock_sendall(a, payload))
            got = bytearray()
            while len(got) < len(payload):
                got += await loop.sock_recv(b, 65536)
            await send
            await loop.sock_sendall(b, b"ack%d" % i)
            ack = await loop.sock_recv(a, 100)
            out["sock"] = (bytes(got) == payload, ack)
        finally:
            a.close()
            b.close()

        # Executor work, several at once, off this thread.
        def job(x):
            return x * x, threading.get_ident() != me

        done = await asyncio.gather(*(loop.run_in_executor(None, job, i * 10 + k)
                                      for k in range(5)))
        out["executor"] = done

        # Tasks and a thread calling back in.
        fut = loop.create_future()
        t = threading.Thread(target=loop.call_soon_threadsafe, args=(fut.set_result, i))
        t.start()
        out["threadsafe"] = await fut
        t.join(TIMEOUT)
        out["running loop"] = asyncio.get_running_loop() is loop
        return out

    def thread_main(i):
        try:
            start.wait(TIMEOUT)
            results[i] = _run_in_thread(loop_impl, asyncio.wait_for(work(i), TIMEOUT))
        except BaseException:
            errors.append((i, traceback.format_exc()))

    threads = [threading.Thread(target=thread_main, args=(i,)) for i in range(N_LOOP_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 2)
        assert not t.is_alive(), "a loop thread hung"
    assert not errors, errors[0][1]

    assert len({r["loop"] for r in results}) == N_LOOP_THREADS, "threads shared a loop"
    for i, r in enumerate(results):
        assert r["timer order"] == [0.0, 0.01, 0.02, 0.03], (i, r)
        assert r["timers on time"], (i, r)
        assert r["sock"] == (True, b"ack%d" % i), (i, r)
        assert r["executor"] == [((i * 10 + k) ** 2, True) for k in range(5)], (i, r)
        assert r["threadsafe"] == i
        assert r["running loop"] is True
    if loop_impl.name == "pyloop":
        assert {r["type"] for r in results} == {"Loop"}


def test_loops_in_threads_and_asyncio_get_running_loop_isolation(loop_impl):
    # Each thread sees its own running loop and no other thread's.
    start = threading.Barrier(N_LOOP_THREADS)
    seen = {}
    errors = []

    async def probe(i):
        loop = asyncio.get_running_loop()
        start.wait(TIMEOUT)  # every loop is running now
        for _ in range(50):
            await asyncio.sleep(0)
            assert asyncio.get_running_loop() is loop
        return id(loop)

    def thread_main(i):
        try:
            seen[i] = _run_in_thread(loop_impl, probe(i))
        except BaseException:
            errors.append(traceback.format_exc())

    threads = [threading.Thread(target=thread_main, args=(i,)) for i in range(N_LOOP_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 2)
        assert not t.is_alive()
    assert not errors, errors[0]
    assert len(set(seen.values())) == N_LOOP_THREADS


# ---- threads: call_soon_threadsafe under load ----------------------------------

N_THREADS = 16
N_CALLS = 5000


def test_threadsafe_from_many_threads_under_load(loop):
    total = N_THREADS * N_CALLS
    received = []
    done = loop.create_future()
    start = threading.Barrier(N_THREADS + 1)
    chatter = {"soon": 0, "timers": 0, "sleep0": 0, "sock": 0}

    def on_item(item):
        received.append(item)
        if len(received) == total and not done.done():
            done.set_result(None)

    def worker(tid):
        start.wait(TIMEOUT)
        for i in range(N_CALLS):
            loop.call_soon_threadsafe(on_item, (tid, i))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(N_THREADS)]
    for t in threads:
        t.start()

    def soon_chain():
        chatter["soon"] += 1
        if not done.done():
            loop.call_soon(soon_chain)

    def timer_chain():
        chatter["timers"] += 1
        if not done.done():
            loop.call_later(0.0005, timer_chain)

    async def sleeper():
        while not done.done():
            chatter["sleep0"] += 1
            await asyncio.sleep(0)

    async def recv_exactly(sock, n):
        got = 0
        while got < n:
            got += len(await loop.sock_recv(sock, n - got))

    async def ping_pong():
        a, b = socketpair_nb()
        try:
            while not done.done():
                recv = asyncio.ensure_future(recv_exactly(b, 100))
                await asyncio.sleep(0)  # the receiver now waits in the reactor
                await loop.sock_sendall(a, b"x" * 100)
                await recv
                chatter["sock"] += 1
        finally:
            a.close()
            b.close()

    async def main():
        loop.call_soon(soon_chain)
        loop.call_soon(timer_chain)
        helpers = [asyncio.ensure_future(sleeper()), asyncio.ensure_future(ping_pong())]
        # Release the workers only once the loop is running its own traffic.
        loop.call_soon(start.wait, TIMEOUT)
        await done
        await asyncio.gather(*helpers)

    try:
        run(loop, main(), timeout=TIMEOUT * 3)
    finally:
        for t in threads:
            t.join(TIMEOUT)
            assert not t.is_alive(), "worker thread hung"
    assert len(received) == total
    per_thread = {}
    for tid, i in received:
        per_thread.setdefault(tid, []).append(i)
    assert sorted(per_thread) == list(range(N_THREADS))
    for tid, seq in per_thread.items():
        assert seq == list(range(N_CALLS)), f"thread {tid}'s calls were reordered or lost"
    assert all(chatter.values()), chatter


def test_threadsafe_from_many_threads_into_an_idle_loop(loop):
    # The loop has nothing of its own to do: it sleeps in the poller between
    # bursts, so every burst depends on the wakeup.
    n_threads, rounds, per_round = 8, 50, 20
    total = n_threads * rounds * per_round
    received = []
    done = loop.create_future()
    go = [threading.Semaphore(0) for _ in range(n_threads)]

    def on_item(item):
        received.append(item)
        if len(received) == total and not done.done():
            done.set_result(None)

    def worker(tid):
        for r in range(rounds):
            assert go[tid].acquire(timeout=TIMEOUT)
            for k in range(per_round):
                loop.call_soon_threadsafe(on_item, (tid, r * per_round + k))
            loop.call_soon_threadsafe(go[tid].release)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    for t in threads:
        t.start()
    for g in go:
        loop.call_soon(g.release)
    try:
        run(loop, done, timeout=TIMEOUT * 2)
    finally:
        for g in go:
            g.release()  # unblock a worker left waiting after a failure
        for t in threads:
            t.join(TIMEOUT)
            assert not t.is_alive(), "worker thread hung"
    per_thread = {}
    for tid, i in received:
        per_thread.setdefault(tid, []).append(i)
    for tid in range(n_threads):
        assert per_thread[tid] == list(range(rounds * per_round))


@pytest.mark.skip_loops(
    "asyncio", "uvloop",
    reason="pyloop-specific window: dropping cancelled timers just before the poll",
)
def test_threadsafe_call_made_while_cancelled_timers_are_dropped(loop):
    # Dropping a cancelled timer releases its context; a value's __del__ runs
    # Python code, during which another thread calls in.  That call must
    # still wake the loop, which would otherwise sleep until the far timer.
    var = contextvars.ContextVar("var")
    events = []

    def woken():
        events.append("woken")
        loop.stop()

    class CallsInFromAThread:
        def __del__(self):
            t = threading.Thread(target=loop.call_soon_threadsafe, args=(woken,))
            t.start()
            t.join(TIMEOUT)

    # What a missed wakeup waits for; more live timers than cancelled ones, so
    # cancel() does not compact the heap at once.
    far = [loop.call_later(TIMEOUT / 6, events.append, "far timer") for _ in range(3)]

    def arm():
        ctx = contextvars.Context()
        ctx.run(var.set, CallsInFromAThread())
        loop.call_later(0.001, events.append, "cancelled timer", context=ctx).cancel()

    loop.call_soon(arm)
    try:
        run_forever(loop)
    finally:
        for h in far:
            h.cancel()
    assert events == ["woken"]
