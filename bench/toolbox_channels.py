"""Benchmarks of pyloop's toolbox channels (pyloop.sync) next to their stdlib equivalents.

Same contract as micro.py: every benchmark is ``func(loop, n) -> float`` (ns per operation), the clock
(``benchlib.clock``) read inside a driver coroutine right around the ``n`` operations.  Each pyloop.sync
benchmark has a stdlib twin doing the same work with asyncio's own tools, so one table row pair shows
what switching to pyloop.sync buys on a given loop -- and each pair runs on every loop, because
pyloop.sync works on any asyncio loop:

    ======================  =========================================  ==================================
    pyloop.sync             stdlib twin                                one operation
    ======================  =========================================  ==================================
    mpsc_1024 / _16 / _1    asyncio.Queue(maxsize=1024 / 16 / 1)       one item from a producer task to a
                                                                       consumer task (send + recv)
    unbounded               asyncio.Queue()                            the same, send never waits
    oneshot                 loop.create_future()                       create, send from another task,
                                                                       await the value
    broadcast_10            10 asyncio.Queue()s                        one value to 10 consumer tasks
    ======================  =========================================  ==================================

Task and semaphore benchmarks live in bench/toolbox_tasks.py and bench/toolbox_sync.py; this one
is only about channels.

Run it alone for a quick table (asyncio and pyloop loops, a few rounds, median)::

    PYTHONPATH=. python bench/toolbox_channels.py [--rounds 5] [--scale 0.2] [--bench mpsc_1024,...]
"""
from __future__ import annotations

import asyncio
import statistics
import sys

try:  # imported as bench.toolbox_channels or as toolbox_channels (bench/ on sys.path)
    from . import benchlib
except ImportError:
    import benchlib
Benchmark = benchlib.Benchmark

FANOUT = 10         # receivers in the broadcast benchmarks
FANOUT_YIELD = 32   # the broadcast sender yields to its receivers every this many values


def _sync():
    from pyloop import sync
    return sync


# ---- mpsc ---------------------------------------------------------------------------------------

def _mpsc(loop, n: int, cap: int) -> float:
    sync = _sync()

    async def driver():
        tx, rx = sync.channel(cap)

        async def produce():
            send = tx.send
            for i in range(n):
                await send(i)
            tx.close()

        async def consume():
            recv = rx.recv
            for _ in range(n):
                await recv()

        clock = benchlib.clock
        t0 = clock()
        await asyncio.gather(produce(), consume())
        elapsed = clock() - t0
        rx.close()
        return elapsed

    return loop.run_until_complete(driver()) / n


def _queue(loop, n: int, cap: int) -> float:
    async def driver():
        q = asyncio.Queue(maxsize=cap)

        async def produce():
            put = q.put
            for i in range(n):
                await put(i)

        async def consume():
            get = q.get
            for _ in range(n):
                await get()

        clock = benchlib.clock
        t0 = clock()
        await asyncio.gather(produce(), consume())
        return clock() - t0

    return loop.run_until_complete(driver()) / n


def mpsc_1024(loop, n: int) -> float:
    """pyloop.sync.channel(1024): a producer task sends n items, a consumer task receives them."""
    return _mpsc(loop, n, 1024)


def mpsc_16(loop, n: int) -> float:
    """pyloop.sync.channel(16), as mpsc_1024."""
    return _mpsc(loop, n, 16)


def mpsc_1(loop, n: int) -> float:
    """pyloop.sync.channel(1): a task switch per item or two."""
    return _mpsc(loop, n, 1)


def queue_1024(loop, n: int) -> float:
    """asyncio.Queue(maxsize=1024) with a producer and a consumer task: put + get per item."""
    return _queue(loop, n, 1024)


def queue_16(loop, n: int) -> float:
    return _queue(loop, n, 16)


def queue_1(loop, n: int) -> float:
    return _queue(loop, n, 1)


