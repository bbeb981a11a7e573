"""A thousand loops created and closed in one process: RSS and open fds must stay flat.

    PYTHONPATH=. python bench/soak/loops.py [--loop pyloop|asyncio|uvloop|all] [--quick] [--loops N]

Each loop runs one small piece of work and is closed the way careful code does
(``shutdown_asyncgens``, ``shutdown_default_executor``, ``close``).  The work rotates:

* a bare coroutine with a task, a timer and ``call_soon``;
* ``sock_sendall``/``sock_recv`` over a socketpair;
* a TCP echo server and one client connection (``create_server``/``open_connection``);
* an ``add_reader`` on a pipe, and a ``run_in_executor`` call;
* a signal handler (added, delivered, removed) and a child process.

RSS and the fd count are sampled after a warm-up, then every tenth of the run.  A
leak shows as growth: fds must come back exactly, RSS should level off (the
allocator keeps some pages; growth proportional to the number of loops is a leak).
"""
from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402


async def tiny() -> None:
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    loop.call_soon(fut.set_result, 1)
    await fut
    await asyncio.create_task(asyncio.sleep(0))
    handle = loop.call_later(10, print)
    handle.cancel()


async def socketpair_io() -> None:
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    with a, b:
        a.setblocking(False)
        b.setblocking(False)
        await loop.sock_sendall(a, b"ping")
        assert await loop.sock_recv(b, 4) == b"ping"


async def tcp_echo() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readexactly(5))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"hello")
    assert await reader.readexactly(5) == b"hello"
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()


async def reader_and_executor() -> None:
    loop = asyncio.get_running_loop()
    r, w = os.pipe()
    try:
        got = loop.create_future()
        loop.add_reader(r, lambda: got.done() or got.set_result(os.read(r, 10)))
        os.write(w, b"x")
        assert await got == b"x"
        loop.remove_reader(r)
    finally:
        os.close(r)
        os.close(w)
    assert await loop.run_in_executor(None, sum, [1, 2]) == 3


async def signal_and_subprocess() -> None:
    loop = asyncio.get_running_loop()
    got = loop.create_future()
    loop.add_signal_handler(signal.SIGUSR1, lambda: got.done() or got.set_result(True))
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        await got
    finally:
        loop.remove_signal_handler(signal.SIGUSR1)
    proc = await asyncio.create_subprocess_exec("echo", "ok", stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    assert out.strip() == b"ok" and proc.returncode == 0


WORK = (tiny, socketpair_io, tcp_echo, reader_and_executor, signal_and_subprocess)


def one_loop(new_loop, i: int) -> None:
    loop = new_loop()
    try:
        loop.run_until_complete(asyncio.wait_for(WORK[i % len(WORK)](), 30))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()


def measure(loop_name: str, n: int, warmup: int) -> dict:
    new_loop = C.loop_factory(loop_name)
    for i in range(warmup):
        one_loop(new_loop, i)
    samples = []
    t0 = time.perf_counter()
    every = max(1, n // 10)
    for i in range(n):
        if i % every == 0:
            gc.collect()
            samples.append((i, C.rss_kib(), C.open_fds()))
        one_loop(new_loop, i)
    elapsed = time.perf_counter() - t0
    gc.collect()
    samples.append((n, C.rss_kib(), C.open_fds()))
    rss_growth = samples[-1][1] - samples[0][1]
    second_half = [s for s in samples if s[0] >= n // 2]
    return {
        "loop": loop_name, "loops": n, "warmup": warmup, "seconds": elapsed,
        "samples": samples,
        "fds_flat": all(s[2] == samples[0][2] for s in samples),
        "rss_growth_kib": rss_growth,
        "rss_growth_bytes_per_loop": rss_growth * 1024 / n,
        "rss_second_half_growth_kib": second_half[-1][1] - second_half[0][1],
    }


def lines_for(r: dict) -> list[str]:
    s = r["samples"]
    mid = s[len(s) // 2]
    return [
        f"{r['loop']}: {r['loops']:,} loops created, run and closed in {r['seconds']:.1f} s"
        f" (after {r['warmup']} warm-up loops) -- fds {'flat' if r['fds_flat'] else 'NOT FLAT'}",
        f"  start: RSS {s[0][1] / 1024:.1f} MiB, {s[0][2]} fds; middle (loop {mid[0]}): {mid[1] / 1024:.1f} MiB,"
        f" {mid[2]} fds; end: {s[-1][1] / 1024:.1f} MiB, {s[-1][2]} fds",
        f"  RSS growth {r['rss_growth_kib']} KiB in all ({r['rss_growth_bytes_per_loop']:.0f} B per loop),"
        f" {r['rss_second_half_growth_kib']} KiB over the second half",
        "  samples (loop, RSS KiB, fds): " + ", ".join(f"({i}, {rss}, {fds})" for i, rss, fds in s),
    ]


def summarise(results: dict[str, dict]) -> list[str]:
    rows = []
    for name, r in results.items():
        s = r["samples"]
        mid = s[len(s) // 2]
        rows.append([name, f"{r['loops']:,}", f"{r['seconds']:.1f}",
                     f"{s[0][1] / 1024:.1f} / {mid[1] / 1024:.1f} / {s[-1][1] / 1024:.1f}",
                     f"{s[0][2]} / {mid[2]} / {s[-1][2]}", f"{r['rss_growth_bytes_per_loop']:.0f}",
                     "yes" if r["fds_flat"] else "NO"])
    return C.table(["loop", "loops", "seconds", "RSS MiB start/mid/end", "fds start/mid/end",
                    "RSS growth B/loop", "fds flat"], rows)


def main() -> int:
    def extra(p):
        p.add_argument("--loops", type=int, default=None, help="loops to create (1,000; 100 with --quick)")
        p.add_argument("--warmup", type=int, default=20)

    args = C.parse_args(__doc__.splitlines()[0], extra)
    if args.loops is None:
        args.loops = 100 if args.quick else 1000
    if args.loop == "all":
        return C.run_all(__file__, args, C.child_argv(args, ["loops", "warmup"]), 1800, summarise)
    r = measure(args.loop, args.loops, args.warmup)
    C.emit(args, r, lines_for(r))
    return 0 if r["fds_flat"] else 1


if __name__ == "__main__":
    sys.exit(main())
