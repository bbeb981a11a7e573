"""Threads against a loop's whole life: the stress harness of issue #12.

Many threads hammer a loop's thread-facing surface while the main thread runs
it for a few milliseconds, stops it, closes it, drops it (sometimes collecting
it at once) and makes a new loop in its place, round after round.  What the
threads do, picked at random on every step:

* ``call_soon_threadsafe`` (with and without an explicit context),
  ``asyncio.run_coroutine_threadsafe``, ``_write_to_self`` (the cross-thread
  wakeup), cancelling a handle they scheduled;
* misuse that must still never crash: ``call_soon``, ``call_later`` (and
  cancelling the timer), ``add_reader``/``remove_reader`` of a pipe of their
  own, ``time()``, from a foreign thread;
* signal delivery: ``SIGUSR1`` to the process while the loop (some rounds)
  has a handler for it -- the handler is installed and removed by ``close()``
  in the main thread, while the threads keep signalling;
* ``CancellationToken.cancel()`` of a token a task of the loop waits on.

Inside the loop, a task starts executor work (``run_in_executor``,
``asyncio.to_thread``, ``pyloop.task.spawn_blocking``), whose completions
arrive from pool threads, sometimes after the loop is closed; some rounds
also start a short child process reaped by a helper thread
(``call_soon_threadsafe`` from the reaper thread); some rounds shut the
default executor down (``shutdown_default_executor``'s joiner thread).

With ``--gc`` (the default) the collector runs often -- ``gc.set_threshold
(50, 5, 5)`` -- and every thread makes cyclic garbage whose ``__del__`` calls
``time.sleep(0)``: a collection triggered by an allocation inside a loop
method then lets another thread run (and close the loop) in the middle of
that method, which is the interleaving that crashed #12.  ``gc.collect()``
is also called at random points of a round.

Success is reaching the end: the process must not die (SIGSEGV, SIGABRT, an
ASan or UBSan report).  ``RuntimeError('Event loop is closed')`` from a call
is the correct answer and is counted, not reported.

    PYTHONPATH=. python -m tests.reliability._thread_stress --rounds 2000
    tools/sanitize.sh --python -m tests.reliability._thread_stress --rounds 2000

(see docs/reliability-threads.md).  tests/reliability/test_thread_stress.py
runs a short form.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import gc
import logging
import os
import random
import signal
import sys
import threading
import time
import warnings

import pyloop
from pyloop import task as pl_task
from pyloop.sync._primitives import CancellationToken

SIG = signal.SIGUSR1


class _Garbage:
    """A cycle whose finalizer lets other threads run mid-collection."""

    def __init__(self) -> None:
        self.me = self

    def __del__(self) -> None:
        time.sleep(0)


def _noop(*args: object) -> None:
    pass


async def _coro() -> int:
    return 1


def _work(n: int) -> int:
    if n % 3 == 0:
        _Garbage()
    time.sleep(0)
    return n


class Stats:
    def __init__(self) -> None:
        self.ops = 0
        self.closed = 0          # RuntimeError: the loop was closed (or running)
        self.errors: list[str] = []

    def merge(self, other: "Stats") -> None:
        self.ops += other.ops
        self.closed += other.closed
        self.errors.extend(other.errors)


class _Shared:
    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.token: CancellationToken | None = None
        self.stop = False
        self.signals = False
        # Round generation: a thread makes a bounded number of calls per
        # round, then waits here for the next round.  Without that bound four
        # threads outpace the one loop thread and its ready queue grows
        # without end (each iteration runs what was queued, meanwhile the
        # threads queue four times as much).
        self.gen = 0
        self.cond = threading.Condition()

    def next_round(self, loop: asyncio.AbstractEventLoop | None) -> None:
        with self.cond:
            self.loop = loop
            self.gen += 1
            self.cond.notify_all()

    def wait_round(self, gen: int) -> int:
        with self.cond:
            while self.gen == gen and not self.stop:
                self.cond.wait()
            return self.gen

    def finish(self) -> None:
        with self.cond:
            self.stop = True
            self.cond.notify_all()


N_OPS = 12


def _hammer(shared: _Shared, seed: int, use_gc: bool, stats: Stats) -> None:
    rng = random.Random(seed)
    ctx = contextvars.copy_context()
    r, w = os.pipe()
    mine: list[asyncio.Handle] = []
    gen = -1
    budget = 0
    teardown = False
    garbage = 0
    try:
        while not shared.stop:
            if budget <= 0 or shared.loop is None or shared.gen != gen:
                if shared.gen == gen:
                    gen = shared.wait_round(gen)
                else:
                    gen = shared.gen
                # Odd generations are a loop's run, even ones its teardown,
                # each with a bounded number of calls (four threads unbounded
                # outpace the one loop thread); in the teardown more, mostly
                # through the thread-safe doors.
                budget = rng.randrange(20, 300) if gen % 2 else rng.randrange(100, 600)
                # Bounded garbage too: while one thread's collection runs the
                # finalizers (each yields the GIL) no other allocation starts a
                # collection, so unbounded garbage piles up for the next one
                # and the collections grow without end.
                garbage = 40
                teardown = not gen % 2
                continue
            budget -= 1
            loop = shared.loop
            if loop is None:
                continue
            op = rng.randrange(N_OPS)
            if teardown and rng.random() < 0.7:
                op = rng.randrange(3)
            coro = None
            try:
                if op == 0:
                    mine.append(loop.call_soon_threadsafe(_noop, 1))
                elif op == 1:
                    loop.call_soon_threadsafe(_noop, context=ctx)
                elif op == 2:
                    coro = _coro()
                    asyncio.run_coroutine_threadsafe(coro, loop)
                    coro = None
                elif op == 3:
                    loop._write_to_self()
                elif op == 4 and mine:
                    mine.pop(rng.randrange(len(mine))).cancel()
                elif op == 5:
                    mine.append(loop.call_soon(_noop))
                elif op == 6:
                    h = loop.call_later(rng.choice((0, 0.0005, 10)), _noop)
                    if rng.random() < 0.5:
                        h.cancel()
                    else:
                        mine.append(h)
                elif op == 7:
                    loop.add_reader(r, _noop)
                elif op == 8:
                    loop.remove_reader(r)
                elif op == 9:
                    loop.time()
                    loop.is_running()
                elif op == 10 and shared.signals:
                    os.kill(os.getpid(), SIG)
                elif op == 11:
                    token = shared.token
                    if token is not None:
                        token.cancel()
                stats.ops += 1
            except RuntimeError:
                stats.closed += 1
                if coro is not None:
                    coro.close()
            except Exception as exc:  # anything else is a bug to report
                stats.errors.append(f'op {op}: {exc!r}')
            if len(mine) > 64:
                del mine[:32]
            if use_gc and garbage > 0 and rng.random() < 0.3:
                garbage -= 1
                _Garbage()
            if use_gc and rng.random() < 0.002:
                gc.collect()
            del loop
    finally:
        os.close(r)
        os.close(w)


async def _round_main(loop: asyncio.AbstractEventLoop, rng: random.Random,
                      shared: _Shared, spawn_child: bool) -> None:
    token = CancellationToken()
    shared.token = token
    waiter = asyncio.ensure_future(token.cancelled())
    for i in range(rng.randrange(1, 4)):
        loop.run_in_executor(None, _work, i)
        asyncio.ensure_future(asyncio.to_thread(_work, i))
        pl_task.spawn_blocking(_work, i)
    if spawn_child:
        loop._use_pidfd = False        # force the helper-thread reaper
        loop._use_sigchld = False
        proc = await asyncio.create_subprocess_exec('/bin/true')
        if rng.random() < 0.5:
            await proc.wait()
    delay = rng.choice((0, 0, 0.001, 0.003))
    if delay:
        await asyncio.sleep(delay)
    else:
        for _ in range(rng.randrange(1, 20)):
            await asyncio.sleep(0)
    del waiter


def run(rounds: int, threads: int, seed: int, use_gc: bool,
        signals: bool = True, children: bool = True,
        progress: bool = False) -> Stats:
    rng = random.Random(seed)
    shared = _Shared()
    stats = [Stats() for _ in range(threads)]
    old_threshold = gc.get_threshold()
    old_sig = signal.signal(SIG, signal.SIG_IGN) if signals else None
    warnings.simplefilter('ignore')          # never-awaited coroutines, unclosed loops
    for name in ('asyncio', 'concurrent.futures'):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    if use_gc:
        gc.set_threshold(50, 5, 5)
    workers = [threading.Thread(target=_hammer,
                                args=(shared, seed * 1000 + i, use_gc, stats[i]),
                                name=f'hammer-{i}', daemon=True)
               for i in range(threads)]
    for t in workers:
        t.start()
    total = Stats()
    main_closed = 0
    t0 = time.monotonic()
    try:
        for n in range(rounds):
            loop = pyloop.new_event_loop()
            with_signal = signals and rng.random() < 0.5
            if with_signal:
                loop.add_signal_handler(SIG, _noop)
            shared.signals = signals
            shared.next_round(loop)
            try:
                loop.run_until_complete(_round_main(
                    loop, rng, shared,
                    children and rng.random() < 0.02))
                if rng.random() < 0.2:
                    loop.run_until_complete(loop.shutdown_default_executor())
            except RuntimeError:
                main_closed += 1
            # A fresh budget for the teardown: the threads are calling in
            # while the loop is stopped, closed, dropped and collected.
            shared.next_round(loop)
            if use_gc and rng.random() < 0.3:
                gc.collect()
            shared.token = None
            for _ in range(rng.randrange(4)):
                time.sleep(0)       # let the threads in before close()
            how = rng.randrange(3)
            if how == 0:
                shared.loop = None           # dropped before it is closed
            loop.close()
            if how == 1:
                shared.loop = None
            # how == 2: the threads keep calling the closed loop until the
            # next round replaces it.
            del loop
            if use_gc and rng.random() < 0.3:
                gc.collect()
            if progress and (n + 1) % 100 == 0:
                print(f'round {n + 1}/{rounds} {time.monotonic() - t0:.1f} s',
                      flush=True)
    finally:
        shared.finish()
        for t in workers:
            t.join()
        gc.set_threshold(*old_threshold)
        if signals:
            signal.signal(SIG, old_sig)
    for s in stats:
        total.merge(s)
    total.closed += main_closed
    return total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--rounds', type=int, default=1000)
    ap.add_argument('--threads', type=int, default=4)
    ap.add_argument('--seed', type=int, default=12)
    ap.add_argument('--no-gc', dest='gc', action='store_false',
                    help='leave the collector at its defaults, no cyclic garbage')
    ap.add_argument('--no-signals', dest='signals', action='store_false')
    ap.add_argument('--no-children', dest='children', action='store_false')
    ap.add_argument('--progress', action='store_true')
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    stats = run(args.rounds, args.threads, args.seed, args.gc,
                args.signals, args.children, args.progress)
    dt = time.monotonic() - t0
    print(f'thread stress: {args.rounds} rounds, {args.threads} threads, '
          f'gc={"on" if args.gc else "off"}, seed {args.seed}: '
          f'{stats.ops} calls, {stats.closed} refused (closed loop), '
          f'{len(stats.errors)} unexpected errors, {dt:.1f} s', flush=True)
    for e in stats.errors[:20]:
        print('  ', e)
    return 1 if stats.errors else 0


if __name__ == '__main__':
    sys.exit(main())
