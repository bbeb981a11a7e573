"""Embedding a pyloop loop in a host's event loop: backend_fd, backend_timeout, run_nowait.

pyloop only (the API is libuv's, which asyncio and uvloop do not offer).  The "host" in
these tests is a ``select``/``selectors`` call on the backend fd, with generous timeouts:
a host that is never woken fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import gc
import select
import socket
import sys
import threading
import time

import pytest

import pyloop
import pyloop.time as ptime

HOST_WAIT = 30.0     # the most a host waits on the backend fd in these tests


@pytest.fixture
def ploop():
    lp = pyloop.new_event_loop()
    yield lp
    if not lp.is_closed():
        lp.close()


def readable(fd, timeout=0.0):
    return bool(select.select([fd], [], [], timeout)[0])


def drain(loop, steps=100):
    """Step while work is ready (what the last step scheduled)."""
    for _ in range(steps):
        if loop.backend_timeout() != 0:
            return
        loop.run_nowait()
    raise AssertionError("the loop never went idle")


def host_run(loop, done, deadline=HOST_WAIT):
    """A minimal host: wait on the backend fd as long as backend_timeout() says, then step."""
    end = time.monotonic() + deadline
    while not done():
        left = end - time.monotonic()
        assert left > 0, "the host was never woken"
        timeout = loop.backend_timeout()
        select.select([loop.backend_fd()], [], [], left if timeout is None else min(timeout, left))
        loop.run_nowait()


# ---- backend_fd -------------------------------------------------------------------------

def test_backend_fd_polls_readable_when_a_watched_fd_is_ready(ploop):
    fd = ploop.backend_fd()
    assert isinstance(fd, int) and fd >= 0 and ploop.backend_fd() == fd
    a, b = socket.socketpair()
    try:
        got = []
        ploop.add_reader(a, lambda: got.append(a.recv(100)))
        assert not readable(fd)
        b.send(b"x")
        assert readable(fd, HOST_WAIT)
        ploop.run_nowait()
        assert got == [b"x"]
        assert not readable(fd)                  # the step consumed the event
        ploop.remove_reader(a)
    finally:
        a.close()
        b.close()


def test_call_soon_threadsafe_wakes_a_host_blocked_on_the_fd(ploop):
    drain(ploop)
    for round_ in range(3):                     # every time, not only the first
        got = []
        assert ploop.backend_timeout() is None  # nothing but the fd can wake the host
        threading.Timer(0.05, ploop.call_soon_threadsafe, (got.append, round_)).start()
        assert readable(ploop.backend_fd(), HOST_WAIT), "no wakeup"
        ploop.run_nowait()
        assert got == [round_]
        drain(ploop)


def test_executor_results_reach_a_host_blocked_on_the_fd(ploop):
    fut = ploop.run_in_executor(None, sum, range(1000))
    host_run(ploop, fut.done)
    assert fut.result() == sum(range(1000))
    ploop.run_until_complete(ploop.shutdown_default_executor())


# ---- backend_timeout ----------------------------------------------------------------------

def test_backend_timeout_follows_callbacks_timers_and_stop(ploop):
    assert ploop.backend_timeout() is None
    h = ploop.call_later(5, lambda: None)
    timeout = ploop.backend_timeout()
    assert 0 < timeout <= 5
    h.cancel()
    assert ploop.backend_timeout() is None      # a cancelled timer is no timer
    ploop.call_at(ploop.time() - 1, lambda: None)
    assert ploop.backend_timeout() == 0         # due
    drain(ploop)
    ploop.call_soon(lambda: None)
    assert ploop.backend_timeout() == 0
    drain(ploop)
    ploop.stop()
    assert ploop.backend_timeout() == 0         # a stop is work for the next step
    assert ploop.run_nowait() is False          # ...which consumes it
    assert ploop.backend_timeout() is None


def test_backend_timeout_with_a_paused_clock(ploop):
    ptime.pause(loop=ploop)
    fired = []
    ploop.call_later(3600, fired.append, 1)
    assert ploop.backend_timeout() == 0         # auto-advance: the next step jumps the clock
    t0 = ploop.time()
    ploop.run_nowait()
    assert fired == [1] and ploop.time() - t0 == pytest.approx(3600)
    ptime.resume(loop=ploop)
    ptime.pause(auto_advance=False, loop=ploop)
    ploop.call_later(60, fired.append, 2)
    assert ploop.backend_timeout() is None      # only advance() or I/O can move it now
    ptime.resume(loop=ploop)


# ---- run_nowait -------------------------------------------------------------------------

def test_run_nowait_runs_what_is_ready_and_never_blocks(ploop):
    order = []
    ploop.call_later(30, order.append, "timer")

    def first():
        order.append("first")
        ploop.call_soon(order.append, "scheduled meanwhile")

    ploop.call_soon(first)
    start = time.monotonic()
    assert ploop.run_nowait() is True           # "scheduled meanwhile" waits for the next step
    assert order == ["first"]
    assert ploop.run_nowait() is False
    assert order == ["first", "scheduled meanwhile"]
    assert ploop.run_nowait() is False          # nothing ready: returns at once
    assert time.monotonic() - start < 10
    assert order == ["first", "scheduled meanwhile"]


def test_the_loop_runs_during_a_step_only(ploop):
    seen = []

    def probe():
        seen.append((asyncio.get_running_loop(), ploop.is_running(),
                     sys.get_asyncgen_hooks().firstiter))

    async def task_probe():
        seen.append(asyncio.current_task())

    hooks = sys.get_asyncgen_hooks()
    ploop.call_soon(probe)
    task = ploop.create_task(task_probe())
    drain(ploop)
    assert seen[0][0] is ploop and seen[0][1] is True
    assert seen[0][2] == ploop._asyncgen_firstiter_hook
    assert seen[1] is task
    assert not ploop.is_running()
    assert asyncio._get_running_loop() is None
    assert sys.get_asyncgen_hooks() == hooks
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()


def test_async_generators_are_finalized_by_the_loop(ploop):
    closed = []

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            closed.append(True)

    async def first_item():
        gen = agen()
        assert await gen.__anext__() == 1
        return gen

    task = ploop.create_task(first_item())
    host_run(ploop, task.done)
    assert closed == []
    ploop.run_until_complete(ploop.shutdown_asyncgens())   # the firstiter hook saw it
    assert closed == [True]
    del task
    gc.collect()


def test_stop_inside_a_step_is_consumed_by_it(ploop):
    ran = []
    ploop.call_soon(ploop.stop)
    ploop.call_soon(ran.append, 1)
    ploop.run_nowait()
    assert ran == [1]                            # the step ran everything that was ready
    assert ploop.backend_timeout() is None       # and left no stop behind
    ploop.call_soon(ploop.stop)
    ploop.run_forever()                          # run_forever after steps: as usual


def test_run_nowait_refuses_when_running_or_closed(ploop):
    errors = []

    def nested():
        try:
            ploop.run_nowait()
        except RuntimeError as exc:
            errors.append(str(exc))

    ploop.call_soon(nested)
    ploop.run_nowait()                           # inside a step
    ploop.call_soon(nested)
    ploop.call_soon(ploop.stop)
    ploop.run_forever()                          # inside run_forever
    assert errors == ["This event loop is already running"] * 2

    async def inside_asyncio():
        with pytest.raises(RuntimeError, match="another loop is running"):
            ploop.run_nowait()

    asyncio.run(inside_asyncio())
    ploop.close()
    for method in (ploop.run_nowait, ploop.backend_fd, ploop.backend_timeout):
        with pytest.raises(RuntimeError, match="closed"):
            method()


def test_close_refused_during_a_step(ploop):
    errors = []

    def try_close():
        try:
            ploop.close()
        except RuntimeError as exc:
            errors.append(str(exc))

    ploop.call_soon(try_close)
    ploop.run_nowait()
    assert errors == ["Cannot close a running event loop"]
    assert not ploop.is_closed()


def test_errors_in_callbacks_go_to_the_handler_and_base_exceptions_propagate(ploop):
    reported = []
    ploop.set_exception_handler(lambda lp, ctx: reported.append(ctx["exception"]))
    ploop.call_soon(lambda: 1 / 0)
    ploop.run_nowait()
    assert isinstance(reported[0], ZeroDivisionError)

    def interrupt():
        raise KeyboardInterrupt

    ploop.call_soon(interrupt)
    with pytest.raises(KeyboardInterrupt):
        ploop.run_nowait()
    assert not ploop.is_running()                # the step's state was undone
    assert asyncio._get_running_loop() is None
    ploop.call_soon(ploop.stop)
    ploop.run_forever()


def test_a_tcp_exchange_driven_by_a_host(ploop):
    async def main():
        async def echo(reader, writer):
            writer.write((await reader.read()).upper())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"embedded")
        writer.write_eof()
        reply = await reader.read()
        writer.close()
        server.close()
        await server.wait_closed()
        return reply

    task = ploop.create_task(main())
    host_run(ploop, task.done)
    assert task.result() == b"EMBEDDED"
    drain(ploop)


def test_debug_mode_steps_report_slow_callbacks(ploop, caplog):
    ploop.set_debug(True)
    ploop.slow_callback_duration = 0.0
    ploop.call_soon(lambda: None)
    with caplog.at_level("WARNING", logger="asyncio"):
        ploop.run_nowait()
    assert any("Executing" in r.getMessage() for r in caplog.records)
    ploop.set_debug(False)
