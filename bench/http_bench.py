"""HTTP benchmark group: an httptools keep-alive server (servers/http.py) on each loop, driven by wrk.

(The group is called ``http``; the module is not, because bench/ is first on sys.path and a bench/http.py
would hide the standard library's http package.)

For each loop, each round: start the server in its own process, warm it up with a one-second wrk run, then
run ``wrk -t2 -c50 -d<duration> --latency`` and read requests/s, latency percentiles and the request count
from wrk's report; the server's CPU (utime and stime from /proc/PID/stat, all threads) is read just before
and just after the measured wrk run and divided by the requests wrk counted.  Rounds rotate the loop order;
tables show medians over rounds.  The group is skipped, with a message, when wrk (``apt-get install wrk``)
or httptools (``pip install httptools``, in the ``bench`` extra) is missing.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import time

try:
    from . import benchlib, netlib
except ImportError:
    import benchlib
    import netlib

Benchmark = benchlib.Benchmark

THREADS, CONNECTIONS = 2, 50
TARGET_FACTOR = 1.15  # DESIGN.md: pyloop >= 1.15x the fastest of asyncio/uvloop/rloop
# (rounds, measured seconds) -- default, --quick.  wrk's -d takes whole seconds.
DEFAULTS = (3, 2)
QUICK = (1, 1)
WARMUP_S = 1


def run_wrk(wrk: str, server: netlib.Server, duration: int, cpu: int | None) -> dict:
    """One measured wrk run against a running server, with the server's CPU over it."""
    argv = [wrk, f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{duration}s", "--latency", "--timeout", "5s",
            f"http://127.0.0.1:{server.port}/"]
    u0, s0 = server.cpu_times()
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60,
                              preexec_fn=netlib.pinned(cpu))
    except subprocess.TimeoutExpired:
        raise RuntimeError("wrk hung") from None
    u1, s1 = server.cpu_times() if server.alive() else (u0, s0)
    if proc.returncode != 0 or not server.alive():
        why = proc.stderr.strip()[-300:] or f"wrk exit status {proc.returncode}"
        if not server.alive():
            why += f" (the server died: {server.stderr_tail()})"
        raise RuntimeError(why)
    out = parse_wrk(proc.stdout)
    bad = out["errors"] + out["non_2xx"]
    if bad > 0.001 * max(out["requests"], 1):
        raise RuntimeError(f"{bad} of {out['requests']} requests failed (socket errors or non-2xx)")
    n = max(out["requests"], 1)
    out["server_cpu_s"] = {"user": u1 - u0, "sys": s1 - s0}
    out.update(user_us=(u1 - u0) * 1e6 / n, sys_us=(s1 - s0) * 1e6 / n)
    out["total_us"] = out["user_us"] + out["sys_us"]
    return out


_UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6}


