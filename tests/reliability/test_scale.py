"""Short scale and soak checks: the CI versions of bench/soak/*.py (a few seconds each).

* a thousand connections on one loop, every one served;
* 100,000 timers, half cancelled: exactly the rest fire, in deadline order, none early;
* 200 loops created, used (sockets, a server, an executor, signals, child processes)
  and closed: the fd count comes back exactly, RSS stays bounded;
* a ~5 s echo soak with message sizes that exercise flow control: RSS growth bounded.

The semantic checks run on every loop under test (asyncio is the reference); the
resource bounds are generous because RSS on a loaded machine is noisy, and only a
real leak (growth proportional to the work) should trip them.  The long versions,
which print figures, are in bench/soak/ (see docs/reliability-soak.md).
"""
from __future__ import annotations

import asyncio
import gc
import os
import random
import resource
import signal
import socket
import time

import pytest

pytestmark = pytest.mark.timeout(240)

GUARD = 120.0  # seconds: anything here should take a few; this only turns a hang into a failure


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _ensure_nofile(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {needed} needed")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


class Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)

    def pause_writing(self) -> None:
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.transport.resume_reading()


# --------------------------------------------------------------------------- connections

CONNS = 1000


def test_thousand_connections_all_served(loop) -> None:
    # Both ends are in this process: two fds per connection, plus pytest's own.
    _ensure_nofile(2 * CONNS + 256)

    async def main() -> None:
        server = await loop.create_server(Echo, "127.0.0.1", 0, backlog=1024)
        port = server.sockets[0].getsockname()[1]
        gate = asyncio.Semaphore(100)
        socks: list[socket.socket] = []

        async def connect() -> None:
            async with gate:
                s = socket.socket()
                s.setblocking(False)
                socks.append(s)
                await loop.sock_connect(s, ("127.0.0.1", port))

        try:
            await asyncio.gather(*(connect() for _ in range(CONNS)))

            # every connection, open at the same time, echoes its own id back
            async def ping(i: int, s: socket.socket) -> bytes:
                msg = b"%06d" % i
                async with gate:
                    await loop.sock_sendall(s, msg)
                    got = b""
                    while len(got) < len(msg):
                        chunk = await loop.sock_recv(s, 64)
                        assert chunk, f"connection {i} closed by the server"
                        got += chunk
                    return got

            replies = await asyncio.gather(*(ping(i, s) for i, s in enumerate(socks)))
            assert replies == [b"%06d" % i for i in range(CONNS)]
        finally:
            for s in socks:
                s.close()
            server.close()
            await server.wait_closed()

    loop.run_until_complete(asyncio.wait_for(main(), GUARD))


# --------------------------------------------------------------------------- timers

