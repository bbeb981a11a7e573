"""fork() from inside a running loop that is serving traffic, on asyncio and
pyloop.

tests/loop/test_fork_threads.py covers what the forked copy of a loop may
and may not do.  Here the point is the parent: a server protocol forks from
``data_received`` again and again while several clients stream echo
traffic; each child does a little work and leaves with ``os._exit``.  The
parent must go on serving every connection with no byte lost, repeated or
reordered, and each child must exit cleanly.
"""

from __future__ import annotations

import asyncio
import os
import random
from typing import Callable

import pytest

from ._fault_util import echo_once, poll, run

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
]


class ForkingEcho(asyncio.Protocol):
    """Echoes; every ``every``-th data_received forks a child that runs
    ``child_work()``, writes one byte to ``pipe_w`` if it succeeded, and
    exits (up to ``limit`` children in all)."""

    def __init__(self, pids: list[int], pipe_w: int, every: int, limit: int,
                 child_work: Callable[[], None]) -> None:
        self.child_work = child_work
        self.pids = pids
        self.pipe_w = pipe_w
        self.every = every
        self.limit = limit
        self.calls = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[attr-defined]
        self.calls += 1
        if self.calls % self.every == 0 and len(self.pids) < self.limit:
            pid = os.fork()
            if pid == 0:
                # The child: never return into the test runner's stack.
                code = 1
                try:
                    self.child_work()
                    os.write(self.pipe_w, b"c")
                    code = 0
                finally:
                    os._exit(code)
            self.pids.append(pid)


def _reap(pids: list[int], statuses: dict[int, int]) -> bool:
    for pid in pids:
        if pid in statuses:
            continue
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            statuses[pid] = status
    return len(statuses) == len(pids)


@pytest.mark.parametrize("child_does", ["exit", "serve_itself"])
def test_fork_in_callback_while_serving(loop_impl, loop, child_does):
    """``serve_itself``: the child starts a fresh loop of the same kind and
    makes an echo round trip through the parent's server -- the parent serves
    its own children too, while forking goes on."""
    limit = 24
    port_box: list[int] = []

    def child_work() -> None:
        if child_does == "exit":
            return
        fresh = loop_impl.new_loop()
        try:
            msg = b"from child %d" % os.getpid()
            got = fresh.run_until_complete(echo_once("127.0.0.1", port_box[0], msg))
            assert got == msg
        finally:
            fresh.close()

    async def client(port: int, seed: int) -> int:
        rng = random.Random(seed)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        total = 0
        try:
            for _ in range(60):
                payload = rng.randbytes(rng.choice([1, 500, 8192, 100_000]))
                writer.write(payload)
                assert await reader.readexactly(len(payload)) == payload
                total += len(payload)
        finally:
            writer.close()
        return total

    async def main():
        pids: list[int] = []
        r, w = os.pipe()
        try:
            server = await loop.create_server(
                lambda: ForkingEcho(pids, w, 7, limit, child_work), "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            port_box.append(port)
            totals = await asyncio.gather(*(client(port, seed) for seed in range(4)))
            assert all(t > 0 for t in totals)
            assert len(pids) == limit, "the traffic did not fork as often as planned"
            statuses: dict[int, int] = {}
            await poll(lambda: _reap(pids, statuses), "every child to exit")
            assert all(os.waitstatus_to_exitcode(s) == 0 for s in statuses.values()), statuses
            os.close(w)
            w = -1
            marks = b""
            while True:
                chunk = os.read(r, 100)
                if not chunk:
                    break
                marks += chunk
            assert marks == b"c" * limit
            # After all that, a new client is still served.
            assert await echo_once("127.0.0.1", port, b"after the forks") == b"after the forks"
            server.close()
            await server.wait_closed()
        finally:
            for pid in pids:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
            os.close(r)
            if w >= 0:
                os.close(w)

    run(loop, main(), 90)