def _us(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")


def parse_wrk(text: str) -> dict:
    """requests/s, requests, seconds, latency percentiles (us), errors from wrk --latency output."""
    def grab(pattern, conv=float, default=None):
        m = re.search(pattern, text, re.MULTILINE)
        if m is None:
            if default is None:
                raise RuntimeError(f"cannot read wrk's output: {text.strip()[-200:]!r}")
            return default
        return conv(m.group(1))
    out = {
        "req_per_s": grab(r"^Requests/sec:\s+([\d.]+)"),
        "requests": grab(r"^\s*(\d+) requests in", int),
        "seconds": grab(r"requests in ([\d.]+)s", float, default=0.0),
        "p50": grab(r"^\s+50%\s+(\S+)", _us), "p99": grab(r"^\s+99%\s+(\S+)", _us),
        "non_2xx": grab(r"Non-2xx or 3xx responses: (\d+)", int, default=0),
    }
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["errors"] = sum(map(int, m.groups())) if m else 0
    return out


# One row: the group's `func` is run_wrk (called by run_group); n is unused (wrk runs for a duration).
BENCHMARKS = [Benchmark("http_hello", run_wrk, 0,
                        f"GET / -> 200 with a 13-byte body, HTTP/1.1 keep-alive, httptools parser, "
                        f"asyncio.Protocol server; wrk -t{THREADS} -c{CONNECTIONS}",
                        unit="req/s", lower_is_better=False)]


@dataclasses.dataclass
class Cell:
    runs: list[dict] = dataclasses.field(default_factory=list)
    error: str | None = None
    unsupported: str | None = None

    def values(self, metric: str) -> list[float]:
        return [r[metric] for r in self.runs]

    def median(self, metric: str) -> float | None:
        """Median over rounds; user_us and sys_us split the median total (netlib.split_total)."""
        if self.error or self.unsupported:
            return None
        if metric in ("user_us", "sys_us"):
            user, sys_ = netlib.split_total(netlib.median(self.values("total_us")),
                                            [r["server_cpu_s"]["user"] for r in self.runs],
                                            [r["server_cpu_s"]["sys"] for r in self.runs])
            return user if metric == "user_us" else sys_
        return netlib.median(self.values(metric))


def prerequisites() -> str | None:
    if not sys.platform.startswith("linux"):
        return "needs Linux (/proc/PID/stat)"
    if shutil.which("wrk") is None:
        return "wrk is not installed (Debian/Ubuntu: apt-get install wrk)"
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "httptools is not installed (pip install httptools, or pip install '.[bench]')"
    return None


def run_group(args, loops: list[str], benches: list[Benchmark], versions: dict[str, str],
              missing: dict[str, str], env: dict[str, str]) -> int:
    rounds, duration = QUICK if args.quick else DEFAULTS
    rounds = args.net_rounds or rounds
    duration = max(1, round(args.duration)) if args.duration else duration
    wrk = shutil.which("wrk")
    server_cpu, client_cpu = netlib.cpu_plan(args.pin)
    placement = (f"server on CPU {server_cpu}, wrk on CPU {client_cpu}" if server_cpu is not None
                 else "not pinned")
    print(f"http: {len(loops)} loops, {rounds} rounds, {WARMUP_S} s warm-up + {duration} s each, "
          f"wrk -t{THREADS} -c{CONNECTIONS}; {placement}", file=sys.stderr, flush=True)

    cells = {name: Cell() for name in loops}
    started = time.monotonic()
    for rnd in range(rounds):
        k = rnd % len(loops)
        shown = []
        for name in loops[k:] + loops[:k]:
            cell = cells[name]
            if cell.error or cell.unsupported:
                shown.append(f"{name} {'n/s' if cell.unsupported else 'ERROR'}")
                continue
            try:
                with netlib.python_server("http.py", name, "protocol", server_cpu, env) as server:
                    run_wrk(wrk, server, WARMUP_S, client_cpu)
                    cell.runs.append(run_wrk(wrk, server, duration, client_cpu))
                r = cell.runs[-1]
                shown.append(f"{name} {r['req_per_s']:,.0f}/s {r['total_us']:.1f}us")
            except netlib.Unsupported as exc:
                cell.unsupported = str(exc)
                shown.append(f"{name} n/s")
            except (netlib.ServerError, RuntimeError) as exc:
                cell.error = str(exc)
                shown.append(f"{name} ERROR")
        print(f"[http round {rnd + 1}/{rounds} {time.monotonic() - started:6.1f}s] " + "  ".join(shown),
              file=sys.stderr, flush=True)

    settings = (f"{rounds} rounds, {WARMUP_S} s warm-up + {duration} s measured per loop, wrk -t{THREADS} "
                f"-c{CONNECTIONS}; {placement}{' (--quick)' if args.quick else ''}")
    return _report(args, loops, cells, versions, missing, settings)


HEAD = ["loop", "req/s", "vs fastest other", "user us/req", "sys us/req", "total us/req", "p50 us", "p99 us"]


def _best_other(loops: list[str], cells: dict[str, Cell]) -> str | None:
    others = {n: cells[n].median("req_per_s") for n in loops if n != benchlib.SUBJECT}
    others = {n: v for n, v in others.items() if v is not None}
    return max(others, key=others.get) if others else None


def _report(args, loops, cells, versions, missing, settings) -> int:
    import report

    info = report.system_info()
    best = _best_other(loops, cells)
    rows = []
    for name in loops:
        c = cells[name]
        if c.unsupported or c.error:
            rows.append([name, "not supported" if c.unsupported else "error"] + [""] * 6)
            continue
        ratio = (netlib.paired_ratio(c.values("req_per_s"), cells[best].values("req_per_s"))
                 if best and name != best else None)
        rows.append([name, netlib.fmt_num(c.median("req_per_s")), f"{ratio:.2f}x" if ratio else "-",
                     netlib.fmt_num(c.median("user_us")), netlib.fmt_num(c.median("sys_us")),
                     netlib.fmt_num(c.median("total_us")), netlib.fmt_num(c.median("p50")),
                     netlib.fmt_num(c.median("p99"))])
    subject = cells.get(benchlib.SUBJECT)
    label = f"HTTP: pyloop >= {TARGET_FACTOR}x the fastest of the other loops (req/s)"
    if subject is None:
        target = None
    elif subject.unsupported:
        target = [label, "not supported", "n/a"]
    elif subject.error:
        target = [label, "error", "error"]
    elif best is None:
        target = [label, "no other loop measured", "n/a"]
    else:
        ratio = netlib.paired_ratio(subject.values("req_per_s"), cells[best].values("req_per_s"))
        target = [label, f"{netlib.fmt_num(subject.median('req_per_s'))} vs {best} "
                         f"{netlib.fmt_num(cells[best].median('req_per_s'))} ({ratio:.2f}x)",
                  "met" if ratio >= TARGET_FACTOR else "MISSED"]

    print()
    print(f"HTTP benchmark: {info['python']} on {info['cpu']}, {info['date']}; {settings}")
    print(netlib.text_table(HEAD, rows))
    if target:
        print()
        print(netlib.text_table(["target", "measured (median)", "status"], [target]))
    print(NOTE)
    errors = [(n, c.error) for n, c in cells.items() if c.error]
    for n, e in errors:
        print(f"ERROR http on {n}: {e}")

    md = ["# pyloop HTTP benchmark", "",
          f"- Date: {info['date']}", f"- Python: {info['python']}", f"- CPU: {info['cpu']}",
          f"- OS: {info['os']}", f"- Load: 1-min load average {os.getloadavg()[0]:.2f} at the end",
          "- Loops: " + ", ".join(versions[name] for name in loops),
          *[f"- Not measured: {name} ({why})" for name, why in missing.items()],
          f"- Settings: {settings}", f"- Workload: {BENCHMARKS[0].description}", "",
          *netlib.md_table(HEAD, rows), ""]
    if target:
        md += ["## Target (DESIGN.md)", "", *netlib.md_table(["target", "measured (median)", "status"], [target]),
               ""]
    md += [NOTE, "", "## Spread (min - max over rounds)", ""]
    md += netlib.md_table(["loop", "req/s", "total us/req"], [
        [n, f"{netlib.fmt_num(min(c.values('req_per_s')))} - {netlib.fmt_num(max(c.values('req_per_s')))}",
         f"{netlib.fmt_num(min(c.values('total_us')))} - {netlib.fmt_num(max(c.values('total_us')))}"]
        for n, c in cells.items() if c.runs and not (c.error or c.unsupported)])
    notes = [f"- {n}: not supported: `{c.unsupported}`" for n, c in cells.items() if c.unsupported]
    notes += [f"- {n}: error: `{e}`" for n, e in errors]
    if notes:
        md += ["", "## Not supported and errors", "", *notes]
    os.makedirs(args.out, exist_ok=True)
    md_path = os.path.join(args.out, "http.md")
    with open(md_path, "w") as f:
        f.write("\n".join(md) + "\n")
    with open(os.path.join(args.out, "http.json"), "w") as f:
        json.dump({"settings": settings, "info": info,
                   "cells": {n: dataclasses.asdict(c) for n, c in cells.items()}}, f)
    print(f"\nwrote {md_path}")
    if not args.no_plot:
        png = os.path.join(args.out, "http.png")
        ok = {n: c for n, c in cells.items() if c.runs and not (c.error or c.unsupported)}
        best_med = cells[best].median("req_per_s") if best else None
        panels = [("req/s", False, [("http_hello", {n: c.values("req_per_s") for n, c in ok.items()},
                                     best_med * TARGET_FACTOR if best_med else None)]),
                  ("server CPU us/req", True, [("http_hello", {n: c.values("total_us") for n, c in ok.items()},
                                                None)])]
        why = netlib.plot_panels(panels, loops, png, f"HTTP, wrk -c{CONNECTIONS} ({info['python']}, "
                                                     f"{info['date']})")
        print(f"skipped the plot: {why}" if why else f"wrote {png}")
    return 1 if errors else 0


NOTE = ("Medians over rounds.  req/s: wrk's Requests/sec; 'vs fastest other': this loop's req/s over the "
        "fastest other loop's\n(pyloop excluded), median of per-round ratios.  us/req: server CPU per request "
        "from /proc/PID/stat around the\nmeasured wrk run; user and sys split the median total by the user "
        "share pooled over rounds (tick-sampled).\np50/p99: wrk's latency distribution.")
