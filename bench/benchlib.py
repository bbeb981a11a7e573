"""Shared pieces of pyloop's benchmark harness: the loop table and the benchmark registry.

A *benchmark* is a function ``func(loop, n) -> float`` that drives ``loop`` through ``n`` operations and
returns the cost per operation in ``unit`` (the time is taken inside the benchmark, around the loop's own
work, so process start-up and imports never count).  A *group* is a module in this directory that exposes a
list ``BENCHMARKS`` of :class:`Benchmark`; the runner (compare.py) and the worker (_worker.py) load every
module named in :data:`GROUPS`.  To add a group (an echo server driven by a C load generator, HTTP under
wrk, ...) write ``bench/<group>.py`` with its own ``BENCHMARKS`` and append its name to :data:`GROUPS`;
nothing else changes.  A benchmark whose number is a rate rather than a cost sets ``lower_is_better=False``.
Groups that drive servers (echo, http) run themselves: see :func:`group_module`.
"""
from __future__ import annotations

import dataclasses
import importlib
import sys
import time
from typing import Callable

# Benchmark groups, in the order compare.py runs and reports them.  A group is a module in bench/ (named like
# the group, except where GROUP_MODULES says otherwise).
GROUPS = ["micro", "toolbox", "echo", "http", "apps", "tls"]
# No module here may be called http: bench/ is first on sys.path, so bench/http.py would hide the standard
# library's http package from everything imported after it (urllib.request, matplotlib, ...).
GROUP_MODULES = {"http": "http_bench", "toolbox": "toolbox_bench", "apps": "apps_bench", "tls": "tls_bench"}

# name -> (module to import, attribute that makes a new loop, distribution name for the version).
# The order is the column order of every table; pyloop last, so the baselines read left to right.
LOOPS: dict[str, tuple[str, str, str | None]] = {
    "asyncio": ("asyncio", "new_event_loop", None),
    "uvloop": ("uvloop", "new_event_loop", "uvloop"),
    "rloop": ("rloop", "new_event_loop", "rloop"),
    "pyloop": ("pyloop", "new_event_loop", "pyloop"),
}
SUBJECT = "pyloop"  # the loop under test: ratios are taken against it

# The clock every benchmark reads around its operations (as `benchlib.clock()`, looked up once per run).
# "wall" is what a user waits for.  "cpu" is the process's CPU time (all threads): on a shared machine a
# process that is descheduled for a while inflates wall time but not CPU time, so "cpu" is steadier when the
# machine is busy (here, under a parallel build: wall 1-5 us/op, CPU 0.9-1.6 us/op for uvloop's call_soon).
CLOCKS = {"wall": time.perf_counter_ns, "cpu": time.process_time_ns}
clock = time.perf_counter_ns


def use_clock(name: str) -> None:
    global clock
    clock = CLOCKS[name]


@dataclasses.dataclass(frozen=True)
class Benchmark:
    name: str                         # short id used on the command line and in tables
    func: Callable[..., float]        # func(loop, n) -> cost per operation, in `unit`
    n: int                            # fixed operation count of one measurement
    description: str                  # one line for the README/report
    unit: str = "ns/op"
    target: float | None = None       # DESIGN.md budget for pyloop, in `unit`
    target_label: str = ""            # how the budget reads in DESIGN.md ("call_soon <= 300 ns")
    lower_is_better: bool = True
    group: str = ""                   # filled in by load_benchmarks()


def load_benchmarks(groups: list[str] | None = None) -> dict[str, Benchmark]:
    """All registered benchmarks, in report order, keyed by name."""
    out: dict[str, Benchmark] = {}
    for group in groups or GROUPS:
        mod = group_module(group)
        for b in mod.BENCHMARKS:
            if b.name in out:
                raise ValueError(f"benchmark {b.name!r} registered twice")
            out[b.name] = dataclasses.replace(b, group=group)
    return out


def group_module(group: str):
    """The module of a benchmark group.

    A group whose measurements need more than ``func(loop, n)`` in a worker process (a server in its own
    process driven by a load generator, several numbers per measurement: echo, http) also defines
    ``prerequisites() -> str | None`` (why it cannot run here, or None) and ``run_group(args, loops,
    benches, versions, missing, env) -> exit status``; compare.py then hands it the chosen loops and rows
    instead of running them through _worker.py, and such a group prints and writes its own report.
    """
    return importlib.import_module(GROUP_MODULES.get(group, group))


def runs_itself(group: str) -> bool:
    """Whether a group runs its own measurements (run_group) rather than func(loop, n) in _worker.py."""
    return hasattr(group_module(group), "run_group")


def make_loop(name: str):
    """A new loop of the named kind; ImportError if that loop is not installed."""
    modname, factory, _ = LOOPS[name]
    mod = importlib.import_module(modname)
    make = getattr(mod, factory, None)
    if make is None:  # e.g. a source checkout of pyloop whose extension is not built yet
        raise ImportError(f"{modname} has no {factory}()")
    return make()


def loop_version(name: str) -> str:
    modname, _, dist = LOOPS[name]
    if dist is None:  # asyncio ships with the interpreter
        return "asyncio (Python " + sys.version.split()[0] + ")"
    mod = sys.modules.get(modname) or importlib.import_module(modname)
    version = getattr(mod, "__version__", None)
    if version is None:
        try:
            from importlib.metadata import version as dist_version
            version = dist_version(dist)
        except Exception:
            version = "unknown"
    return f"{name} {version}"
