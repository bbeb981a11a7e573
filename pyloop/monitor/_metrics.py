"""Metrics: a snapshot of a pyloop loop's core counters (``monitor.metrics``).

The counters are kept by the loop's C core as plain increments in the steps of
its iteration (``pyloop/_core/loop_metrics.pxi`` says what each one counts); this
module reads them through the counters seam, ``pyloop._core.metrics``, and adds
what is derived from them: the busy ratio and the lag quantiles.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, fields
from typing import Any, Sequence

from pyloop._core import metrics as _counters

__all__ = ["LAG_BUCKET_BOUNDS", "LoopMetrics", "lag_quantile", "metrics", "resolve_loop"]

LAG_BUCKET_BOUNDS: tuple[float | None, ...] = tuple(
    None if ns is None else ns / 1e9 for ns in _counters.LAG_BOUNDS_NS)
"""Upper bounds, in seconds, of the lag histogram's buckets (1 us, 2 us, 4 us ... about
16.8 s); the last bucket (None) has no upper bound."""


def resolve_loop(loop: asyncio.AbstractEventLoop | None) -> asyncio.AbstractEventLoop:
    """``loop``, or the running loop when it is None (RuntimeError outside one)."""
    if loop is None:
        return asyncio.get_running_loop()
    if not isinstance(loop, asyncio.AbstractEventLoop):
        raise TypeError(f"an asyncio event loop was expected, got {loop!r}")
    return loop


def lag_quantile(buckets: Sequence[int], q: float, max_lag: float) -> float | None:
    """The ``q``-quantile (0..1) of a lag histogram in seconds, interpolated linearly
    inside its bucket as Prometheus' ``histogram_quantile`` does; never above
    ``max_lag``.  None for an empty histogram."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"a quantile is between 0 and 1, got {q!r}")
    total = sum(buckets)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    lower = 0.0
    for count, upper in zip(buckets, LAG_BUCKET_BOUNDS):
        if count and seen + count >= rank:
            if upper is None:
                return max_lag
            value = lower + (upper - lower) * max(rank - seen, 0.0) / count
            return min(value, max_lag)
        seen += count
        if upper is not None:
            lower = upper
    return max_lag


@dataclass(frozen=True)
class LoopMetrics:
    """What a pyloop loop has done since it was created, at one instant.

    Counters only grow; take two snapshots and subtract them for rates.  Times are
    seconds.  ``idle_time`` is the time the loop slept in the kernel waiting for
    events; ``busy_time`` the rest of ``running_time`` (callbacks and the loop's
    own work).  Loop lag is how long the loop was busy before it could start a
    batch of ready callbacks -- how late, at most, anything that became ready
    meanwhile started; one sample per iteration that ran a callback.
    """

    taken_at: float
    """``time.monotonic()`` when the snapshot was taken."""
    running: bool
    """Whether the loop was inside ``run_forever`` then."""
    iterations: int
    """Iterations of the loop (poll, expire timers, run what is ready)."""
    callbacks: int
    """Callbacks run: handles from ``call_soon``, timers, fd events; each task step is one."""
    fd_events: int
    """Reader and writer callbacks queued because their fd was ready."""
    timers_scheduled: int
    """Timers scheduled with ``call_at``/``call_later`` (``asyncio.sleep`` included)."""
    timers_fired: int
    """Timers whose deadline came and that were queued to run."""
    timers_cancelled: int
    """Scheduled timers cancelled before they fired."""
    max_ready: int
    """The largest batch of ready callbacks one iteration ran."""
    ready: int
    """Callbacks queued to run now."""
    timers: int
    """Timers in the loop's heap now (cancelled ones not yet dropped included)."""
    live_tasks: int
    """Tasks of this loop that are not done."""
    running_time: float
    """Seconds spent inside ``run_forever``."""
    idle_time: float
    """Seconds of ``running_time`` asleep in the kernel, waiting for events."""
    lag_sum: float
    """Sum of the loop lag samples, in seconds."""
    lag_max: float
    """The largest loop lag sample, in seconds."""
    lag_buckets: tuple[int, ...]
    """Loop lag samples per bucket of ``LAG_BUCKET_BOUNDS`` (not cumulative)."""

    @property
    def busy_time(self) -> float:
        """Seconds of ``running_time`` not asleep: running callbacks and the loop itself."""
        return max(self.running_time - self.idle_time, 0.0)

    @property
    def busy_ratio(self) -> float | None:
        """``busy_time / running_time``, or None before the loop ever ran."""
        return self.busy_time / self.running_time if self.running_time > 0 else None

    @property
    def lag_count(self) -> int:
        """How many lag samples there are (iterations that ran callbacks)."""
        return sum(self.lag_buckets)

    @property
    def lag_p50(self) -> float | None:
        """Median loop lag in seconds (from the histogram), None without samples."""
        return lag_quantile(self.lag_buckets, 0.5, self.lag_max)

    @property
    def lag_p99(self) -> float | None:
        """99th percentile of the loop lag in seconds (from the histogram)."""
        return lag_quantile(self.lag_buckets, 0.99, self.lag_max)

    def lag_quantile(self, q: float) -> float | None:
        """The ``q``-quantile (0..1) of the loop lag in seconds, from the histogram."""
        return lag_quantile(self.lag_buckets, q, self.lag_max)

    def as_dict(self) -> dict[str, Any]:
        """Every field and derived value, as plain JSON-able types."""
        out = asdict(self)
        out["lag_buckets"] = list(self.lag_buckets)
        out.update(busy_time=self.busy_time, busy_ratio=self.busy_ratio, lag_count=self.lag_count,
                   lag_p50=self.lag_p50, lag_p99=self.lag_p99,
                   lag_bucket_bounds=list(LAG_BUCKET_BOUNDS))
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoopMetrics:
        """The snapshot ``as_dict()`` described (derived values are recomputed)."""
        values = {f.name: data[f.name] for f in fields(cls)}
        values["lag_buckets"] = tuple(values["lag_buckets"])
        return cls(**values)


def metrics(loop: asyncio.AbstractEventLoop | None = None) -> LoopMetrics:
    """A snapshot of ``loop``'s core counters (the running loop by default).

    Always on and free: the counters are kept by the loop's C core whether or not
    anyone reads them.  Needs a pyloop loop (``RuntimeError`` for another); any
    thread may call it.

    >>> m = monitor.metrics()
    >>> m.callbacks, m.busy_ratio, m.lag_p99
    (1204, 0.031, 6.4e-05)
    """
    loop = resolve_loop(loop)
    raw = _counters.snapshot(loop)
    return LoopMetrics(
        taken_at=raw["now_ns"] / 1e9,
        running=raw["running"],
        iterations=raw["iterations"],
        callbacks=raw["callbacks"],
        fd_events=raw["fd_events"],
        timers_scheduled=raw["timers_scheduled"],
        timers_fired=raw["timers_fired"],
        timers_cancelled=raw["timers_cancelled"],
        max_ready=raw["max_ready"],
        ready=raw["ready"],
        timers=raw["timers"],
        live_tasks=_live_tasks(loop),
        running_time=raw["running_ns"] / 1e9,
        idle_time=raw["idle_ns"] / 1e9,
        lag_sum=raw["lag_sum_ns"] / 1e9,
        lag_max=raw["lag_max_ns"] / 1e9,
        lag_buckets=raw["lag_buckets"],
    )


def _live_tasks(loop: asyncio.AbstractEventLoop) -> int:
    # all_tasks() copies asyncio's weak set of tasks (retrying if another thread
    # changes it meanwhile) and keeps those of this loop that are not done.
    return len(asyncio.all_tasks(loop))
