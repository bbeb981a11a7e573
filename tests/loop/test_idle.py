"""An idle loop sleeps in the kernel: waiting for a timer or an fd must not burn CPU.

Measured with time.thread_time() (CPU time of the loop's own thread), which other
load on the machine does not inflate.
"""

import asyncio
import socket
import time

from ._util import run

WAIT = 0.3
MAX_CPU = 0.1  # a spinning loop would use ~WAIT


def test_waiting_for_a_timer_does_not_spin(loop):
    run(loop, asyncio.sleep(0))  # warm up lazily created resources
    t0 = time.thread_time()
    run(loop, asyncio.sleep(WAIT))
    assert time.thread_time() - t0 < MAX_CPU


def test_cancelled_near_timer_does_not_make_the_loop_spin(loop):
    run(loop, asyncio.sleep(0))
    near = [loop.call_later(0.001 * i, lambda: None) for i in range(1, 50)]
    for h in near:
        h.cancel()
    t0 = time.thread_time()
    run(loop, asyncio.sleep(WAIT))
    assert time.thread_time() - t0 < MAX_CPU


def test_waiting_for_an_fd_does_not_spin(loop):
    a, b = socket.socketpair()
    a.setblocking(False)
    try:
        fut = loop.create_future()
        loop.add_reader(a.fileno(), lambda: fut.done() or fut.set_result(a.recv(10)))
        loop.call_later(WAIT, b.send, b"x")
        t0 = time.thread_time()
        assert run(loop, fut) == b"x"
        assert time.thread_time() - t0 < MAX_CPU
        loop.remove_reader(a.fileno())
    finally:
        a.close()
        b.close()


def test_many_short_sleeps_are_not_busy_waits(loop):
    # 20 x 10 ms sleeps: the loop should be asleep for nearly all of it.
    async def main():
        for _ in range(20):
            await asyncio.sleep(0.01)

    run(loop, asyncio.sleep(0))
    t0 = time.thread_time()
    run(loop, main())
    assert time.thread_time() - t0 < MAX_CPU
