"""Helpers shared by the loop tests: bounded loop runs and small socket utilities."""

from __future__ import annotations

import asyncio
import socket
import time

#: Generous bound for anything that should take milliseconds: the tests must stay
#: correct on a loaded 2-core machine, so a timeout only ever signals a hang.
TIMEOUT = 30.0


def run(loop: asyncio.AbstractEventLoop, aw, timeout: float = TIMEOUT):
    """run_until_complete(aw), failing with TimeoutError instead of hanging."""
    return loop.run_until_complete(asyncio.wait_for(aw, timeout))


def run_forever(loop: asyncio.AbstractEventLoop, timeout: float = TIMEOUT) -> None:
    """run_forever() until something calls loop.stop(); fail if that takes > timeout."""
    fired = []

    def watchdog():
        fired.append(True)
        loop.stop()

    guard = loop.call_later(timeout, watchdog)
    try:
        loop.run_forever()
    finally:
        guard.cancel()
    assert not fired, f"loop was not stopped within {timeout} s"


def clock_slack(loop_name: str) -> float:
    """How early a timer may fire, as seen by loop.time().

    asyncio runs timers due within the clock's resolution (1 ns on Linux); uvloop's
    clock has 1 ms granularity.  pyloop is held to asyncio's standard.
    """
    if loop_name == "uvloop":
        return 1e-3
    return max(time.get_clock_info("monotonic").resolution, 1e-9)


def socketpair_nb():
    """A connected, non-blocking AF_UNIX stream pair."""
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    return a, b


def tcp_listener(backlog: int = 16) -> socket.socket:
    """A listening TCP socket on 127.0.0.1, port chosen by the OS."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(backlog)
    return srv


def fill_send_buffer(sock: socket.socket) -> int:
    """Write into a non-blocking socket until the kernel refuses more; return bytes written."""
    sock.setblocking(False)
    chunk = b"x" * 65536
    total = 0
    while True:
        try:
            total += sock.send(chunk)
        except (BlockingIOError, InterruptedError):
            # A smaller write may still fit; keep going until even 1 byte won't.
            if len(chunk) == 1:
                return total
            chunk = chunk[: len(chunk) // 2]
