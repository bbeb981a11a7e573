"""Multi-core serving: the httptools HTTP server of servers/http.py under ``pyloop.serve`` at 1 and 2 workers.

    python bench/serve_bench.py [--workers 1,2] [--rounds 3] [--duration 2] [--connections 50] [--loop pyloop]

For each worker count, each round: start ``python bench/serve_bench.py --serve --workers N`` (the same
``HttpProtocol`` the http group measures, served by ``pyloop.serve.serve_protocol``), read the port from the
``serving on ...`` line, warm up with one second of wrk, then run ``wrk -t2 -c<connections> -d<duration>
--latency``.  Reported per worker count: the median requests/s over rounds, the ratio to 1 worker, and the
server's CPU per request (parent and every worker, from /proc/PID/stat).  Rounds rotate the order of the
worker counts.  The server is stopped with SIGTERM and must exit 0 (a graceful stop after wrk has closed its
connections).

What to expect: more workers help only when there are idle cores for them *and* for wrk.  On a machine with
two cores, wrk's two threads and two workers compete for the same two cores, so the ratio there says more
about the scheduler than about the server; on a machine with spare cores, 2 workers should approach twice the
requests/s of 1.  Say how loaded the machine was when quoting numbers.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
if ROOT not in sys.path:
    sys.path.insert(1, ROOT)

import http_bench  # noqa: E402  (bench/http_bench.py: wrk output parsing)
import netlib  # noqa: E402

READY = re.compile(r'serving on \S+:(\d+) with \d+ workers? \(.*; pids ([\d, ]+)\)')
THREADS = 2
WARMUP_S = 1


# ---- server side -------------------------------------------------------------------------------

def _http_protocol():
    """servers/http.py's HttpProtocol, loaded under another name: a module named http would hide the
    standard library's http package."""
    spec = importlib.util.spec_from_file_location('_bench_http_server', os.path.join(HERE, 'servers', 'http.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.HttpProtocol


def run_server(workers: int, loop: str) -> int:
    import asyncio

    from pyloop.serve import serve_protocol

    factories = {'pyloop': None, 'asyncio': asyncio.new_event_loop}
    if loop == 'uvloop':
        import uvloop
        factories['uvloop'] = uvloop.new_event_loop
    return serve_protocol(_http_protocol(), '127.0.0.1', 0, workers=workers, grace=5.0,
                          loop_factory=factories[loop])


# ---- runner side -------------------------------------------------------------------------------

class ServeProcess:
    """``serve_bench.py --serve`` in a subprocess; stderr goes to a file, where the ready line is read."""

    def __init__(self, workers: int, loop: str) -> None:
        self.err = tempfile.TemporaryFile(mode='w+')
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get('PYTHONPATH', '')]))
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), '--serve', '--workers',
                                     str(workers), '--loop', loop], stdout=subprocess.DEVNULL,
                                    stderr=self.err, stdin=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 60
        while True:
            self.err.seek(0)
            m = READY.search(self.err.read())
            if m:
                self.port = int(m.group(1))
                self.pids = [self.proc.pid] + [int(p) for p in m.group(2).split(', ')]
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f'the server did not start: {self.log()[-500:]}')
            time.sleep(0.05)     # polling a file for the ready line; not a synchronisation point

    def log(self) -> str:
        self.err.seek(0)
        return self.err.read()

    def cpu(self) -> float:
        return sum(sum(netlib.proc_cpu(pid)) for pid in self.pids)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return -9


def wrk_run(wrk: str, port: int, duration: int, connections: int) -> dict:
    argv = [wrk, f'-t{THREADS}', f'-c{connections}', f'-d{duration}s', '--latency', '--timeout', '5s',
            f'http://127.0.0.1:{port}/']
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip()[-300:] or f'wrk exit status {proc.returncode}')
    out = http_bench.parse_wrk(proc.stdout)
    if out['errors'] + out['non_2xx'] > 0.001 * max(out['requests'], 1):
        raise RuntimeError(f"{out['errors'] + out['non_2xx']} of {out['requests']} requests failed")
    return out


def measure(wrk: str, workers: int, loop: str, duration: int, connections: int) -> dict:
    server = ServeProcess(workers, loop)
    try:
        wrk_run(wrk, server.port, WARMUP_S, connections)
        cpu0 = server.cpu()
        out = wrk_run(wrk, server.port, duration, connections)
        out['cpu_us'] = (server.cpu() - cpu0) * 1e6 / max(out['requests'], 1)
    finally:
        status = server.stop()
    if status != 0:
        raise RuntimeError(f'the server exited with status {status}: {server.log()[-500:]}')
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--workers', default='1,2', help='worker counts to compare (default 1,2)')
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--duration', type=int, default=2, help='seconds of each measured wrk run')
    p.add_argument('--connections', type=int, default=50)
    p.add_argument('--loop', default='pyloop', choices=['pyloop', 'asyncio', 'uvloop'],
                   help="the workers' event loop")
    p.add_argument('--serve', action='store_true', help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        return run_server(int(args.workers), args.loop)

    why = http_bench.prerequisites()
    if why:
        print(f'serve_bench: skipped: {why}', file=sys.stderr)
        return 0
    wrk = shutil.which('wrk')
    counts = [int(n) for n in args.workers.split(',')]
    ncpu = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
    print(f'serve_bench: {args.loop} workers {counts}, {args.rounds} rounds, {WARMUP_S} s warm-up + '
          f'{args.duration} s, wrk -t{THREADS} -c{args.connections}; {ncpu} CPUs, load average '
          f'{os.getloadavg()[0]:.2f}', file=sys.stderr, flush=True)
    runs: dict[int, list[dict]] = {n: [] for n in counts}
    for rnd in range(args.rounds):
        k = rnd % len(counts)
        shown = []
        for n in counts[k:] + counts[:k]:
            r = measure(wrk, n, args.loop, args.duration, args.connections)
            runs[n].append(r)
            shown.append(f"{n}w {r['req_per_s']:,.0f}/s {r['cpu_us']:.1f}us")
        print(f'[round {rnd + 1}/{args.rounds}] ' + '  '.join(shown), file=sys.stderr, flush=True)

    base = netlib.median([r['req_per_s'] for r in runs[counts[0]]])
    rows = []
    for n in counts:
        rps = netlib.median([r['req_per_s'] for r in runs[n]])
        rows.append([str(n), netlib.fmt_num(rps), f'{rps / base:.2f}x' if base else '-',
                     f"{netlib.median([r['cpu_us'] for r in runs[n]]):.1f}",
                     f"{netlib.median([r['p50'] for r in runs[n]]):,.0f}",
                     f"{netlib.median([r['p99'] for r in runs[n]]):,.0f}"])
    print(netlib.text_table(['workers', 'req/s', f'vs {counts[0]} worker', 'server CPU us/req', 'p50 us',
                             'p99 us'], rows))
    return 0


if __name__ == '__main__':
    sys.exit(main())
