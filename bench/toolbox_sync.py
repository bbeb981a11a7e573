"""Benchmarks of pyloop.sync's primitives against their nearest asyncio equivalents.

Same format as micro.py: every benchmark is ``func(loop, n) -> ns per operation``
and runs on whichever loop it is given, so the table compares both the
primitive (pyloop.sync vs asyncio) and the loop under it.

    PYTHONPATH=. python bench/toolbox_sync.py
"""
from __future__ import annotations

import asyncio
import os
import sys

try:  # imported as bench.toolbox_sync or with bench/ on sys.path
    from . import benchlib
except ImportError:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import benchlib

Benchmark = benchlib.Benchmark


def _uncontended(loop, n: int, sem) -> float:
    async def driver():
        clock = benchlib.clock
        t0 = clock()
        for _ in range(n):
            async with sem:
                pass
        return clock() - t0

    return loop.run_until_complete(driver()) / n


def semaphore_pyloop(loop, n: int) -> float:
    """``async with Semaphore(1)`` with no contention (per acquire+release)."""
    from pyloop.sync import Semaphore  # here, so that listing the benchmarks needs no pyloop
    return _uncontended(loop, n, Semaphore(1))


def semaphore_asyncio(loop, n: int) -> float:
    """``async with asyncio.Semaphore(1)`` with no contention (per acquire+release)."""
    return _uncontended(loop, n, asyncio.Semaphore(1))


def _contended(loop, n: int, sem, tasks: int = 10) -> float:
    async def driver():
        clock = benchlib.clock
        per_task = n // tasks

        async def worker():
            for _ in range(per_task):
                async with sem:
                    await asyncio.sleep(0)

        t0 = clock()
        await asyncio.gather(*(worker() for _ in range(tasks)))
        return clock() - t0

    return loop.run_until_complete(driver()) / n


def semaphore_contended_pyloop(loop, n: int) -> float:
    """10 tasks share Semaphore(2), each holding it across one sleep(0) (per acquire)."""
    from pyloop.sync import Semaphore
    return _contended(loop, n, Semaphore(2))


def semaphore_contended_asyncio(loop, n: int) -> float:
    """10 tasks share asyncio.Semaphore(2), each holding it across one sleep(0) (per acquire)."""
    return _contended(loop, n, asyncio.Semaphore(2))


BENCHMARKS = [
    Benchmark("semaphore", semaphore_pyloop, 200_000,
              "async with Semaphore(1), uncontended (per acquire+release)"),
    Benchmark("asyncio_semaphore", semaphore_asyncio, 200_000,
              "async with asyncio.Semaphore(1), uncontended (per acquire+release)"),
    Benchmark("semaphore_contended", semaphore_contended_pyloop, 50_000,
              "10 tasks, Semaphore(2) held across sleep(0) (per acquire)"),
    Benchmark("asyncio_semaphore_contended", semaphore_contended_asyncio, 50_000,
              "10 tasks, asyncio.Semaphore(2) held across sleep(0) (per acquire)"),
]


def main() -> None:
    import pyloop
    factories = {"asyncio": asyncio.new_event_loop, "pyloop": pyloop.new_event_loop}
    print(f"{'benchmark':36} " + " ".join(f"{name:>12}" for name in factories))
    for bench in BENCHMARKS:
        cells = []
        for make in factories.values():
            loop = make()
            try:
                cells.append(min(bench.func(loop, bench.n) for _ in range(3)))
            finally:
                loop.close()
        print(f"{bench.name:36} " + " ".join(f"{c:>9,.0f} ns" for c in cells))


if __name__ == "__main__":
    main()
