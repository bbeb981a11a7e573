"""Model-based tests of pyloop.sync mpsc channels (hypothesis).

1. Sequential: random try_send / try_recv / try_reserve / permit use / clone / close operations
   against a plain deque model, comparing every result and exception.
2. Concurrent: producer and consumer tasks on a real loop, with random cancellations at random
   points; what the consumers received (plus what is left in the channel) must be exactly what the
   producers sent successfully -- nothing lost, nothing duplicated, nothing from a cancelled send.
"""
from __future__ import annotations

import asyncio
import collections

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyloop import sync

from ._chan_util import run

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


class Model:
    """What a channel should do when no task ever waits."""

    def __init__(self, cap: int | None):
        self.cap = cap                          # None: unbounded
        self.buf: collections.deque = collections.deque()
        self.reserved = 0
        self.open = [True]                      # one flag per sender handle
        self.rx_closed = False

    def room(self) -> bool:
        return self.cap is None or len(self.buf) + self.reserved < self.cap

    def try_send(self, k: int, v) -> object:
        if not self.open[k] or self.rx_closed:
            return sync.Closed
        if not self.room():
            return sync.Full
        self.buf.append(v)
        return None

    def try_reserve(self, k: int) -> object:
        if not self.open[k] or self.rx_closed:
            return sync.Closed
        if not self.room():
            return sync.Full
        self.reserved += 1
        return "permit"

    def try_recv(self) -> object:
        if self.buf:
            return ("value", self.buf.popleft())
        if self.reserved == 0 and (self.rx_closed or not any(self.open)):
            return sync.Closed
        return sync.Empty


ops = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.integers(0, 3)),
        st.tuples(st.just("recv"), st.just(0)),
        st.tuples(st.just("reserve"), st.integers(0, 3)),
        st.tuples(st.just("permit_send"), st.integers(0, 3)),
        st.tuples(st.just("permit_release"), st.integers(0, 3)),
        st.tuples(st.just("clone"), st.integers(0, 3)),
        st.tuples(st.just("close"), st.integers(0, 3)),
        st.tuples(st.just("close_rx"), st.just(0)),
    ),
    max_size=60,
)


def outcome(fn):
    try:
        return ("ok", fn())
    except (sync.Closed, sync.Full, sync.Empty) as exc:
        return ("raised", type(exc))


@SETTINGS
@given(cap=st.one_of(st.none(), st.integers(0, 4)), program=ops)
def test_sequential_model(cap, program):
    if cap is None:
        tx, rx = sync.unbounded_channel()
    else:
        tx, rx = sync.channel(cap)
    model = Model(cap)
    handles = [tx]
    permits = []                                # (real Permit, model still counts it)
    counter = 0
    for op, arg in program:
        k = arg % len(handles)
        if op == "send":
            counter += 1
            real = outcome(lambda: handles[k].try_send(counter))
            expect = model.try_send(k, counter)
            assert real == (("ok", None) if expect is None else ("raised", expect))
        elif op == "recv":
            real = outcome(rx.try_recv)
            expect = model.try_recv()
            assert real == (("ok", expect[1]) if isinstance(expect, tuple) else ("raised", expect))
        elif op == "reserve":
            if cap is None:
                continue                        # unbounded senders have no permits
            real = outcome(handles[k].try_reserve)
            expect = model.try_reserve(k)
            if expect == "permit":
                assert real[0] == "ok"
                permits.append(real[1])
            else:
                assert real == ("raised", expect)
        elif op in ("permit_send", "permit_release") and permits:
            permit = permits.pop(arg % len(permits))
            model.reserved -= 1
            if op == "permit_send":
                counter += 1
                permit.send(counter)
                model.buf.append(counter)
            else:
                permit.release()
        elif op == "clone":
            real = outcome(handles[k].clone)
            if model.open[k]:
                assert real[0] == "ok"
                handles.append(real[1])
                model.open.append(True)
            else:
                assert real == ("raised", sync.Closed)
        elif op == "close":
            handles[k].close()
            model.open[k] = False
        elif op == "close_rx":
            rx.close()
            model.rx_closed = True
        assert len(rx) == len(model.buf)
    for p in permits:
        p.release()
    for h in handles:
        h.close()
    rx.close()


# ---- concurrent, with cancellations -------------------------------------------------------------

actors = st.lists(
    st.tuples(
        st.sampled_from(["send", "reserve", "recv"]),
        st.integers(0, 30),                     # step at which it is cancelled (if cancelled)
        st.booleans(),                          # cancelled?
    ),
    min_size=1, max_size=40,
)


@SETTINGS
@given(cap=st.integers(0, 3), plan=actors, seed_gap=st.integers(1, 4))
def test_concurrent_cancellation_model(loop, cap, plan, seed_gap):
    async def main():
        tx, rx = sync.channel(cap)
        sent, received = [], []

        async def send(v):
            await tx.send(v)
            sent.append(v)

        async def reserve(v):
            permit = await tx.reserve()
            permit.send(v)
            sent.append(v)

        async def recv():
            received.append(await rx.recv())

        tasks, cancels = [], []
        for i, (kind, at, cancel) in enumerate(plan):
            coro = {"send": send, "reserve": reserve}[kind](i) if kind != "recv" else recv()
            tasks.append(asyncio.ensure_future(coro))
            if cancel:
                cancels.append((at, len(tasks) - 1))
            if i % seed_gap == 0:
                await asyncio.sleep(0)          # interleave creation with progress
        cancels.sort()
        step = 0
        for at, idx in cancels:
            while step < at:
                await asyncio.sleep(0)
                step += 1
            tasks[idx].cancel()
        # Everything still waiting is waiting for a partner that will never come: cancel it too.
        for _ in range(50):
            await asyncio.sleep(0)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        tx.close()
        left = []
        while True:
            try:
                left.append(rx.try_recv())
            except sync.Closed:
                break
        rx.close()
        return sent, received, left

    sent, received, left = run(loop, main)
    got = received + left
    assert len(got) == len(set(got)), "a value was received twice"
    assert sorted(got) == sorted(sent), "received values differ from successfully sent ones"


@pytest.mark.parametrize("cap", [0, 1, 5])
def test_concurrent_stress_fixed(loop, cap):
    # A deterministic, larger run of the same property, cheap enough for every test run.
    async def main():
        tx, rx = sync.channel(cap)
        sent, received = [], []

        async def send(v):
            await tx.send(v)
            sent.append(v)

        async def recv():
            received.append(await rx.recv())

        tasks = []
        for i in range(400):
            tasks.append(asyncio.ensure_future(send(i) if i % 2 else recv()))
            if i % 7 == 0:
                tasks[i // 2].cancel()
                await asyncio.sleep(0)
        for _ in range(20):
            await asyncio.sleep(0)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        tx.close()
        left = []
        while True:
            try:
                left.append(rx.try_recv())
            except sync.Closed:
                break
        rx.close()
        return sent, received + left

    sent, got = run(loop, main)
    assert sorted(got) == sorted(sent) and len(got) == len(set(got))
