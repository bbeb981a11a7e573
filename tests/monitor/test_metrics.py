"""monitor.metrics(): the core counters move by exactly what a program causes."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

import pyloop
from pyloop import monitor
from pyloop.monitor import LAG_BUCKET_BOUNDS, LoopMetrics
from pyloop.monitor._metrics import lag_quantile


@pytest.fixture
def ploop():
    loop = pyloop.new_event_loop()
    yield loop
    loop.close()


def _run_callbacks(loop, schedule):
    """Run one batch: whatever ``schedule`` queues, then stop."""
    schedule()
    loop.call_soon(loop.stop)
    loop.run_forever()


def test_n_call_soon_are_n_callbacks_in_one_iteration(ploop):
    n = 1000
    ran = []
    before = monitor.metrics(ploop)
    _run_callbacks(ploop, lambda: [ploop.call_soon(ran.append, i) for i in range(n)])
    after = monitor.metrics(ploop)
    assert len(ran) == n
    assert after.callbacks - before.callbacks == n + 1          # + loop.stop
    assert after.iterations - before.iterations == 1
    assert after.lag_count - before.lag_count == 1              # one batch, one lag sample
    assert after.max_ready == n + 1
    assert after.fd_events == before.fd_events
    assert after.timers_scheduled == before.timers_scheduled


def test_a_chain_of_call_soon_is_one_iteration_each(ploop):
    n = 500

    def step(i):
        if i:
            ploop.call_soon(step, i - 1)
        else:
            ploop.stop()

    before = monitor.metrics(ploop)
    ploop.call_soon(step, n)
    ploop.run_forever()
    after = monitor.metrics(ploop)
    assert after.callbacks - before.callbacks == n + 1
    assert after.iterations - before.iterations == n + 1
    assert after.lag_count - before.lag_count == n + 1


def test_cancelled_handles_are_not_counted(ploop):
    before = monitor.metrics(ploop)
    _run_callbacks(ploop, lambda: [ploop.call_soon(lambda: None).cancel() for _ in range(10)])
    assert monitor.metrics(ploop).callbacks - before.callbacks == 1


def test_timers_scheduled_fired_cancelled(ploop):
    before = monitor.metrics(ploop)
    fired = []
    timers = [ploop.call_later(0, fired.append, i) for i in range(7)]
    for t in timers[:3]:
        t.cancel()
    ploop.call_later(0.01, ploop.stop)
    ploop.run_forever()
    after = monitor.metrics(ploop)
    assert fired == [3, 4, 5, 6]
    assert after.timers_scheduled - before.timers_scheduled == 8
    assert after.timers_cancelled - before.timers_cancelled == 3
    assert after.timers_fired - before.timers_fired == 5
    assert after.callbacks - before.callbacks == 5


def test_each_ready_fd_is_one_fd_event(ploop):
    a, b = socket.socketpair()
    try:
        reads = []

        def readable():
            reads.append(a.recv(100))
            ploop.remove_reader(a)
            ploop.stop()

        ploop.add_reader(a, readable)
        b.send(b"x")
        before = monitor.metrics(ploop)
        ploop.run_forever()
        after = monitor.metrics(ploop)
    finally:
        a.close()
        b.close()
    assert reads == [b"x"]
    assert after.fd_events - before.fd_events == 1
    assert after.callbacks - before.callbacks == 1


def test_idle_time_and_busy_ratio(ploop):
    async def main():
        await asyncio.sleep(0.3)
        end = time.monotonic() + 0.1
        while time.monotonic() < end:       # busy, on purpose
            pass
        await asyncio.sleep(0)

    before = monitor.metrics(ploop)
    ploop.run_until_complete(main())
    after = monitor.metrics(ploop)
    running = after.running_time - before.running_time
    idle = after.idle_time - before.idle_time
    busy = after.busy_time - before.busy_time
    assert running >= 0.4
    assert 0.25 <= idle <= running
    assert busy >= 0.09
    assert after.busy_ratio is not None and 0 < after.busy_ratio < 1
    # The callback that spun for 0.1 s made the next batch wait that long.
    assert after.lag_max >= 0.09
    assert after.lag_quantile(1.0) == pytest.approx(after.lag_max)


def test_live_tasks_and_snapshot_from_another_thread(ploop):
    seen = {}

    async def main():
        sleepers = [asyncio.create_task(asyncio.sleep(10)) for _ in range(5)]
        await asyncio.sleep(0)
        box = []
        thread = threading.Thread(target=lambda: box.append(monitor.metrics(ploop)))
        thread.start()
        while thread.is_alive():
            await asyncio.sleep(0.01)
        seen["other"] = box[0]
        seen["here"] = monitor.metrics()
        for s in sleepers:
            s.cancel()
        await asyncio.gather(*sleepers, return_exceptions=True)

    ploop.run_until_complete(main())
    assert seen["here"].live_tasks == 6
    assert seen["other"].live_tasks == 6
    assert seen["other"].running
    assert not monitor.metrics(ploop).running


def test_a_closed_loop_keeps_its_counters():
    loop = pyloop.new_event_loop()
    _run_callbacks(loop, lambda: loop.call_soon(lambda: None))
    loop.close()
    m = monitor.metrics(loop)
    assert m.callbacks == 2 and not m.running


def test_as_dict_round_trip(ploop):
    _run_callbacks(ploop, lambda: None)
    m = monitor.metrics(ploop)
    d = m.as_dict()
    assert LoopMetrics.from_dict(d) == m
    assert d["lag_count"] == m.lag_count and d["busy_ratio"] == m.busy_ratio
    assert len(d["lag_buckets"]) == len(LAG_BUCKET_BOUNDS)


def test_lag_quantile():
    buckets = [0] * len(LAG_BUCKET_BOUNDS)
    assert lag_quantile(buckets, 0.5, 0.0) is None
    buckets[3] = 10             # ten samples in [4 us, 8 us)
    assert lag_quantile(buckets, 0.5, 7e-6) == pytest.approx(6e-6)
    assert lag_quantile(buckets, 1.0, 7e-6) == pytest.approx(7e-6)    # never above the max
    buckets[-1] = 1
    assert lag_quantile(buckets, 1.0, 30.0) == 30.0
    with pytest.raises(ValueError):
        lag_quantile(buckets, 1.5, 1.0)
    assert LAG_BUCKET_BOUNDS[0] == 1e-6 and LAG_BUCKET_BOUNDS[-1] is None
    assert all(b == 2 * a for a, b in zip(LAG_BUCKET_BOUNDS[:-2], LAG_BUCKET_BOUNDS[1:-1]))


def test_metrics_needs_a_pyloop_loop():
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(RuntimeError, match="pyloop loop"):
            monitor.metrics(loop)
    finally:
        loop.close()
    with pytest.raises(RuntimeError):
        monitor.metrics()           # no running loop
    with pytest.raises(TypeError):
        monitor.metrics("loop")


def test_an_embedded_step_is_an_iteration(ploop):
    # run_nowait() (a host's event loop drives the loop) counts as run_forever does.
    ran = []
    before = monitor.metrics(ploop)
    for i in range(5):
        ploop.call_soon(ran.append, i)
    ploop.run_nowait()
    after = monitor.metrics(ploop)
    assert ran == [0, 1, 2, 3, 4]
    assert after.iterations - before.iterations == 1
    assert after.callbacks - before.callbacks == 5
    assert after.lag_count - before.lag_count == 1
    assert after.running_time > before.running_time and not after.running
