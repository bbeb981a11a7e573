"""Micro-benchmarks of an asyncio event loop's hot paths.

Every benchmark is ``func(loop, n) -> float``: it runs a driver coroutine on ``loop`` with
``run_until_complete`` and returns nanoseconds per operation.  The clock (``time.perf_counter_ns``, or the
process's CPU time after ``benchlib.use_clock("cpu")``) is read inside the driver, right around the ``n``
operations, so loop start-up, ``run_until_complete``'s own set-up and the interpreter are never counted, and
nothing is subtracted afterwards.  What *is* counted is the smallest Python a caller has to write to exercise
the path (the ``for`` loop that schedules, the callback's own body); that part is the same for every loop, so
ratios between loops stay honest, but read the absolute numbers as "loop + minimal user code".

The operation counts are fixed (the ``n`` in :data:`BENCHMARKS`) so every loop does the same work; the
runners may scale them down (``compare.py --quick``) but scale every loop alike.

Usable on its own::

    import asyncio, micro
    loop = asyncio.new_event_loop()
    print(micro.call_soon_chain(loop, 100_000), "ns per call_soon")
"""
from __future__ import annotations

import asyncio
import contextvars
import threading

try:  # imported as bench.micro (namespace package) or as micro (bench/ on sys.path)
    from . import benchlib
except ImportError:
    import benchlib
Benchmark = benchlib.Benchmark

# Timers in call_later+cancel are set this far out, so none can fire during a measurement.
FAR_FUTURE_S = 3600.0

# The batch benchmarks (call_soon batch, call_later+cancel, create_task+gather) work in batches of this
# many operations, each followed by the loop running them, until n operations are done.  One batch of
# n = 100k would measure the CPU cache and the cyclic GC walking 100k live handles/tasks (uvloop's
# call_soon batch goes from ~400 to ~1,300 ns/op here), not the loop; real loops see ready queues and
# timer heaps of hundreds to thousands.  Pass batch=n for the everything-at-once variant.
BATCH = 1000


def _noop():
    pass


async def _nop_coro():
    pass


def call_soon_chain(loop, n: int) -> float:
    """One callback re-schedules itself with call_soon n times: one loop iteration per call."""
    async def driver():
        call_soon = loop.call_soon
        done = loop.create_future()

        def step(i):
            if i:
                call_soon(step, i - 1)
            else:
                done.set_result(None)

        clock = benchlib.clock

        t0 = clock()
        call_soon(step, n - 1)          # step runs n times: i = n-1 .. 0
        await done
        return clock() - t0

    return loop.run_until_complete(driver()) / n