def unbounded(loop, n: int) -> float:
    """pyloop.sync.unbounded_channel(): the producer sends synchronously, yielding every 1024 items."""
    sync = _sync()

    async def driver():
        tx, rx = sync.unbounded_channel()

        async def produce():
            send = tx.send
            for i in range(n):
                send(i)
                if not i & 1023:
                    await asyncio.sleep(0)
            tx.close()

        async def consume():
            recv = rx.recv
            for _ in range(n):
                await recv()

        clock = benchlib.clock
        t0 = clock()
        await asyncio.gather(produce(), consume())
        elapsed = clock() - t0
        rx.close()
        return elapsed

    return loop.run_until_complete(driver()) / n


def queue_unbounded(loop, n: int) -> float:
    """asyncio.Queue(): put_nowait, yielding every 1024 items; the consumer awaits get()."""
    async def driver():
        q = asyncio.Queue()

        async def produce():
            put = q.put_nowait
            for i in range(n):
                put(i)
                if not i & 1023:
                    await asyncio.sleep(0)

        async def consume():
            get = q.get
            for _ in range(n):
                await get()

        clock = benchlib.clock
        t0 = clock()
        await asyncio.gather(produce(), consume())
        return clock() - t0

    return loop.run_until_complete(driver()) / n


# ---- oneshot ------------------------------------------------------------------------------------

def oneshot(loop, n: int) -> float:
    """pyloop.sync.oneshot(): create, a second task sends, the first awaits the value; per value.

    The two tasks hand over through one unbounded channel of oneshot senders (the request/reply
    pattern), so each value is one oneshot created, sent, awaited, and one task switch each way."""
    sync = _sync()

    async def driver():
        req_tx, req_rx = sync.unbounded_channel()

        async def server():
            async for reply in req_rx:
                reply.send(1)

        srv = asyncio.ensure_future(server())
        make = sync.oneshot
        submit = req_tx.send
        clock = benchlib.clock
        t0 = clock()
        for _ in range(n):
            tx, rx = make()
            submit(tx)
            await rx
        elapsed = clock() - t0
        req_tx.close()
        await srv
        req_rx.close()
        return elapsed

    return loop.run_until_complete(driver()) / n


def future_oneshot(loop, n: int) -> float:
    """The same with loop.create_future() as the oneshot and an asyncio.Queue() as the request line."""
    async def driver():
        q = asyncio.Queue()

        async def server():
            while True:
                fut = await q.get()
                if fut is None:
                    return
                fut.set_result(1)

        srv = asyncio.ensure_future(server())
        create_future = loop.create_future
        submit = q.put_nowait
        clock = benchlib.clock
        t0 = clock()
        for _ in range(n):
            fut = create_future()
            submit(fut)
            await fut
        elapsed = clock() - t0
        submit(None)
        await srv
        return elapsed

    return loop.run_until_complete(driver()) / n


# ---- broadcast ----------------------------------------------------------------------------------

def broadcast_10(loop, n: int) -> float:
    """pyloop.sync.broadcast(64) to 10 consumer tasks; per value sent (all 10 receive it)."""
    sync = _sync()

    async def driver():
        tx, rx0 = sync.broadcast(64)
        rxs = [rx0] + [tx.subscribe() for _ in range(FANOUT - 1)]

        async def consume(rx):
            recv = rx.recv
            for _ in range(n):
                await recv()
            rx.close()

        async def produce():
            send = tx.send
            for i in range(n):
                send(i)
                if not i % FANOUT_YIELD:
                    await asyncio.sleep(0)
            tx.close()

        clock = benchlib.clock
        t0 = clock()
        await asyncio.gather(produce(), *[consume(rx) for rx in rxs])
        return clock() - t0

    return loop.run_until_complete(driver()) / n


def queues_10(loop, n: int) -> float:
    """The same fan-out with 10 asyncio.Queue()s: put_nowait into each, every consumer awaits get()."""
    async def driver():
        queues = [asyncio.Queue() for _ in range(FANOUT)]

        async def consume(q):
            get = q.get
            for _ in range(n):
                await get()

        async def produce():
            puts = [q.put_nowait for q in queues]
            for i in range(n):
                for put in puts:
                    put(i)
                if not i % FANOUT_YIELD:
                    await asyncio.sleep(0)

        clock = benchlib.clock
        t0 = clock()
        await asyncio.gather(produce(), *[consume(q) for q in queues])
        return clock() - t0

    return loop.run_until_complete(driver()) / n


