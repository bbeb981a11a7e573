"""Echo benchmark group: TCP echo servers on each loop, driven by a closed-loop load generator in C.

For every loop x flavour (protocol, streams, sock; see servers/echo.py) x message size (1 KiB, 10 KiB,
100 KiB) the runner starts the server in its own process, and the C client (loadgen/echo_client.c, built
here with ``cc -O2``) opens 10 connections, each with one message in flight, warms up, and then counts the
messages echoed during a fixed duration.  One measurement gives:

* msgs/s: messages echoed per second (closed loop: the server's throughput at a concurrency of 10);
* server CPU per message, user and system apart, in microseconds: the server's utime and stime from
  /proc/PID/stat, read by the client at the two instants that bound the measured interval, divided by the
  messages of that interval.  On this noisy 2-core machine this is steadier than msgs/s, which moves with
  whatever else runs, and user CPU is the part an event loop can change: the system part is the kernel's
  read/write/epoll cost, which a pure-C server pays too;
* latency percentiles (per message, first byte sent to last byte back) and the client's own CPU use, so a
  reader can see whether the client, not the server, was the bottleneck.

* messages per wake-up: messages over the voluntary context switches of the server's main thread, i.e.
  how many messages one return from the poller handled.  Per-message cost falls as this rises (the
  poll and the loop's per-iteration work are shared), and it rises when the machine is busy and messages
  queue up while the server waits for a CPU: CPU per message is only comparable between loops measured
  in the same run, and this column says how much batching each one got.

A pure-C epoll echo server (loadgen/echo_server.c) is measured alongside as the ceiling.

Rounds are interleaved: all servers of a round are started first (an idle server costs nothing: it sleeps
in its poller) and each serves one short connection to its end (prime() says why); then for each size and
flavour the loops are measured back to back, in an order rotated each round, and the C server after them.
Each round starts fresh server processes.  The tables show medians over rounds; ratios are medians of
per-round ratios.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time

try:
    from . import benchlib, netlib, report
except ImportError:
    import benchlib
    import netlib
    import report

Benchmark = benchlib.Benchmark

SIZES = (("1k", 1024, "1 KiB"), ("10k", 10240, "10 KiB"), ("100k", 102400, "100 KiB"))
FLAVOURS = ("protocol", "streams", "sock")
CONNS = 10
CEILING = "C epoll"  # the pure-C server, shown as the ceiling row / plot column
REFERENCE = "uvloop"  # the "vs" column and the targets compare with this loop

# settings: (rounds, warm-up s, measured s) -- default, --quick.  The default keeps `compare.py` (micro
# included) near 5 minutes on the 2-core reference machine; for numbers to quote use more rounds and a
# longer duration (bench/README.md), since /proc/PID/stat counts CPU in 10 ms ticks.
DEFAULTS = (3, 0.15, 0.4)
QUICK = (1, 0.1, 0.25)


def run_client(client: str, server: netlib.Server, size: int, *, warmup: float, duration: float,
               cpu: int | None, conns: int = CONNS) -> dict:
    """One measurement: the C client against a running server; the client's JSON answer, plus per-message
    figures.  Raises RuntimeError with the client's reason if it failed."""
    argv = [client, "--port", str(server.port), "--conns", str(conns), "--size", str(size),
            "--warmup", f"{warmup:g}", "--duration", f"{duration:g}", "--server-pid", str(server.pid),
            "--timeout", "10"]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=warmup + duration + 60,
                              preexec_fn=netlib.pinned(cpu))
    except subprocess.TimeoutExpired:
        raise RuntimeError("the load generator hung") from None
    try:
        answer = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        answer = {"ok": False, "error": f"load generator exit status {proc.returncode}: "
                                        f"{proc.stderr.strip()[-300:]}"}
    if not answer.get("ok"):
        why = answer.get("error", "?")
        try:  # a reset connection is often the first sign of a dead server: give its exit a moment to land
            server.proc.wait(0.5)
        except subprocess.TimeoutExpired:
            pass
        if not server.alive():
            why += f" (the server died: {server.stderr_tail()})"
        raise RuntimeError(why)
    n = max(answer["messages"], 1)
    answer["user_us"] = answer["server_cpu_s"]["user"] * 1e6 / n
    answer["sys_us"] = answer["server_cpu_s"]["sys"] * 1e6 / n
    answer["total_us"] = answer["user_us"] + answer["sys_us"]
    answer["per_wakeup"] = answer["messages"] / max(answer["server_switches"]["voluntary"], 1)
    answer["client_util"] = (answer["client_cpu_s"]["user"] + answer["client_cpu_s"]["sys"]) / answer["seconds"]
    return answer