def call_soon_batch(loop, n: int, batch: int = BATCH) -> float:
    """Schedule `batch` callbacks at once, then let them run in one iteration; n in all, per callback."""
    batch = max(1, min(batch, n))

    async def driver():
        call_soon = loop.call_soon
        create_future = loop.create_future
        noop = _noop
        clock = benchlib.clock
        t0 = clock()
        for _ in range(n // batch):
            done = create_future()
            for _ in range(batch - 1):
                call_soon(noop)
            call_soon(done.set_result, None)  # FIFO: runs last, after the batch-1 others
            await done
        return clock() - t0

    return loop.run_until_complete(driver()) / (n // batch * batch)


def call_later_cancel(loop, n: int, batch: int = BATCH) -> float:
    """call_later then cancel, `batch` times, then one loop iteration (where a loop drops cancelled
    timers, so lazy clean-up is paid for inside the measurement); n timers in all, per timer."""
    batch = max(1, min(batch, n))

    async def driver():
        call_later = loop.call_later
        noop = _noop
        delay = FAR_FUTURE_S
        sleep = asyncio.sleep
        clock = benchlib.clock
        t0 = clock()
        for _ in range(n // batch):
            for _ in range(batch):
                call_later(delay, noop).cancel()
            await sleep(0)
        return clock() - t0

    return loop.run_until_complete(driver()) / (n // batch * batch)


def sleep_zero(loop, n: int) -> float:
    """One task awaits asyncio.sleep(0) n times: a task step, a yield and a loop iteration each."""
    async def driver():
        sleep = asyncio.sleep
        clock = benchlib.clock
        t0 = clock()
        for _ in range(n):
            await sleep(0)
        return clock() - t0

    return loop.run_until_complete(driver()) / n


def create_task_gather(loop, n: int, batch: int = BATCH) -> float:
    """loop.create_task of `batch` trivial coroutines, then gather them; n tasks in all, per task."""
    batch = max(1, min(batch, n))

    async def driver():
        create_task = loop.create_task
        coro = _nop_coro
        gather = asyncio.gather
        clock = benchlib.clock
        t0 = clock()
        for _ in range(n // batch):
            await gather(*[create_task(coro()) for _ in range(batch)])
        return clock() - t0

    return loop.run_until_complete(driver()) / (n // batch * batch)


def future_roundtrip(loop, n: int) -> float:
    """A task awaits a new future that a call_soon callback resolves; per round trip."""
    async def driver():
        create_future = loop.create_future
        call_soon = loop.call_soon
        clock = benchlib.clock
        t0 = clock()
        for _ in range(n):
            fut = create_future()
            call_soon(fut.set_result, None)
            await fut
        return clock() - t0

    return loop.run_until_complete(driver()) / n


def call_soon_threadsafe(loop, n: int) -> float:
    """Another thread calls call_soon_threadsafe n times as fast as it can; time until the loop ran them all.

    This is a throughput figure: it includes the wake-up of a loop blocked in its poller and, since both
    threads want the GIL, the GIL hand-offs between them, so it is noisier than the others.
    """
    return _threadsafe(loop, n, None)


def call_soon_threadsafe_context(loop, n: int) -> float:
    """call_soon_threadsafe with ``context=`` given: the same work on every loop.

    Without it, asyncio, uvloop and pyloop copy the calling thread's context for every call (the callback
    sees the caller's context variables); rloop 0.5 copies nothing and runs the callbacks in one context
    they share (a variable the thread set is not seen, one a callback set is seen by the next: see
    tests/loop/test_threadsafe.py), so the plain figure compares different work.  With one context handed
    in, no loop copies.
    """
    return _threadsafe(loop, n, contextvars.copy_context())


def _threadsafe(loop, n: int, context) -> float:
    go = threading.Event()

    async def driver():
        done = loop.create_future()
        remaining = n

        def cb():
            nonlocal remaining
            remaining -= 1
            if not remaining:
                done.set_result(None)

        def producer():
            threadsafe = loop.call_soon_threadsafe
            go.wait()
            if context is None:
                for _ in range(n):
                    threadsafe(cb)
            else:
                for _ in range(n):
                    threadsafe(cb, context=context)

        thread = threading.Thread(target=producer, daemon=True)
        thread.start()                   # started, and parked on `go`, before the clock starts
        clock = benchlib.clock
        t0 = clock()
        go.set()
        await done
        elapsed = clock() - t0
        thread.join()
        return elapsed

    return loop.run_until_complete(driver()) / n


# Counts are picked so one measurement takes ~0.05-0.5 s on stock asyncio here: long enough that the
# clock and the driver's set-up are noise, short enough for many interleaved rounds.
BENCHMARKS = [
    Benchmark("call_soon_chain", call_soon_chain, 100_000,
              "a callback re-schedules itself with call_soon (one loop iteration per call)",
              target=300, target_label="call_soon <= 300 ns"),
    Benchmark("call_soon_batch", call_soon_batch, 200_000,
              f"{BATCH} callbacks scheduled at once, then run in one iteration (per callback)"),
    Benchmark("call_later_cancel", call_later_cancel, 100_000,
              f"call_later(3600, cb).cancel() x{BATCH}, then one loop iteration (per timer)",
              target=900, target_label="timers <= 900 ns"),
    Benchmark("sleep_zero", sleep_zero, 100_000,
              "one task awaits asyncio.sleep(0) (per await)",
              target=450, target_label="sleep(0) <= 450 ns"),
    Benchmark("create_task_gather", create_task_gather, 20_000,
              f"create_task of {BATCH} trivial coroutines, then gather them (per task)",
              target=5000, target_label="task <= 5 us"),
    Benchmark("future_roundtrip", future_roundtrip, 50_000,
              "a task awaits a future that a call_soon callback resolves (per round trip)"),
    Benchmark("call_soon_threadsafe", call_soon_threadsafe, 50_000,
              "another thread calls call_soon_threadsafe as fast as it can (per call, throughput)"),
    Benchmark("call_soon_threadsafe_context", call_soon_threadsafe_context, 50_000,
              "the same with context= given, so no loop copies the thread's context (per call)"),
]
