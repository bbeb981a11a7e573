"""TLS benchmark group: TLS echo (1 KiB and 64 KiB messages) and HTTPS, on each loop's TLS layer.

* **TLS echo**: servers/tls.py ``echo`` -- ``loop.create_server(..., ssl=ctx)`` with the echo protocol of the
  echo group -- driven by loadgen/tls_echo_client.c, the TLS twin of the echo group's C client (same
  closed loop: 10 connections, one message in flight each; same JSON answer; the server's CPU from
  /proc/PID/stat over exactly the measured interval).  The client is C and OpenSSL, so it is the same
  for every loop and cheap enough that the server, not the client, sets the pace.  Every message is
  decrypted by the server's TLS layer, handed to ``data_received``, and encrypted again by ``write``.
* **HTTPS**: servers/tls.py ``https`` -- the httptools server of the http group over TLS -- under
  ``wrk -t2 -c50`` against ``https://``; wrk's own OpenSSL does the client side.

Both use a throw-away self-signed certificate made with the openssl command for the run (in
bench/results/tls/, which git ignores); OpenSSL's defaults pick TLS 1.3 with AES-GCM for every loop.
Rounds are interleaved as in the echo group: each round starts one echo server per loop, primes it with
one short connection, then measures each size on every loop back to back in an order rotated each round;
then each loop's HTTPS server in turn.  Tables show medians over rounds and ratios are medians of
per-round ratios: on a busy machine only ratios within one run mean anything.  rloop has no TLS
(``ssl=`` raises NotImplementedError): it is reported as not supported.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time

try:
    from . import benchlib, echo, http_bench, netlib, report
except ImportError:
    import benchlib
    import echo
    import http_bench
    import netlib
    import report

Benchmark = benchlib.Benchmark

SIZES = (("1k", 1024, "1 KiB"), ("64k", 65536, "64 KiB"))
CONNS = echo.CONNS
REFERENCE = "uvloop"
HTTPS = "tls_https"
CLIENT = "tls_echo_client"
# (rounds, warm-up s, measured s) for the echo rows -- default, --quick; HTTPS: wrk's warm-up and
# measured seconds (whole seconds).
DEFAULTS = (3, 0.3, 1.0)
QUICK = (1, 0.1, 0.3)
HTTPS_TIMES = ((1, 2), (1, 1))


def _bench(label: str, size: int, human: str) -> Benchmark:
    return Benchmark(f"tls_echo_{label}", echo.run_client, size,
                     f"TLS echo of {human} messages, {CONNS} connections, one message in flight each; "
                     f"asyncio.Protocol via loop.create_server(ssl=)", unit="msgs/s", lower_is_better=False)


BENCHMARKS = [_bench(label, size, human) for label, size, human in SIZES] + [
    Benchmark(HTTPS, None, 0, f"GET / -> 200 over TLS, keep-alive, httptools server; wrk -t{http_bench.THREADS} "
                              f"-c{http_bench.CONNECTIONS} https://", unit="req/s", lower_is_better=False)]

Target = echo.Target
TARGETS = [
    Target("tls_echo_1k", "TLS echo 1 KiB: pyloop >= 1.3x uvloop msgs/s", "msgs_per_s", vs=REFERENCE, factor=1.3),
    Target("tls_echo_1k", "TLS echo 1 KiB: pyloop server CPU/msg <= uvloop's", "total_us", vs=REFERENCE),
    Target("tls_echo_64k", "TLS echo 64 KiB: pyloop >= 1.3x uvloop msgs/s", "msgs_per_s", vs=REFERENCE,
           factor=1.3),
    Target("tls_echo_64k", "TLS echo 64 KiB: pyloop server CPU/msg <= uvloop's", "total_us", vs=REFERENCE),
    Target(HTTPS, "HTTPS: pyloop >= 1.3x uvloop req/s", "msgs_per_s", vs=REFERENCE, factor=1.3),
    Target(HTTPS, "HTTPS: pyloop server CPU/req <= uvloop's", "total_us", vs=REFERENCE),
]


# ------------------------------------------------------------------------------------------- set-up

def build_client() -> str:
    """bench/loadgen/tls_echo_client.c compiled against OpenSSL."""
    return netlib.build_tool(CLIENT, libs=("ssl", "crypto"), needs="OpenSSL headers: libssl-dev")


def make_certificate() -> tuple[str, str]:
    """A self-signed certificate for localhost/127.0.0.1, made once per run: (cert, key)."""
    directory = os.path.join(netlib.HERE, "results", "tls")
    os.makedirs(directory, exist_ok=True)
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    openssl = shutil.which("openssl")
    if openssl is None:
        raise netlib.Unavailable("the openssl command is not installed (it makes the test certificate)")
    # ECDSA P-256: a handshake costs the server a fraction of an RSA one, so the connections wrk
    # opens at the start of each run weigh little in its count.
    proc = subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                           "-nodes", "-days", "2",
                           "-subj", "/CN=localhost", "-keyout", key, "-out", cert,
                           "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                          capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise netlib.Unavailable(f"openssl req failed: {proc.stderr.strip()[-300:]}")
    return cert, key


def prerequisites() -> str | None:
    """Why the group cannot run here, or None."""
    if not sys.platform.startswith("linux"):
        return "needs Linux (epoll load generator, /proc/PID/stat)"
    try:
        build_client()
    except netlib.Unavailable as exc:
        return str(exc)
    if shutil.which("openssl") is None:
        return "the openssl command is not installed (it makes the test certificate)"
    return None


def tls_server(loop: str, flavour: str, cpu, env: dict) -> netlib.Server:
    return netlib.Server([sys.executable, os.path.join(netlib.SERVERS, "tls.py"), "--loop", loop,
                          "--flavour", flavour, "--host", "127.0.0.1", "--port", "0"], cpu=cpu, env=env)


def run_wrk_https(server: netlib.Server, duration: int, cpu) -> dict:
    """One wrk run against https://127.0.0.1:port/ (http_bench's), in the echo rows' terms: requests
    are the messages, and wrk's CPU is not measured."""
    out = http_bench.run_wrk(shutil.which("wrk"), server, duration, cpu, scheme="https")
    out["msgs_per_s"] = out["req_per_s"]
    out["client_util"] = float("nan")
    return out