# Counts are picked so one measurement takes ~0.05-0.5 s on stock asyncio here, like micro.py.
BENCHMARKS = [
    Benchmark("mpsc_1024", mpsc_1024, 200_000,
              "pyloop.sync.channel(1024): producer task -> consumer task (send + recv per item)",
              target=350, target_label="pyloop channel <= 350 ns per item"),
    Benchmark("queue_1024", queue_1024, 100_000,
              "asyncio.Queue(maxsize=1024): producer task -> consumer task (put + get per item)"),
    Benchmark("mpsc_16", mpsc_16, 100_000, "pyloop.sync.channel(16), as mpsc_1024"),
    Benchmark("queue_16", queue_16, 50_000, "asyncio.Queue(maxsize=16), as queue_1024"),
    Benchmark("mpsc_1", mpsc_1, 50_000, "pyloop.sync.channel(1): task switches on every item"),
    Benchmark("queue_1", queue_1, 20_000, "asyncio.Queue(maxsize=1): task switches on every item"),
    Benchmark("unbounded", unbounded, 200_000,
              "pyloop.sync.unbounded_channel(): sync send, awaited recv (per item)"),
    Benchmark("queue_unbounded", queue_unbounded, 100_000,
              "asyncio.Queue(): put_nowait, awaited get (per item)"),
    Benchmark("oneshot", oneshot, 50_000,
              "pyloop.sync.oneshot(): create, another task sends, await the value (per value)"),
    Benchmark("future_oneshot", future_oneshot, 50_000,
              "loop.create_future() as a oneshot: create, another task sets it, await (per value)"),
    Benchmark("broadcast_10", broadcast_10, 20_000,
              f"pyloop.sync.broadcast(64) to {FANOUT} consumer tasks (per value sent)"),
    Benchmark("queues_10", queues_10, 10_000,
              f"{FANOUT} asyncio.Queue()s, one per consumer task (per value sent)"),
]

# pyloop.sync benchmark -> its stdlib twin, for the ratio column of main()'s table.
TWINS = {"mpsc_1024": "queue_1024", "mpsc_16": "queue_16", "mpsc_1": "queue_1",
         "unbounded": "queue_unbounded", "oneshot": "future_oneshot", "broadcast_10": "queues_10"}


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description="pyloop.sync channels vs asyncio's tools, on asyncio "
                                            "and pyloop loops (median of interleaved rounds)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--scale", type=float, default=0.25, help="multiply every operation count")
    p.add_argument("--loops", default="asyncio,pyloop")
    p.add_argument("--bench", default="", help="comma-separated names (default: all)")
    p.add_argument("--clock", choices=sorted(benchlib.CLOCKS), default="wall")
    args = p.parse_args(argv)
    benchlib.use_clock(args.clock)
    loops = [x for x in args.loops.split(",") if x]
    chosen = [b for b in BENCHMARKS if not args.bench or b.name in args.bench.split(",")]
    results: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for b in chosen:
            for name in loops:
                loop = benchlib.make_loop(name)
                try:
                    n = max(1, int(b.n * args.scale))
                    results.setdefault((b.name, name), []).append(b.func(loop, n))
                finally:
                    loop.close()
    med = {k: statistics.median(v) for k, v in results.items()}
    head = f"{'benchmark':<16}" + "".join(f"{name + ' ns/op':>18}" for name in loops)
    print(head + f"{'stdlib/sync':>14}" * len(loops))
    for b in chosen:
        row = f"{b.name:<16}" + "".join(f"{med[b.name, name]:>18,.0f}" for name in loops)
        twin = TWINS.get(b.name)
        if twin and any((twin, name) in med for name in loops):
            row += "".join(f"{med[twin, name] / med[b.name, name]:>13.1f}x"
                           for name in loops if (twin, name) in med)
        print(row)
    print(f"(median of {args.rounds} rounds, --scale {args.scale}, clock {args.clock}; "
          "stdlib/sync: how many times faster pyloop.sync is than its stdlib twin on that loop)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