def test_hundred_thousand_timers_half_cancelled(loop) -> None:
    count = 100_000
    rng = random.Random(7)
    order = list(range(count))
    rng.shuffle(order)
    cancel = set(rng.sample(range(count), count // 2))
    fired: list[tuple[int, float, float]] = []
    remaining = [count - len(cancel)]

    def on_timer(i: int, when: float) -> None:
        fired.append((i, when, loop.time()))
        remaining[0] -= 1
        if remaining[0] == 0:
            loop.stop()

    base = loop.time() + 0.2
    step = 1.0 / count  # deadlines spread over one second, all distinct
    handles: list = [None] * count
    for i in order:
        when = base + i * step
        handles[i] = loop.call_at(when, on_timer, i, when)
    for i in cancel:
        handles[i].cancel()
    guard = loop.call_later(GUARD, loop.stop)
    loop.run_forever()
    guard.cancel()

    assert remaining[0] == 0, f"{remaining[0]} timers never fired"
    ids = [f[0] for f in fired]
    assert len(ids) == len(set(ids)), "a timer fired twice"
    assert set(ids) == set(range(count)) - cancel
    whens = [f[1] for f in fired]
    assert whens == sorted(whens), "timers fired out of deadline order"
    early = [(i, when, now) for i, when, now in fired if now < when]
    assert not early, f"{len(early)} timers ran before their deadline, e.g. {early[0]}"


# --------------------------------------------------------------------------- loops

async def _small_work(i: int) -> None:
    loop = asyncio.get_running_loop()
    if i % 4 == 3:
        got = loop.create_future()
        loop.add_signal_handler(signal.SIGUSR1, lambda: got.done() or got.set_result(True))
        try:
            os.kill(os.getpid(), signal.SIGUSR1)
            await got
        finally:
            loop.remove_signal_handler(signal.SIGUSR1)
        if i % 8 == 3:  # a child process in one loop of eight
            proc = await asyncio.create_subprocess_exec("true")
            assert await proc.wait() == 0
    elif i % 3 == 0:
        a, b = socket.socketpair()
        with a, b:
            a.setblocking(False)
            b.setblocking(False)
            await loop.sock_sendall(a, b"x")
            assert await loop.sock_recv(b, 1) == b"x"
    elif i % 3 == 1:
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"hi")
        assert await reader.readexactly(2) == b"hi"
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
    else:
        assert await loop.run_in_executor(None, sum, [1, 2]) == 3
        await asyncio.sleep(0)


def _one_loop(loop_factory, i: int) -> None:
    lp = loop_factory()
    try:
        lp.run_until_complete(asyncio.wait_for(_small_work(i), GUARD))
        lp.run_until_complete(lp.shutdown_asyncgens())
        lp.run_until_complete(lp.shutdown_default_executor())
    finally:
        lp.close()


def test_two_hundred_loops_leave_no_fds_and_bounded_rss(loop_factory) -> None:
    for i in range(12):  # warm-up: imports, executor machinery, allocator pools
        _one_loop(loop_factory, i)
    gc.collect()
    fds0, rss0 = open_fds(), rss_kib()
    for i in range(200):
        _one_loop(loop_factory, i)
        if i == 99:
            gc.collect()
            assert open_fds() == fds0, "fds leaked in the first 100 loops"
    gc.collect()
    fds1, rss1 = open_fds(), rss_kib()
    assert fds1 == fds0, f"open fds went from {fds0} to {fds1} over 200 loops"
    # a leak of even 20 KiB per loop (a buffer, a thread stack) would show as 4 MiB
    assert rss1 - rss0 < 4096, f"RSS grew by {rss1 - rss0} KiB over 200 loops"


# --------------------------------------------------------------------------- echo soak

SOAK_SECONDS = 5.0
SIZES = (64, 1024, 16384, 262144, 512)


def test_echo_soak_rss_bounded(loop) -> None:
    async def client(port: int, k: int, deadline: float) -> int:
        rounds = 0
        turn = k
        while time.monotonic() < deadline:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                for _ in range(50):  # then reconnect: connections churn as well
                    payload = bytes([turn % 251]) * SIZES[turn % len(SIZES)]
                    turn += 1
                    writer.write(payload)
                    assert await reader.readexactly(len(payload)) == payload
                    rounds += 1
                    if time.monotonic() >= deadline:
                        break
            finally:
                writer.close()
                await writer.wait_closed()
        return rounds

    async def main() -> tuple[int, list[int]]:
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        samples: list[int] = []

        async def sample() -> None:
            while True:
                samples.append(rss_kib())
                await asyncio.sleep(0.25)

        sampler = asyncio.ensure_future(sample())
        try:
            # the first second warms allocator pools; its RSS is the baseline
            await asyncio.gather(*(client(port, k, time.monotonic() + 1.0) for k in range(4)))
            gc.collect()
            samples.clear()
            deadline = time.monotonic() + SOAK_SECONDS
            rounds = await asyncio.gather(*(client(port, k, deadline) for k in range(4)))
        finally:
            sampler.cancel()
            server.close()
            await server.wait_closed()
        return sum(rounds), samples

    rounds, samples = loop.run_until_complete(asyncio.wait_for(main(), GUARD))
    assert rounds > 0
    assert len(samples) >= 4, samples
    # Only a per-message or per-connection leak grows steadily; allocator noise is a
    # few MiB at most.  Compare the first and last quarters of the run.
    quarter = max(1, len(samples) // 4)
    head = sorted(samples[:quarter])[quarter // 2]
    tail = sorted(samples[-quarter:])[quarter // 2]
    assert tail - head < 16 * 1024, f"RSS grew {tail - head} KiB during the soak ({rounds} round trips)"