def prime(client: str, server: netlib.Server, cpu: int | None) -> None:
    """Serve one short connection to its end before anything is measured.

    A server that has been up for a while has seen connections close; a fresh process has not, and that
    changes what the measured interval costs.  glibc serves allocations above its mmap threshold (128 KiB
    at first) with mmap, and raises the threshold only when such a block is freed whole -- which the
    256 KiB buffer of a read that returns EOF is, while every data read shrinks its buffer first.  So
    before any connection has closed, each 256 KiB read (asyncio's transports; every loop's sock flavour)
    costs an mmap, mremap and munmap: asyncio's 1 KiB protocol echo measured 51 us of CPU per message
    fresh and 15 us after one closed connection.  The ceiling gets the same treatment, for symmetry.
    """
    argv = [client, "--port", str(server.port), "--conns", "1", "--size", "1024", "--warmup", "0",
            "--messages", "20", "--timeout", "10"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, preexec_fn=netlib.pinned(cpu))
    if proc.returncode != 0:
        raise netlib.ServerError(f"priming connection failed: {proc.stdout.strip() or proc.stderr.strip()}")


def _bench(flavour: str, label: str, size: int, human: str) -> Benchmark:
    how = {"protocol": "asyncio.Protocol via loop.create_server",
           "streams": "asyncio.start_server, read/write/drain",
           "sock": "loop.sock_accept + sock_recv/sock_sendall"}[flavour]
    return Benchmark(f"echo_{flavour}_{label}", run_client, size,
                     f"echo of {human} messages, {CONNS} connections, one message in flight each; {how}",
                     unit="msgs/s", lower_is_better=False)


# The rows of the group.  `func` is run_client (called by run_group, not by _worker.py); n is the size.
BENCHMARKS = [_bench(fl, label, size, human) for label, size, human in SIZES for fl in FLAVOURS]


@dataclasses.dataclass
class Target:
    bench: str
    label: str
    metric: str                 # key of a measurement: user_us, total_us, msgs_per_s
    limit: float | None = None  # an absolute limit ...
    vs: str | None = None       # ... or a factor times this loop's figure
    factor: float = 1.0


TARGETS = [
    Target("echo_protocol_1k", "echo 1 KiB protocol: pyloop user CPU <= 1.6 us/msg", "user_us", limit=1.6),
    Target("echo_protocol_1k", "echo 1 KiB protocol: pyloop total server CPU <= uvloop's", "total_us",
           vs="uvloop"),
    Target("echo_streams_1k", "echo 1 KiB streams: pyloop >= 1.2x uvloop msgs/s", "msgs_per_s", vs="uvloop",
           factor=1.2),
    # Issue 16 (large messages): user CPU at most rloop's, total at most 1.2x the pure-C server's.
    *[Target(f"echo_protocol_{label}", f"echo {human} protocol: pyloop user CPU <= rloop's", "user_us",
             vs="rloop") for label, _, human in SIZES[1:]],
    *[Target(f"echo_protocol_{label}", f"echo {human} protocol: pyloop total server CPU <= 1.2x {CEILING}'s",
             "total_us", vs=CEILING, factor=1.2) for label, _, human in SIZES],
    # sock_* in Cython (issue 16): against rloop, the fastest other loop there.
    *[target for label, _, human in SIZES for target in (
        Target(f"echo_sock_{label}", f"echo {human} sock: pyloop >= 1.2x rloop msgs/s", "msgs_per_s",
               vs="rloop", factor=1.2),
        Target(f"echo_sock_{label}", f"echo {human} sock: pyloop total server CPU <= rloop's", "total_us",
               vs="rloop"))],
]
LOWER_IS_BETTER = {"user_us": True, "sys_us": True, "total_us": True, "msgs_per_s": False}


