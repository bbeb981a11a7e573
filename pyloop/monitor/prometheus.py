"""Export pyloop's loop metrics to Prometheus, with ``prometheus_client`` (the ``monitor`` extra).

    from pyloop.monitor import prometheus

    prometheus.register()          # on prometheus_client's default REGISTRY
    # ... then serve prometheus_client.generate_latest() at /metrics
    # (examples/monitor_metrics.py does it with aiohttp)

What is exported, one series per pyloop loop of the process, labelled ``loop``
("0", "1"... in the order the collector first saw them), in base units:

* counters: ``pyloop_loop_iterations_total``, ``pyloop_loop_callbacks_total``,
  ``pyloop_loop_fd_events_total``, ``pyloop_loop_timers_scheduled_total``,
  ``pyloop_loop_timers_fired_total``, ``pyloop_loop_timers_cancelled_total``,
  ``pyloop_loop_running_seconds_total``, ``pyloop_loop_busy_seconds_total``,
  ``pyloop_loop_idle_seconds_total``;
* gauges: ``pyloop_loop_ready_callbacks`` (queued now),
  ``pyloop_loop_max_ready_callbacks``, ``pyloop_loop_tasks`` (live tasks),
  ``pyloop_loop_stalled_seconds`` (how long the loop has been blocked now, 0 when
  it is not; only while a stall watch runs on it -- ``watch_stalls`` or ``serve``);
* histogram: ``pyloop_loop_lag_seconds`` -- the loop lag, with the core's fixed
  buckets (1 us to ~16.8 s, doubling), so ``histogram_quantile(0.99,
  rate(pyloop_loop_lag_seconds_bucket[1m]))`` is the p99 over the last minute.

A scrape reads the core counters (any thread may) and counts the live tasks; it
never waits for the loop, so a blocked loop is still scraped -- and shows up in
``pyloop_loop_stalled_seconds``.

Errors
------
``ImportError`` at import without ``prometheus_client``; ``TypeError`` for a
``loop`` that is not an asyncio loop, ``RuntimeError`` for one that is not
pyloop's (it has no core counters).
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import Any, Iterator

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString

from pyloop._core import metrics as _counters

from ._metrics import LAG_BUCKET_BOUNDS, LoopMetrics, metrics
from ._stalls import current_watch

__all__ = ["PyloopCollector", "register"]

_COUNTERS = (
    ("iterations", "iterations", "Iterations of the event loop."),
    ("callbacks", "callbacks", "Callbacks run by the event loop (each task step is one)."),
    ("fd_events", "fd_events", "Reader and writer callbacks queued because their fd was ready."),
    ("timers_scheduled", "timers_scheduled", "Timers scheduled (call_at, call_later, asyncio.sleep)."),
    ("timers_fired", "timers_fired", "Timers whose deadline came and that were queued to run."),
    ("timers_cancelled", "timers_cancelled", "Scheduled timers cancelled before they fired."),
    ("running_seconds", "running_time", "Seconds the event loop spent running (inside run_forever)."),
    ("busy_seconds", "busy_time", "Seconds the running event loop was busy (not asleep waiting for events)."),
    ("idle_seconds", "idle_time", "Seconds the running event loop slept in the kernel waiting for events."),
)
_GAUGES = (
    ("ready_callbacks", "ready", "Callbacks queued to run now."),
    ("max_ready_callbacks", "max_ready", "The largest batch of ready callbacks one iteration ran."),
    ("tasks", "live_tasks", "Tasks of the event loop that are not done."),
)


class PyloopCollector:
    """A ``prometheus_client`` collector of pyloop loops' core metrics.

    ``loop``: the one loop to export; by default every pyloop loop of the process
    that is not closed, each its own ``loop`` label.  ``namespace`` prefixes every
    name (``pyloop`` gives ``pyloop_loop_callbacks_total``).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None, *, namespace: str = "pyloop") -> None:
        if loop is not None:
            if not isinstance(loop, asyncio.AbstractEventLoop):
                raise TypeError(f"an asyncio event loop was expected, got {loop!r}")
            if not _counters.supports(loop):
                raise RuntimeError("the Prometheus collector needs a pyloop loop: other loops keep no "
                                   "core counters")
        if not isinstance(namespace, str) or not namespace.isidentifier():
            raise ValueError(f"namespace must be an identifier, got {namespace!r}")
        self._loop = weakref.ref(loop) if loop is not None else None
        self._prefix = f"{namespace}_loop_"
        self._labels: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()

    def _loops(self) -> list[tuple[str, asyncio.AbstractEventLoop]]:
        if self._loop is not None:
            only = self._loop()
            return [("0", only)] if only is not None and not only.is_closed() else []
        found = []
        for loop in _counters.live_loops():
            label = self._labels.get(loop)
            if label is None:
                label = self._labels[loop] = str(len(self._labels))
            found.append((label, loop))
        return found

    def describe(self) -> Iterator[Any]:
        """The metric families, without samples (prometheus_client checks names with it)."""
        return self._families([])

    def collect(self) -> Iterator[Any]:
        """The metric families with one sample set per loop."""
        snaps = []
        for label, loop in self._loops():
            try:
                snaps.append((label, loop, metrics(loop)))
            except RuntimeError:        # closed meanwhile
                continue
        return self._families(snaps)

    def _families(self, snaps: list[tuple[str, Any, LoopMetrics]]) -> Iterator[Any]:
        p = self._prefix
        for name, field, doc in _COUNTERS:
            family = CounterMetricFamily(p + name, doc, labels=["loop"])
            for label, _, m in snaps:
                family.add_metric([label], float(getattr(m, field)))
            yield family
        for name, field, doc in _GAUGES:
            gauge = GaugeMetricFamily(p + name, doc, labels=["loop"])
            for label, _, m in snaps:
                gauge.add_metric([label], float(getattr(m, field)))
            yield gauge
        stalled = GaugeMetricFamily(p + "stalled_seconds", "How long the event loop has been blocked in one "
                                    "callback now (0 when it is not); only while a stall watch runs.",
                                    labels=["loop"])
        for label, loop, _ in snaps:
            watch = current_watch(loop)
            if watch is not None:
                current = watch.current
                stalled.add_metric([label], time.monotonic() - current.started_at if current else 0.0)
        yield stalled
        lag = HistogramMetricFamily(p + "lag_seconds", "Event loop lag: how long the loop was busy before it "
                                    "could start a batch of ready callbacks.", labels=["loop"])
        for label, _, m in snaps:
            buckets = []
            total = 0
            for count, bound in zip(m.lag_buckets, LAG_BUCKET_BOUNDS):
                total += count
                le = floatToGoString(bound) if bound is not None else "+Inf"  # type: ignore[no-untyped-call]
                buckets.append((le, total))
            lag.add_metric([label], buckets, sum_value=m.lag_sum)
        yield lag


def register(registry: CollectorRegistry | None = None, *,
             loop: asyncio.AbstractEventLoop | None = None) -> PyloopCollector:
    """Register a :class:`PyloopCollector` on ``registry`` (prometheus_client's
    default ``REGISTRY`` if None) and return it."""
    collector = PyloopCollector(loop)
    (REGISTRY if registry is None else registry).register(collector)
    return collector
