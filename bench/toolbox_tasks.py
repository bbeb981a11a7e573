"""pyloop.task against the asyncio code it replaces: spawn + await, and select of two.

Benchmarks in the format of micro.py (``func(loop, n) -> ns per operation``, listed in
:data:`BENCHMARKS`), in pairs: the plain-asyncio way of doing something, then pyloop.task's way.
Both run on every loop, so a row compares loops and a pair of rows compares the two APIs.

* ``create_task_await`` / ``spawn_await``: start a trivial coroutine as a task and await it.
  ``spawn`` also keeps the task in its loop's registry, watches it for unretrieved failures and
  awaits a private future rather than the task (so cancelling the joiner leaves the task alone).
* ``wait_first_cancel`` / ``select_two``: of two coroutines, one finishes at once and one waits
  forever; take the first result, cancel the other and wait until it is gone.  With asyncio that
  is ``asyncio.wait(..., return_when=FIRST_COMPLETED)``, ``cancel()`` and another ``wait``;
  ``select`` does the same in one call.

Run on its own for a small table (best of a few runs per cell; the machine is noisy, read ratios)::

    python bench/toolbox_tasks.py [--loops asyncio,pyloop] [--scale 0.2] [--repeat 3]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys

try:  # imported as bench.toolbox_tasks or as toolbox_tasks (bench/ on sys.path)
    from . import benchlib
except ImportError:
    import benchlib
Benchmark = benchlib.Benchmark

if __name__ == "__main__":  # a source checkout: use the working tree's pyloop
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))



async def _nop():
    return 1


async def _forever():
    await asyncio.get_running_loop().create_future()


def create_task_await(loop, n: int) -> float:
    """loop.create_task(coro) then await the task, n times (per task)."""
    async def driver():
        create_task = loop.create_task
        nop = _nop
        clock = benchlib.clock
        t0 = clock()
        for _ in range(n):
            await create_task(nop())
        return clock() - t0

    return loop.run_until_complete(driver()) / n


def spawn_await(loop, n: int) -> float:
    """pyloop.task.spawn(coro) then await its JoinHandle, n times (per task)."""
    from pyloop.task import spawn  # here, so that listing the benchmarks needs no pyloop

    async def driver():
        nop = _nop
        clock = benchlib.clock
        t0 = clock()
        for _ in range(n):
            await spawn(nop())
        return clock() - t0

    return loop.run_until_complete(driver()) / n


def wait_first_cancel(loop, n: int) -> float:
    """asyncio.wait(FIRST_COMPLETED) on a ready and a pending coroutine, cancel and await the loser."""
    async def driver():
        create_task = loop.create_task
        wait = asyncio.wait
        first = asyncio.FIRST_COMPLETED
        nop, forever = _nop, _forever
        clock = benchlib.clock
        t0 = clock()
        for _ in range(n):
            tasks = [create_task(nop()), create_task(forever())]
            done, pending = await wait(tasks, return_when=first)
            for task in pending:
                task.cancel()
            await wait(pending)
            done.pop().result()
        return clock() - t0

    return loop.run_until_complete(driver()) / n


def select_two(loop, n: int) -> float:
    """pyloop.task.select of a ready and a pending coroutine (the loser is cancelled and awaited)."""
    from pyloop.task import select

    async def driver():
        nop, forever = _nop, _forever
        clock = benchlib.clock
        t0 = clock()
        for _ in range(n):
            await select(nop(), forever())
        return clock() - t0

    return loop.run_until_complete(driver()) / n


BENCHMARKS = [
    Benchmark("create_task_await", create_task_await, 20_000,
              "loop.create_task(coro) and await it (per task; the asyncio baseline)"),
    Benchmark("spawn_await", spawn_await, 20_000,
              "pyloop.task.spawn(coro) and await its JoinHandle (per task)"),
    Benchmark("wait_first_cancel", wait_first_cancel, 10_000,
              "asyncio.wait FIRST_COMPLETED of a ready and a pending coroutine, cancel + await "
              "the loser (the asyncio baseline)"),
    Benchmark("select_two", select_two, 10_000,
              "pyloop.task.select of a ready and a pending coroutine (loser cancelled and awaited)"),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loops", default="asyncio,uvloop,pyloop",
                        help="comma-separated loops (default: asyncio,uvloop,pyloop; missing ones "
                             "are skipped)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every operation count")
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell, best kept")
    args = parser.parse_args(argv)

    loops = []
    for name in args.loops.split(","):
        try:
            benchlib.make_loop(name).close()
        except ImportError as exc:
            print(f"# {name} skipped: {exc}", file=sys.stderr)
            continue
        loops.append(name)

    table: dict[str, dict[str, float]] = {}
    for _ in range(args.repeat):            # interleaved: every cell sees the same noise
        for bench in BENCHMARKS:
            n = max(10, int(bench.n * args.scale))
            for name in loops:
                loop = benchlib.make_loop(name)
                try:
                    bench.func(loop, max(10, n // 10))   # warm-up
                    ns = bench.func(loop, n)
                finally:
                    loop.close()
                row = table.setdefault(bench.name, {})
                row[name] = min(ns, row.get(name, float("inf")))

    width = max(len(b.name) for b in BENCHMARKS)
    print(f"{'ns/op':<{width}}  " + "  ".join(f"{name:>9}" for name in loops))
    for bench in BENCHMARKS:
        cells = "  ".join(f"{table[bench.name][name]:>9,.0f}" for name in loops)
        print(f"{bench.name:<{width}}  {cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