@dataclasses.dataclass
class Cell:
    runs: list[dict] = dataclasses.field(default_factory=list)  # one client answer per round
    error: str | None = None
    unsupported: str | None = None

    def values(self, metric: str) -> list[float]:
        return [r[metric] if metric in r else r["latency_us"][metric] for r in self.runs]

    def median(self, metric: str) -> float | None:
        """The figure the tables show: the median over rounds, except that user_us and sys_us split the
        median total_us by the user share pooled over rounds (netlib.split_total says why)."""
        if self.error or self.unsupported:
            return None
        if metric in ("user_us", "sys_us"):
            user, sys_ = netlib.split_total(netlib.median(self.values("total_us")),
                                            [r["server_cpu_s"]["user"] for r in self.runs],
                                            [r["server_cpu_s"]["sys"] for r in self.runs])
            return user if metric == "user_us" else sys_
        return netlib.median(self.values(metric))


def prerequisites() -> str | None:
    """Why the group cannot run here, or None."""
    if not sys.platform.startswith("linux"):
        return "needs Linux (epoll load generator, /proc/PID/stat)"
    try:
        netlib.build_tool("echo_client")
        netlib.build_tool("echo_server")
    except netlib.Unavailable as exc:
        return str(exc)
    return None


def run_group(args, loops: list[str], benches: list[Benchmark], versions: dict[str, str],
              missing: dict[str, str], env: dict[str, str]) -> int:
    rounds, warmup, duration = QUICK if args.quick else DEFAULTS
    rounds = args.net_rounds or rounds
    duration = args.duration or duration
    client = netlib.build_tool("echo_client")
    c_server = netlib.build_tool("echo_server")
    server_cpu, client_cpu = netlib.cpu_plan(args.pin)
    chosen = {b.name for b in benches}
    sizes = [s for s in SIZES if any(f"echo_{fl}_{s[0]}" in chosen for fl in FLAVOURS)]
    flavours = [fl for fl in FLAVOURS if any(f"echo_{fl}_{s[0]}" in chosen for s in SIZES)]
    placement = (f"server on CPU {server_cpu}, load generator on CPU {client_cpu}" if server_cpu is not None
                 else "not pinned")
    print(f"echo: {len(loops)} loops x {len(flavours)} flavours x {len(sizes)} sizes + {CEILING}, "
          f"{rounds} rounds, {warmup:g} s warm-up + {duration:g} s each, {CONNS} connections; {placement}",
          file=sys.stderr, flush=True)

    cells: dict[tuple[str, str], Cell] = {(b, name): Cell() for b in chosen for name in loops}
    ceiling: dict[str, Cell] = {label: Cell() for label, _, _ in sizes}
    started = time.monotonic()
    for rnd in range(rounds):
        servers: dict[tuple[str, str], netlib.Server] = {}
        try:
            for name in loops:
                for fl in flavours:
                    mine = [cells[(f"echo_{fl}_{s[0]}", name)] for s in sizes
                            if (f"echo_{fl}_{s[0]}", name) in cells]
                    if any(c.error or c.unsupported for c in mine):
                        continue  # failed or unsupported once: not worth another start
                    try:
                        server = servers[(name, fl)] = netlib.python_server("echo.py", name, fl, server_cpu,
                                                                            env).start()
                        prime(client, server, client_cpu)
                    except (netlib.Unsupported, netlib.ServerError) as exc:
                        for c in mine:
                            if isinstance(exc, netlib.Unsupported):
                                c.unsupported = str(exc)
                            else:
                                c.error = f"server did not start: {exc}"
            try:
                server = servers[(CEILING, "")] = netlib.Server([c_server, "--port", "0"], cpu=server_cpu).start()
                prime(client, server, client_cpu)
            except netlib.ServerError as exc:
                for c in ceiling.values():
                    c.error = f"server did not start: {exc}"

            k = rnd % len(loops)
            order = loops[k:] + loops[:k]
            for label, size, human in sizes:
                for fl in flavours:
                    bench = f"echo_{fl}_{label}"
                    if bench not in chosen:
                        continue
                    shown = [_measure(cells[(bench, name)], servers.get((name, fl)), name, client, size,
                                      warmup, duration, client_cpu) for name in order]
                    _progress(rnd, rounds, started, f"{fl} {label}", shown)
                shown = [_measure(ceiling[label], servers.get((CEILING, "")), CEILING, client, size,
                                  warmup, duration, client_cpu)]
                _progress(rnd, rounds, started, f"ceiling {label}", shown)
        finally:
            for server in servers.values():
                server.stop()

    settings = (f"{rounds} rounds, {warmup:g} s warm-up + {duration:g} s measured per server and size, "
                f"{CONNS} connections; {placement}{' (--quick)' if args.quick else ''}")
    return _report(args, loops, sizes, flavours, cells, ceiling, versions, missing, settings)


