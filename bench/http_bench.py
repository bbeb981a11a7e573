"""HTTP benchmark group: an httptools keep-alive server (servers/http.py) on each loop, driven by wrk.

(The group is called ``http``; the module is not, because bench/ is first on sys.path and a bench/http.py
would hide the standard library's http package.)

For each loop, each round: start the server in its own process, warm it up with a one-second wrk run, then
run ``wrk -t2 -c50 -d<duration> --latency`` and read requests/s, latency percentiles and the request count
from wrk's report; the server's CPU (utime and stime from /proc/PID/stat, all threads) is read just before
and just after the measured wrk run and divided by the requests wrk counted, and wrk's own CPU (its rusage
as a waited child) likewise: on a machine whose cores the server and wrk share, wrk's CPU per request can
exceed the server's, and then req/s says more about how the scheduler placed the three threads than about
the server.  Rounds rotate the loop order;
tables show medians over rounds.  The group is skipped, with a message, when wrk (``apt-get install wrk``)
or httptools (``pip install httptools``, in the ``bench`` extra) is missing.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import resource
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
TARGET_FACTOR = 1.1  # the target: pyloop >= 1.1x the req/s of the fastest of asyncio/uvloop/rloop
# (rounds, measured seconds) -- default, --quick.  wrk's -d takes whole seconds.
DEFAULTS = (3, 2)
QUICK = (1, 1)
WARMUP_S = 1


def run_wrk(wrk: str, server: netlib.Server, duration: int, cpu: int | None, scheme: str = "http") -> dict:
    """One measured wrk run against a running server, with the server's CPU over it
    (``scheme="https"``: wrk's own OpenSSL is the TLS client)."""
    argv = [wrk, f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{duration}s", "--latency", "--timeout", "5s",
            f"{scheme}://127.0.0.1:{server.port}/"]
    u0, s0 = server.cpu_times()
    # wrk is the only child waited for in between (the servers still run), so the
    # children's rusage grows by wrk's CPU alone.
    w0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60,
                              preexec_fn=netlib.pinned(cpu))
    except subprocess.TimeoutExpired:
        raise RuntimeError("wrk hung") from None
    u1, s1 = server.cpu_times() if server.alive() else (u0, s0)
    w1 = resource.getrusage(resource.RUSAGE_CHILDREN)
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
    out["client_us"] = (w1.ru_utime - w0.ru_utime + w1.ru_stime - w0.ru_stime) * 1e6 / n
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
    return run_wrk_group(args, loops, benches, versions, missing, env, WRK_GROUP)


@dataclasses.dataclass(frozen=True)
class WrkGroup:
    """A group of HTTP servers under wrk: each row a benchmark served by ``servers/<script> --flavour``."""

    name: str                        # the group, and the report's file name (<out>/<name>.md)
    title: str                       # the report's heading
    script: str                      # server script in bench/servers/
    flavours: dict[str, str]         # benchmark name -> the script's --flavour
    target_factor: float             # pyloop's req/s over the baseline's
    baseline: str | None = None      # a loop name, or None: the fastest other loop


WRK_GROUP = WrkGroup("http", "pyloop HTTP benchmark", "http.py", {"http_hello": "protocol"},
                     TARGET_FACTOR)