# ------------------------------------------------------------------------------------------ measuring

def run_group(args, loops: list[str], benches: list[Benchmark], versions: dict[str, str],
              missing: dict[str, str], env: dict[str, str]) -> int:
    rounds, warmup, duration = QUICK if args.quick else DEFAULTS
    rounds = args.net_rounds or rounds
    duration = args.duration or duration
    wrk_warmup, wrk_duration = HTTPS_TIMES[1 if args.quick else 0]
    if args.duration:
        wrk_duration = max(1, round(args.duration))
    client = build_client()
    cert, key = make_certificate()
    env = dict(env, PYLOOP_BENCH_TLS_CERT=cert, PYLOOP_BENCH_TLS_KEY=key)
    server_cpu, client_cpu = netlib.cpu_plan(args.pin)
    chosen = {b.name for b in benches}
    sizes = [s for s in SIZES if f"tls_echo_{s[0]}" in chosen]
    https = HTTPS in chosen and shutil.which("wrk") is not None
    if HTTPS in chosen and not https:
        print("tls: HTTPS skipped (wrk is not installed)", file=sys.stderr)
    print(f"tls: {len(loops)} loops x {len(sizes)} echo sizes{' + HTTPS' if https else ''}, {rounds} rounds, "
          f"echo {warmup:g} s warm-up + {duration:g} s, wrk {wrk_warmup} + {wrk_duration} s",
          file=sys.stderr, flush=True)

    cells = {(b, name): echo.Cell() for b in chosen for name in loops}
    started = time.monotonic()
    for rnd in range(rounds):
        k = rnd % len(loops)
        order = loops[k:] + loops[:k]
        servers: dict[str, netlib.Server] = {}
        try:
            for name in loops if sizes else []:
                mine = [cells[(f"tls_echo_{s[0]}", name)] for s in sizes]
                if any(c.error or c.unsupported for c in mine):
                    continue
                try:
                    servers[name] = tls_server(name, "echo", server_cpu, env).start()
                    echo.prime(client, servers[name], client_cpu)
                except (netlib.Unsupported, netlib.ServerError) as exc:
                    for c in mine:
                        if isinstance(exc, netlib.Unsupported):
                            c.unsupported = str(exc) or f"{name} has no TLS"
                        else:
                            c.error = f"server did not start: {exc}"
            for label, size, human in sizes:
                bench = f"tls_echo_{label}"
                shown = [echo._measure(cells[(bench, name)], servers.get(name), name, client, size, warmup,
                                       duration, client_cpu) for name in order]
                _progress(rnd, rounds, started, f"echo {label}", shown)
        finally:
            for server in servers.values():
                server.stop()
        if https:
            shown = [_measure_https(cells[(HTTPS, name)], name, wrk_warmup, wrk_duration, server_cpu,
                                    client_cpu, env) for name in order]
            _progress(rnd, rounds, started, "https", shown)

    settings = (f"{rounds} rounds; echo: {warmup:g} s warm-up + {duration:g} s measured per loop and size, "
                f"{CONNS} connections; HTTPS: wrk -t{http_bench.THREADS} -c{http_bench.CONNECTIONS}, "
                f"{wrk_warmup} s warm-up + {wrk_duration} s{' (--quick)' if args.quick else ''}")
    return _report(args, loops, sizes, https, cells, versions, missing, settings)


