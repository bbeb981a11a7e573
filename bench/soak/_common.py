"""Shared plumbing for the soak and scale scripts in bench/soak/.

Every script takes ``--loop pyloop|asyncio|uvloop|all`` and ``--quick``.  With one
loop named, the measurement runs in this process, so ``ru_maxrss`` and the fd table
belong to that loop alone.  With ``all``, the script re-runs itself once per
installed loop in a fresh subprocess and prints the figures side by side.

Memory is read from ``/proc/self/status`` (VmRSS now, VmHWM the peak) and open file
descriptors by listing ``/proc/self/fd``: both are Linux-only, like the scripts.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
from typing import Callable, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
LOOP_NAMES = ("pyloop", "asyncio", "uvloop")
RESULT_PREFIX = "RESULT "


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """The ``new_event_loop`` of the named implementation (ImportError if missing)."""
    if name == "asyncio":
        return asyncio.new_event_loop
    if name == "pyloop":
        if ROOT not in sys.path:
            sys.path.insert(0, ROOT)
        import pyloop

        return pyloop.new_event_loop
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    raise ValueError(f"unknown loop {name!r}; known: {', '.join(LOOP_NAMES)}")


def available_loops() -> list[str]:
    names = []
    for name in LOOP_NAMES:
        try:
            loop_factory(name)
        except ImportError:
            continue
        names.append(name)
    return names


def parse_args(description: str, extra: Callable[[argparse.ArgumentParser], None] | None = None
               ) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--loop", default="pyloop", choices=LOOP_NAMES + ("all",),
                        help="event loop under test; 'all' runs each installed one in its own process")
    parser.add_argument("--quick", action="store_true", help="a short version (seconds), for smoke tests")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # set by run_all's children
    if extra is not None:
        extra(parser)
    return parser.parse_args()


def rss_kib() -> int:
    """Resident set size of this process now, in KiB."""
    return _status_field("VmRSS")


def peak_rss_kib() -> int:
    """Peak resident set size of this process, in KiB."""
    return _status_field("VmHWM")


def _status_field(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def settled_rss_kib() -> int:
    """RSS after a full collection, so garbage waiting for the cycle collector is not counted."""
    gc.collect()
    return rss_kib()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def raise_nofile(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards ``wanted`` (at most the hard limit); the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(q / 100.0 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def slope_per_min(samples: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) samples, in value units per minute."""
    if len(samples) < 2:
        return float("nan")
    xs = [s[0] for s in samples]
    ys = [s[1] for s in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    if var == 0:
        return float("nan")
    return 60.0 * sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def emit(args: argparse.Namespace, result: dict, lines: list[str]) -> None:
    """Print the human-readable figures; in a child of ``run_all`` also the machine-readable line."""
    for line in lines:
        print(line, flush=True)
    if args.json:
        print(RESULT_PREFIX + json.dumps(result), flush=True)


def run_all(script: str, args: argparse.Namespace, argv: Sequence[str], timeout: float,
            summarise: Callable[[dict[str, dict]], list[str]]) -> int:
    """Run ``script`` once per installed loop in a subprocess; print each run's output and a summary."""
    results: dict[str, dict] = {}
    status = 0
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    for name in available_loops():
        cmd = [sys.executable, script, "--loop", name, "--json", *argv]
        print(f"=== {name}: {' '.join(cmd[1:])}", flush=True)
        try:
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  timeout=timeout, env=env)
        except subprocess.TimeoutExpired as exc:
            print(f"{name}: timed out after {timeout:.0f} s\n{exc.stdout or ''}")
            status = 1
            continue
        for line in proc.stdout.splitlines():
            if line.startswith(RESULT_PREFIX):
                results[name] = json.loads(line[len(RESULT_PREFIX):])
            else:
                print("  " + line)
        if proc.returncode != 0:
            print(f"{name}: exit status {proc.returncode}")
            status = 1
    print("=== summary")
    for line in summarise(results):
        print(line)
    return status


def child_argv(args: argparse.Namespace, names: Sequence[str]) -> list[str]:
    """The options of ``args`` named in ``names``, as argv for a child run."""
    out = []
    for name in names:
        value = getattr(args, name)
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            if value:
                out.append(flag)
        elif value is not None:
            out += [flag, str(value)]
    return out


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """A small markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return lines