def run_wrk_group(args, loops: list[str], benches: list[Benchmark], versions: dict[str, str],
                  missing: dict[str, str], env: dict[str, str], group: WrkGroup) -> int:
    """Every chosen row on every loop, rounds interleaved (the loop order rotates each round)."""
    rounds, duration = QUICK if args.quick else DEFAULTS
    rounds = args.net_rounds or rounds
    duration = max(1, round(args.duration)) if args.duration else duration
    wrk = shutil.which("wrk")
    server_cpu, client_cpu = netlib.cpu_plan(args.pin)
    placement = (f"server on CPU {server_cpu}, wrk on CPU {client_cpu}" if server_cpu is not None
                 else "not pinned")
    print(f"{group.name}: {len(loops)} loops x {len(benches)} servers, {rounds} rounds, {WARMUP_S} s warm-up "
          f"+ {duration} s each, wrk -t{THREADS} -c{CONNECTIONS}; {placement}", file=sys.stderr, flush=True)

    table = {b.name: {name: Cell() for name in loops} for b in benches}
    started = time.monotonic()
    for rnd in range(rounds):
        k = rnd % len(loops)
        for bench in benches:
            shown = []
            for name in loops[k:] + loops[:k]:
                cell = table[bench.name][name]
                if cell.error or cell.unsupported:
                    shown.append(f"{name} {'n/s' if cell.unsupported else 'ERROR'}")
                    continue
                try:
                    with netlib.python_server(group.script, name, group.flavours[bench.name], server_cpu,
                                              env) as server:
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
            print(f"[{group.name} round {rnd + 1}/{rounds} {time.monotonic() - started:6.1f}s] {bench.name}: "
                  + "  ".join(shown), file=sys.stderr, flush=True)

    settings = (f"{rounds} rounds, {WARMUP_S} s warm-up + {duration} s measured per loop, wrk -t{THREADS} "
                f"-c{CONNECTIONS}; {placement}{' (--quick)' if args.quick else ''}")
    return _report(args, loops, benches, table, versions, missing, settings, group)


HEAD = ["loop", "req/s", "vs {}", "user us/req", "sys us/req", "total us/req", "wrk us/req", "p50 us", "p99 us"]


def _baseline(loops: list[str], cells: dict[str, Cell], group: WrkGroup) -> str | None:
    """The loop pyloop is compared with: the group's named baseline, or the fastest other loop."""
    if group.baseline is not None:
        return group.baseline if group.baseline in cells and cells[group.baseline].runs else None
    others = {n: cells[n].median("req_per_s") for n in loops if n != benchlib.SUBJECT}
    others = {n: v for n, v in others.items() if v is not None}
    return max(others, key=others.get) if others else None


def _rows(loops, cells, base):
    rows = []
    for name in loops:
        c = cells[name]
        if c.unsupported or c.error:
            rows.append([name, "not supported" if c.unsupported else "error"] + [""] * (len(HEAD) - 2))
            continue
        ratio = (netlib.paired_ratio(c.values("req_per_s"), cells[base].values("req_per_s"))
                 if base and name != base else None)
        rows.append([name, netlib.fmt_num(c.median("req_per_s")), f"{ratio:.2f}x" if ratio else "-",
                     netlib.fmt_num(c.median("user_us")), netlib.fmt_num(c.median("sys_us")),
                     netlib.fmt_num(c.median("total_us")), netlib.fmt_num(c.median("client_us")),
                     netlib.fmt_num(c.median("p50")),
                     netlib.fmt_num(c.median("p99"))])
    return rows


def _target(bench: Benchmark, cells: dict[str, Cell], base: str | None, group: WrkGroup) -> list[str] | None:
    subject = cells.get(benchlib.SUBJECT)
    against = group.baseline or "the fastest of the other loops"
    label = f"{bench.name}: pyloop >= {group.target_factor}x {against} (req/s)"
    if subject is None:
        return None
    if subject.unsupported:
        return [label, "not supported", "n/a"]
    if subject.error:
        return [label, "error", "error"]
    if base is None:
        return [label, "no other loop measured", "n/a"]
    ratio = netlib.paired_ratio(subject.values("req_per_s"), cells[base].values("req_per_s"))
    if ratio is None:
        return [label, f"{base} served no request", "n/a"]
    return [label, f"{netlib.fmt_num(subject.median('req_per_s'))} vs {base} "
                   f"{netlib.fmt_num(cells[base].median('req_per_s'))} ({ratio:.2f}x)",
            "met" if ratio >= group.target_factor else "MISSED"]