def _measure_https(cell: echo.Cell, name: str, warm: int, duration: int, server_cpu, client_cpu,
                   env) -> str:
    if cell.unsupported:
        return f"{name} n/s"
    if cell.error:
        return f"{name} ERROR"
    try:
        with tls_server(name, "https", server_cpu, env) as server:
            run_wrk_https(server, warm, client_cpu)
            cell.runs.append(run_wrk_https(server, duration, client_cpu))
    except netlib.Unsupported as exc:
        cell.unsupported = str(exc) or f"{name} has no TLS"
        return f"{name} n/s"
    except (netlib.ServerError, RuntimeError) as exc:
        cell.error = str(exc)
        return f"{name} ERROR"
    r = cell.runs[-1]
    return f"{name} {r['req_per_s']:,.0f}/s {r['total_us']:.1f}us"


def _progress(rnd: int, rounds: int, started: float, what: str, shown: list[str]) -> None:
    print(f"[tls round {rnd + 1}/{rounds} {time.monotonic() - started:6.1f}s] {what:<9} " + "  ".join(shown),
          file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------ reporting

HEAD = ["loop", "msgs/s", f"vs {REFERENCE}", "user us/msg", "sys us/msg", "total us/msg", f"CPU vs {REFERENCE}",
        "p50 us", "p99 us", "client CPU"]


def _row(name: str, cell: echo.Cell, ref: echo.Cell | None) -> list[str]:
    bad = echo._status_text(cell)
    if bad:
        return [name, bad] + [""] * (len(HEAD) - 2)
    usable = ref is not None and ref is not cell and ref.runs and not (ref.error or ref.unsupported)
    speed = netlib.paired_ratio(cell.values("msgs_per_s"), ref.values("msgs_per_s")) if usable else None
    cpu = netlib.paired_ratio(cell.values("total_us"), ref.values("total_us")) if usable else None
    util = cell.median("client_util")
    return [name, netlib.fmt_num(cell.median("msgs_per_s")), f"{speed:.2f}x" if speed else "-",
            netlib.fmt_num(cell.median("user_us")), netlib.fmt_num(cell.median("sys_us")),
            netlib.fmt_num(cell.median("total_us")), f"{cpu:.2f}x" if cpu else "-",
            netlib.fmt_num(cell.median("p50")), netlib.fmt_num(cell.median("p99")),
            "-" if util is None or util != util else f"{100 * util:.0f}%"]  # NaN: wrk's CPU is not measured


def _tables(loops, sizes, https, cells) -> list[tuple[str, list[list[str]]]]:
    out = []
    benches = [(f"tls_echo_{label}", f"TLS echo, {human} messages, {CONNS} connections")
               for label, _, human in sizes]
    if https:
        benches.append((HTTPS, f"HTTPS, wrk -t{http_bench.THREADS} -c{http_bench.CONNECTIONS} (msgs = requests)"))
    for bench, title in benches:
        ref = cells.get((bench, REFERENCE))
        out.append((title, [_row(name, cells[(bench, name)], ref) for name in loops]))
    return out


NOTE = (f"Medians over rounds.  'vs {REFERENCE}': this row's msgs/s (or req/s) over {REFERENCE}'s, median of "
        f"per-round ratios; 'CPU vs {REFERENCE}': the same for\nserver CPU per message (below 1 is less CPU).  "
        "us/msg: server CPU per message (per request for HTTPS) from /proc/PID/stat over the\nmeasured "
        "interval, user and sys splitting the median total by the pooled user share.  client CPU: the echo "
        "client's CPU use\n(near 100% means the client set the pace).  On a machine shared with other work only "
        "the ratios within one run compare.")


def _report(args, loops, sizes, https, cells, versions, missing, settings) -> int:
    info = report.system_info()
    tables = _tables(loops, sizes, https, cells)
    targets = echo.evaluate([t for t in TARGETS if (t.bench, loops[0]) in cells], cells)
    tls_info = next((r.get("tls") for c in cells.values() for r in c.runs if r.get("tls")), None)

    print()
    print(f"TLS benchmark: {info['python']} on {info['cpu']}, {info['date']}; {settings}")
    for title, rows in tables:
        print(f"\n{title}")
        print(netlib.text_table(HEAD, rows))
    if targets:
        print()
        print(netlib.text_table(["target", "measured (median)", "status"], targets))
    print(NOTE)
    errors = [(b, n, c.error) for (b, n), c in cells.items() if c.error]
    for b, n, e in errors:
        print(f"ERROR {b} on {n}: {e}")

    md = ["# pyloop TLS benchmark", "",
          f"- Date: {info['date']}", f"- Python: {info['python']}", f"- CPU: {info['cpu']}",
          f"- OS: {info['os']}", f"- Load: 1-min load average {os.getloadavg()[0]:.2f} at the end",
          "- Loops: " + ", ".join(versions[name] for name in loops),
          *[f"- Not measured: {name} ({why})" for name, why in missing.items()],
          f"- TLS: {tls_info or 'n/a'} (OpenSSL's defaults, the same for every loop)",
          f"- Settings: {settings}", ""]
    for title, rows in tables:
        md += [f"## {title}", "", *netlib.md_table(HEAD, rows), ""]
    if targets:
        md += ["## Targets", "", *netlib.md_table(["target", "measured (median)", "status"], targets), ""]
    md += [NOTE, ""]
    unsupported = sorted({c.unsupported for c in cells.values() if c.unsupported})
    if unsupported or errors:
        md += ["## Not supported and errors", ""]
        md += [f"- not supported: `{u}`" for u in unsupported]
        md += [f"- {b} on {n}: `{e}`" for b, n, e in errors]
    os.makedirs(args.out, exist_ok=True)
    md_path = os.path.join(args.out, "tls.md")
    with open(md_path, "w") as f:
        f.write("\n".join(md) + "\n")
    with open(os.path.join(args.out, "tls.json"), "w") as f:
        json.dump({"settings": settings, "info": info,
                   "cells": {f"{b} {n}": dataclasses.asdict(c) for (b, n), c in cells.items()}}, f)
    print(f"\nwrote {md_path}")
    if not args.no_plot:
        png = os.path.join(args.out, "tls.png")
        why = _plot(loops, tables, cells, png, f"TLS ({info['python']}, {info['date']})")
        print(f"skipped the plot: {why}" if why else f"wrote {png}")
    return 1 if errors else 0


def _plot(loops, tables, cells, path, title) -> str | None:
    """Two panels (msgs/s and server CPU per message), one group of bars per row; the dashed line is
    the target (1.3x uvloop's msgs/s; uvloop's CPU per message)."""
    benches = [b.name for b in BENCHMARKS if (b.name, loops[0]) in cells]
    panels = []
    for metric, ylabel, lower, factor in (("msgs_per_s", "msgs/s (HTTPS: req/s)", False, 1.3),
                                          ("total_us", "server CPU us/msg", True, 1.0)):
        groups = []
        for bench in benches:
            values = {name: cells[(bench, name)].values(metric) for name in loops
                      if cells[(bench, name)].runs and not (cells[(bench, name)].error
                                                            or cells[(bench, name)].unsupported)}
            ref = cells.get((bench, REFERENCE))
            med = ref.median(metric) if ref is not None and ref.runs else None
            groups.append((bench, values, med * factor if med else None))
        panels.append((ylabel, lower, groups))
    return netlib.plot_panels(panels, loops, path, title)
