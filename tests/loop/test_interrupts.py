"""Ctrl-C and other Python signal handlers while the loop is blocked waiting for events.

Python runs signal handlers in the main thread, between bytecodes.  A loop that
waits in C (epoll_wait with the GIL released) must notice the interruption (EINTR)
and let the handler run promptly; an exception the handler raises propagates out
of run_forever()/run_until_complete() like one raised by a callback.
"""

import asyncio
import signal
import threading
import time

import pytest

from ._util import TIMEOUT, run_forever

pytestmark = pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(),
    reason="signal handlers can only be installed from the main thread",
)


class Interrupted(Exception):
    pass


@pytest.fixture
def sigusr1_raises():
    def handler(signum, frame):
        raise Interrupted(signum)

    old = signal.signal(signal.SIGUSR1, handler)
    yield
    signal.signal(signal.SIGUSR1, old)


def _interrupt_main_when(event, signum, head_start=0.05):
    """From a helper thread: once `event` is set, signal the main thread."""
    main_id = threading.main_thread().ident

    def worker():
        assert event.wait(TIMEOUT)
        time.sleep(head_start)  # make it likely the loop is already blocked (not required)
        signal.pthread_kill(main_id, signum)

    t = threading.Thread(target=worker)
    t.start()
    return t


def test_signal_handler_exception_interrupts_a_blocked_run_forever(loop, sigusr1_raises):
    running = threading.Event()
    t = _interrupt_main_when(running, signal.SIGUSR1)
    loop.call_soon(running.set)
    t0 = time.monotonic()
    try:
        with pytest.raises(Interrupted):
            run_forever(loop)
    finally:
        t.join(TIMEOUT)
    assert time.monotonic() - t0 < TIMEOUT / 3, "the loop did not notice the signal promptly"
    assert not loop.is_running()
    assert loop.run_until_complete(asyncio.sleep(0, "usable")) == "usable"


def test_keyboard_interrupt_while_blocked_in_run_until_complete(loop):
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT is not handled by Python's default handler here")
    running = threading.Event()
    t = _interrupt_main_when(running, signal.SIGINT)
    fut = loop.create_future()
    loop.call_soon(running.set)
    try:
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(asyncio.wait_for(fut, TIMEOUT))
    finally:
        t.join(TIMEOUT)
    assert not loop.is_running()
    fut.cancel()


def test_non_raising_signal_handler_runs_and_loop_keeps_waiting(loop):
    # A handler that returns normally must run promptly, and the loop goes on.
    done = loop.create_future()

    def handler(signum, frame):
        loop.call_soon_threadsafe(done.set_result, signum)

    old = signal.signal(signal.SIGUSR1, handler)
    running = threading.Event()
    t = _interrupt_main_when(running, signal.SIGUSR1)
    loop.call_soon(running.set)
    try:
        assert loop.run_until_complete(asyncio.wait_for(done, TIMEOUT)) == signal.SIGUSR1
    finally:
        t.join(TIMEOUT)
        signal.signal(signal.SIGUSR1, old)


def test_asyncio_runner_ctrl_c_cancels_main_task(loop_factory):
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("asyncio.Runner only installs its SIGINT handler over the default one")
    running = threading.Event()
    seen = []

    async def main():
        running.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    t = _interrupt_main_when(running, signal.SIGINT)
    t0 = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                runner.run(main())
    finally:
        t.join(TIMEOUT)
    assert seen == ["cancelled"]
    assert time.monotonic() - t0 < TIMEOUT / 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