def _report(args, loops, benches, table, versions, missing, settings, group: WrkGroup) -> int:
    import report

    info = report.system_info()
    head = [h.format(group.baseline or "fastest other") for h in HEAD]
    md = [f"# {group.title}", "",
          f"- Date: {info['date']}", f"- Python: {info['python']}", f"- CPU: {info['cpu']}",
          f"- OS: {info['os']}", f"- Load: 1-min load average {os.getloadavg()[0]:.2f} at the end",
          "- Loops: " + ", ".join(versions[name] for name in loops),
          *[f"- Not measured: {name} ({why})" for name, why in missing.items()],
          f"- Settings: {settings}", ""]
    print()
    print(f"{group.title}: {info['python']} on {info['cpu']}, {info['date']}; {settings}")
    targets, errors, notes, spread, panels_rate, panels_cpu = [], [], [], [], [], []
    for bench in benches:
        cells = table[bench.name]
        base = _baseline(loops, cells, group)
        rows = _rows(loops, cells, base)
        print(f"\n{bench.name}: {bench.description}")
        print(netlib.text_table(head, rows))
        md += [f"## {bench.name}", "", bench.description, "", *netlib.md_table(head, rows), ""]
        target = _target(bench, cells, base, group)
        if target:
            targets.append(target)
        errors += [(bench.name, n, c.error) for n, c in cells.items() if c.error]
        notes += [f"- {bench.name} on {n}: not supported: `{c.unsupported}`"
                  for n, c in cells.items() if c.unsupported]
        ok = {n: c for n, c in cells.items() if c.runs and not (c.error or c.unsupported)}
        spread += [[bench.name, n, f"{netlib.fmt_num(min(c.values('req_per_s')))} - "
                                   f"{netlib.fmt_num(max(c.values('req_per_s')))}",
                    f"{netlib.fmt_num(min(c.values('total_us')))} - {netlib.fmt_num(max(c.values('total_us')))}"]
                   for n, c in ok.items()]
        base_med = cells[base].median("req_per_s") if base else None
        panels_rate.append((bench.name, {n: c.values("req_per_s") for n, c in ok.items()},
                            base_med * group.target_factor if base_med else None))
        panels_cpu.append((bench.name, {n: c.values("total_us") for n, c in ok.items()}, None))
    if targets:
        print()
        print(netlib.text_table(["target", "measured (median)", "status"], targets))
        md += ["## Targets (DESIGN.md)", "", *netlib.md_table(["target", "measured (median)", "status"], targets),
               ""]
    print(NOTE)
    for bench_name, n, e in errors:
        print(f"ERROR {bench_name} on {n}: {e}")
    md += [NOTE, "", "## Spread (min - max over rounds)", ""]
    md += netlib.md_table(["server", "loop", "req/s", "total us/req"], spread)
    notes += [f"- {b} on {n}: error: `{e}`" for b, n, e in errors]
    if notes:
        md += ["", "## Not supported and errors", "", *notes]
    os.makedirs(args.out, exist_ok=True)
    md_path = os.path.join(args.out, f"{group.name}.md")
    with open(md_path, "w") as f:
        f.write("\n".join(md) + "\n")
    with open(os.path.join(args.out, f"{group.name}.json"), "w") as f:
        json.dump({"settings": settings, "info": info,
                   "cells": {b: {n: dataclasses.asdict(c) for n, c in cells.items()}
                             for b, cells in table.items()}}, f)
    print(f"\nwrote {md_path}")
    if not args.no_plot:
        png = os.path.join(args.out, f"{group.name}.png")
        panels = [("req/s", False, panels_rate), ("server CPU us/req", True, panels_cpu)]
        why = netlib.plot_panels(panels, loops, png, f"{group.title}, wrk -c{CONNECTIONS} ({info['python']}, "
                                                     f"{info['date']})")
        print(f"skipped the plot: {why}" if why else f"wrote {png}")
    return 1 if errors else 0


NOTE = ("Medians over rounds.  req/s: wrk's Requests/sec; 'vs <loop>': this loop's req/s over the baseline's "
        "(the named loop,\nor the fastest other loop with pyloop excluded), median of per-round ratios.  us/req: "
        "server CPU per request from\n/proc/PID/stat around the measured wrk run; user and sys split the median "
        "total by the user share pooled over\nrounds (tick-sampled).  wrk us/req: the load generator's own CPU "
        "per request (both threads); when it\nexceeds the server's on a machine whose cores they share, wrk "
        "sets the pace.  p50/p99: wrk's latency distribution.")
