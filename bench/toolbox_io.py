"""Short measurements for pyloop.fs and pyloop.net (issue #5 items 4 and 5).

    PYTHONPATH=. python bench/toolbox_io.py [--lines 100000] [--messages 20000]

fs: iterate a file of short lines with the built-in open(), with pyloop.fs
(text and binary), and with one pool hop per line (what a thin wrapper such as
aiofiles does), counting hops.  net: a 1 KiB request/response echo over one
connection, pyloop.net streams against asyncio streams, on each loop, timed
in process CPU time (steadier than wall time on a shared machine).
Medians of a few interleaved rounds; the machine is shared, so read ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time

import pyloop
from pyloop import _blocking, fs
from pyloop.net import TcpListener, TcpStream


def make_file(path: str, lines: int) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for i in range(lines):
            f.write(f"line {i} of the benchmark file\n")


def sync_lines(path: str) -> int:
    n = 0
    with open(path, encoding="utf-8") as f:
        for _ in f:
            n += 1
    return n


async def fs_lines(path: str, mode: str) -> int:
    n = 0
    async with fs.open(path, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
        async for _ in f:
            n += 1
    return n


async def hop_per_line(path: str) -> int:
    n = 0
    f = await _blocking.run_blocking(open, path, encoding="utf-8")
    try:
        while await _blocking.run_blocking(f.readline):
            n += 1
    finally:
        await _blocking.run_blocking(f.close)
    return n


def bench_fs(lines: int, rounds: int) -> None:
    d = tempfile.mkdtemp()
    path = os.path.join(d, "lines.txt")
    make_file(path, lines)
    hops = 0
    real = _blocking.run_blocking

    async def counting(fn, *a, **k):
        nonlocal hops
        hops += 1
        return await real(fn, *a, **k)

    results: dict[str, list[float]] = {}

    def timed(name, fn):
        t = time.perf_counter()
        assert fn() == lines
        results.setdefault(name, []).append(time.perf_counter() - t)

    for _ in range(rounds):
        timed("sync open()", lambda: sync_lines(path))
        for loop_name, new in (("asyncio", asyncio.new_event_loop), ("pyloop", pyloop.new_event_loop)):
            lp = new()
            try:
                timed(f"fs text [{loop_name}]", lambda: lp.run_until_complete(fs_lines(path, "r")))
                timed(f"fs binary [{loop_name}]", lambda: lp.run_until_complete(fs_lines(path, "rb")))
                if lines <= 200_000:
                    timed(f"hop per line [{loop_name}]", lambda: lp.run_until_complete(hop_per_line(path)))
            finally:
                lp.close()
    _blocking.run_blocking = counting
    try:
        lp = pyloop.new_event_loop()
        lp.run_until_complete(fs_lines(path, "r"))
        lp.close()
    finally:
        _blocking.run_blocking = real
    base = statistics.median(results["sync open()"])
    print(f"\n{lines} lines ({os.path.getsize(path)} bytes); pool hops for one fs text pass: {hops}")
    print(f"{'variant':28} {'median ms':>10} {'ns/line':>9} {'x sync':>7}")
    for name, ts in results.items():
        m = statistics.median(ts)
        print(f"{name:28} {m * 1e3:10.1f} {m / lines * 1e9:9.0f} {m / base:7.1f}")


async def echo_pyloop_net(messages: int, size: int) -> float:
    async def handle(conn):
        async with conn:
            while True:
                try:
                    data = await conn.read_exact(size)
                except asyncio.IncompleteReadError:
                    return
                conn.write(data)

    listener = await TcpListener.bind("127.0.0.1", 0)
    handlers = []

    async def serve():
        async for conn in listener:
            handlers.append(asyncio.create_task(handle(conn)))

    server = asyncio.create_task(serve())
    s = await TcpStream.connect("127.0.0.1", listener.local_addr[1])
    msg = b"x" * size
    t = time.process_time()
    for _ in range(messages):
        s.write(msg)
        await s.read_exact(size)
    elapsed = time.process_time() - t
    s.close()
    listener.close()
    await server
    await asyncio.gather(*handlers)
    return elapsed


async def echo_asyncio_streams(messages: int, size: int) -> float:
    handlers = []

    async def handle(reader, writer):
        handlers.append(asyncio.current_task())
        while True:
            try:
                data = await reader.readexactly(size)
            except asyncio.IncompleteReadError:
                break
            writer.write(data)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    msg = b"x" * size
    t = time.process_time()
    for _ in range(messages):
        writer.write(msg)
        await reader.readexactly(size)
    elapsed = time.process_time() - t
    writer.close()
    await asyncio.gather(*handlers)
    server.close()
    await server.wait_closed()
    return elapsed


def bench_net(messages: int, rounds: int) -> None:
    results: dict[str, list[float]] = {}
    for _ in range(rounds):
        for loop_name, new in (("asyncio", asyncio.new_event_loop), ("pyloop", pyloop.new_event_loop)):
            for api, fn in (("pyloop.net", echo_pyloop_net), ("asyncio streams", echo_asyncio_streams)):
                lp = new()
                try:
                    results.setdefault(f"{api} [{loop_name}]", []).append(
                        lp.run_until_complete(fn(messages, 1024)))
                finally:
                    lp.close()
    print(f"\necho, 1 KiB request/response, one connection, {messages} round trips;"
          f" client and server in one process, CPU time (process_time)")
    print(f"{'variant':32} {'median ms':>10} {'us/round trip':>14}")
    for name, ts in results.items():
        m = statistics.median(ts)
        print(f"{name:32} {m * 1e3:10.1f} {m / messages * 1e6:14.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=100_000)
    ap.add_argument("--messages", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if args.lines:
        bench_fs(args.lines, args.rounds)
    if args.messages:
        bench_net(args.messages, args.rounds)


if __name__ == "__main__":
    main()