def _measure(cell: Cell, server, name: str, client: str, size: int, warmup: float, duration: float,
             client_cpu) -> str:
    if cell.unsupported:
        return f"{name} n/s"
    if cell.error or server is None:
        return f"{name} ERROR"
    try:
        cell.runs.append(run_client(client, server, size, warmup=warmup, duration=duration, cpu=client_cpu))
    except RuntimeError as exc:
        cell.error = str(exc)
        return f"{name} ERROR"
    r = cell.runs[-1]
    return f"{name} {r['msgs_per_s']:,.0f}/s {r['total_us']:.1f}us"


def _progress(rnd: int, rounds: int, started: float, what: str, shown: list[str]) -> None:
    print(f"[echo round {rnd + 1}/{rounds} {time.monotonic() - started:6.1f}s] {what:<14} " + "  ".join(shown),
          file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------- reporting

def _status_text(cell: Cell | None, missing_loop: str | None = None) -> str | None:
    if missing_loop:
        return "not installed"
    if cell is None:
        return "-"
    if cell.unsupported:
        return "not supported"
    if cell.error:
        return "error"
    return None


def _row(title: str, cell: Cell, ref: Cell | None) -> list[str]:
    bad = _status_text(cell)
    if bad:
        return [title, bad] + [""] * (len(HEAD) - 2)
    ratio = netlib.paired_ratio(cell.values("msgs_per_s"), ref.values("msgs_per_s")) if (
        ref is not None and ref is not cell and ref.runs and not ref.error) else None
    return [title, netlib.fmt_num(cell.median("msgs_per_s")),
            f"{ratio:.2f}x" if ratio else "-",
            netlib.fmt_num(cell.median("user_us")), netlib.fmt_num(cell.median("sys_us")),
            netlib.fmt_num(cell.median("total_us")), netlib.fmt_num(cell.median("per_wakeup")),
            netlib.fmt_num(cell.median("p50")),
            netlib.fmt_num(cell.median("p99")), f"{100 * cell.median('client_util'):.0f}%"]


HEAD = ["server", "msgs/s", f"vs {REFERENCE}", "user us/msg", "sys us/msg", "total us/msg", "msgs/wakeup",
        "p50 us", "p99 us", "client CPU"]


def _tables(loops, sizes, flavours, cells, ceiling) -> list[tuple[str, list[list[str]]]]:
    out = []
    for label, _, human in sizes:
        rows = []
        for fl in flavours:
            bench = f"echo_{fl}_{label}"
            if (bench, loops[0]) not in cells:  # not chosen with --bench
                continue
            ref = cells.get((bench, REFERENCE))
            for name in loops:
                rows.append(_row(f"{name} {fl}", cells[(bench, name)], ref))
        ref = cells.get((f"echo_protocol_{label}", REFERENCE))
        rows.append(_row(f"{CEILING} (ceiling)", ceiling[label], ref))
        out.append((f"{human} messages, {CONNS} connections", rows))
    return out


def evaluate(targets: list[Target], cells: dict) -> list[list[str]]:
    """[label, measured, status] for each target whose row was measured."""
    out = []
    subject = benchlib.SUBJECT
    for t in targets:
        mine = cells.get((t.bench, subject))
        if mine is None:
            continue
        unit = "msgs/s" if t.metric == "msgs_per_s" else "us/msg"
        bad = _status_text(mine)
        if bad:
            out.append([t.label, bad, "n/a" if bad == "not supported" else "error"])
            continue
        value = mine.median(t.metric)
        lower = LOWER_IS_BETTER[t.metric]
        if t.vs is None:
            met = value <= t.limit if lower else value >= t.limit
            out.append([t.label, f"{netlib.fmt_num(value)} {unit}", "met" if met else "MISSED"])
            continue
        other = cells.get((t.bench, t.vs))
        if other is None or _status_text(other):
            out.append([t.label, f"{netlib.fmt_num(value)} {unit}; {t.vs} not measured", "n/a"])
            continue
        if t.metric in ("user_us", "sys_us"):
            # One round's user/sys split is tick-sampled (netlib.split_total): compare the pooled figures
            # the tables show, not per-round ratios of samples that may be zero.
            theirs = other.median(t.metric)
            ratio = value / theirs if value is not None and theirs else None
        else:
            ratio = netlib.paired_ratio(mine.values(t.metric), other.values(t.metric))  # pyloop / other
        if ratio is None:
            out.append([t.label, f"{netlib.fmt_num(value)} {unit}; {t.vs} has no figure to compare with", "n/a"])
            continue
        met = ratio <= t.factor if lower else ratio >= t.factor
        out.append([t.label, f"{netlib.fmt_num(value)} vs {netlib.fmt_num(other.median(t.metric))} {unit} "
                             f"({ratio:.2f}x)", "met" if met else "MISSED"])
    return out


def plot(loops, sizes, flavours, cells, ceiling, path, title) -> str | None:
    """Three panels (msgs/s, total and user server CPU per message), the C server as the last column."""
    columns = loops + [CEILING]
    panels = []
    for metric, ylabel, lower in (("msgs_per_s", "msgs/s", False), ("total_us", "server CPU us/msg", True),
                                  ("user_us", "server user CPU us/msg", True)):
        groups = []
        for label, _, _ in sizes:
            for fl in flavours:
                bench = f"echo_{fl}_{label}"
                if (bench, loops[0]) not in cells:
                    continue
                per = {name: cells[(bench, name)] for name in loops}
                per[CEILING] = ceiling[label]
                values = {name: (c.median(metric), c.values(metric)) for name, c in per.items()
                          if c.runs and not (c.error or c.unsupported)}
                groups.append((f"{fl} {label}", values, _target_value(bench, metric, cells)))
        panels.append((ylabel, lower, groups))
    return netlib.plot_panels(panels, columns, path, title)


def _target_value(bench: str, metric: str, cells) -> float | None:
    """Where a target's line goes in the plot: its limit, or the factor times the other loop's median."""
    for t in TARGETS:
        if t.bench == bench and t.metric == metric:
            if t.vs is None:
                return t.limit
            other = cells.get((bench, t.vs))
            med = other.median(metric) if other else None
            return med * t.factor if med else None
    return None


def _report(args, loops, sizes, flavours, cells, ceiling, versions, missing, settings) -> int:
    info = report.system_info()
    tables = _tables(loops, sizes, flavours, cells, ceiling)
    with_ceiling = {**cells, **{(f"echo_protocol_{label}", CEILING): c for label, c in ceiling.items()}}
    targets = evaluate([t for t in TARGETS if t.bench in {b for b, _ in cells}], with_ceiling)

    print()
    print(f"Echo benchmark: {info['python']} on {info['cpu']}, {info['date']}; {settings}")
    for title, rows in tables:
        print(f"\n{title}")
        print(netlib.text_table(HEAD, rows))
    if targets:
        print()
        print(netlib.text_table(["target", "measured (median)", "status"], targets))
    print(NOTE)
    errors = [(b, n, c.error) for (b, n), c in cells.items() if c.error]
    errors += [(f"ceiling {label}", CEILING, c.error) for label, c in ceiling.items() if c.error]
    for b, n, e in errors:
        print(f"ERROR {b} on {n}: {e}")

    md = ["# pyloop echo benchmark", "",
          f"- Date: {info['date']}", f"- Python: {info['python']}", f"- CPU: {info['cpu']}",
          f"- OS: {info['os']}", f"- Load: 1-min load average {os.getloadavg()[0]:.2f} at the end",
          "- Loops: " + ", ".join(versions[name] for name in loops)
          + f", and {CEILING} (bench/loadgen/echo_server.c)",
          *[f"- Not measured: {name} ({why})" for name, why in missing.items()],
          f"- Settings: {settings}", ""]
    for title, rows in tables:
        md += [f"## {title}", "", *netlib.md_table(HEAD, rows), ""]
    if targets:
        md += ["## Targets (DESIGN.md)", "", *netlib.md_table(["target", "measured (median)", "status"],
                                                              targets), ""]
    md += [NOTE, "", "## Spread (min - max over rounds)", ""]
    spread_rows = []
    for label, _, human in sizes:
        for fl in flavours:
            for name in loops:
                c = cells.get((f"echo_{fl}_{label}", name))
                if c is not None and c.runs and not (c.error or c.unsupported):
                    spread_rows.append(_spread(f"{name} {fl} {label}", c))
        if ceiling[label].runs and not ceiling[label].error:
            spread_rows.append(_spread(f"{CEILING} {label}", ceiling[label]))
    md += netlib.md_table(["server", "msgs/s", "total us/msg", "user us/msg"], spread_rows)
    unsupported = sorted({c.unsupported for c in cells.values() if c.unsupported})
    if unsupported or errors:
        md += ["", "## Not supported and errors", ""]
        md += [f"- not supported: `{u}`" for u in unsupported]
        md += [f"- {b} on {n}: `{e}`" for b, n, e in errors]
    os.makedirs(args.out, exist_ok=True)
    md_path = os.path.join(args.out, "echo.md")
    with open(md_path, "w") as f:
        f.write("\n".join(md) + "\n")
    with open(os.path.join(args.out, "echo.json"), "w") as f:
        json.dump({"settings": settings, "info": info,
                   "cells": {f"{b} {n}": dataclasses.asdict(c) for (b, n), c in cells.items()},
                   "ceiling": {label: dataclasses.asdict(c) for label, c in ceiling.items()}}, f)
    print(f"\nwrote {md_path}")
    if not args.no_plot:
        png = os.path.join(args.out, "echo.png")
        why = plot(loops, sizes, flavours, cells, ceiling, png,
                   f"Echo, {CONNS} connections ({info['python']}, {info['date']})")
        print(f"skipped the plot: {why}" if why else f"wrote {png}")
    return 1 if errors else 0


def _spread(title: str, c: Cell) -> list[str]:
    rng = lambda m: f"{netlib.fmt_num(min(c.values(m)))} - {netlib.fmt_num(max(c.values(m)))}"  # noqa: E731
    return [title, rng("msgs_per_s"), rng("total_us"), rng("user_us")]


NOTE = (f"Medians over rounds.  msgs/s: messages echoed per second by the server ({CONNS} connections, one "
        "message in flight each).\n"
        f"'vs {REFERENCE}': this row's msgs/s over {REFERENCE}'s with the same flavour (the C row: over "
        f"{REFERENCE} protocol), median of per-round ratios.\n"
        "us/msg: server CPU per message from /proc/PID/stat over the measured interval; user and sys split "
        "the median total\nby the user share pooled over rounds (the kernel splits CPU time by sampling at "
        "each timer tick: short runs are coarse).\n"
        "msgs/wakeup: messages per time the server's main thread slept in its poller (voluntary context "
        "switches): the more\nmessages one wake-up handles, the less each costs, so a busier machine makes "
        "every loop look cheaper.\n"
        "client CPU: the load generator's CPU use; near 100% means the client, not the server, set the pace.")
