"""Instruction counts (callgrind Ir) per operation of two hot paths, for before/after comparisons.

    PYTHONPATH=. python bench/callgrind.py                       # pyloop: call_soon_chain and echo_protocol_1k
    PYTHONPATH=. python bench/callgrind.py --loops pyloop,asyncio,uvloop --repeat 2 --json out.json
    PYTHONPATH=. python bench/callgrind.py --loops pyloop,rloop,uvloop --bench echo_sock_1k,echo_sock_100k

One operation is, on the loop under test:

* ``call_soon_chain``: one run of a callback that re-schedules itself with ``loop.call_soon`` (micro.py's
  ``call_soon_chain``), i.e. one loop iteration running one handle;
* ``echo_protocol_1k``: one 1 KiB round trip over TCP on 127.0.0.1, both ends in this process: a client
  ``asyncio.Protocol`` writes 1 KiB and writes the next once it is all back; the server is
  ``loop.create_server(sock=...)`` with a Protocol whose ``data_received`` writes the data back (echo.py's
  "protocol" flavour).  Two loop iterations per round trip; kernel time is not counted.
* ``echo_sock_1k``, ``echo_sock_10k``, ``echo_sock_100k``: one round trip of that size over TCP on 127.0.0.1,
  both ends in this process and both written with the ``sock_*`` coroutines (echo.py's "sock" flavour): a
  server task loops ``sock_recv(conn, 256 KiB)`` / ``sock_sendall``, a client task ``sock_sendall``s the
  message and ``sock_recv``s until all of it is back.  Each end waits on its fd once per round trip.
* ``echo_protocol_10k``, ``echo_protocol_100k``: the same with 10 KiB and 100 KiB messages (``--bench``
  names them; not run by default).  A large message may arrive in several reads and leave in several
  sends, so these count the read sizing, the write queue and the copies a large message costs.
* ``echo_streams_1k``, ``echo_streams_10k``: the same round trip with asyncio's streams at both ends (echo.py's
  "streams" flavour): ``asyncio.start_server`` whose handler loops ``read(256 KiB)`` / ``write`` /
  ``drain``, a client from ``asyncio.open_connection`` that writes, drains and ``readexactly``s the message.
  Most of it is asyncio's own Python (StreamReader, StreamWriter, tasks), the same on every loop.

Method: each (loop, benchmark) runs in two fresh interpreters under ``valgrind --tool=callgrind``, both doing
the same set-up and warm-up (WARMUP operations), then N operations: ``--n-small`` in one, ``--n-large`` in the
other.  Ir/op = (Ir(large) - Ir(small)) / (n_large - n_small): start-up, imports, loop creation, warm-up and
exit cancel out, with no instrumentation toggling.  The child reaches a loop only through its public factory
(``pyloop.new_event_loop()``), so the script keeps working across internal moves of the package.

Determinism: the children get PYTHONHASHSEED=0 and no other PYTHON* variable but PYTHONPATH (made absolute),
no VALGRIND_OPTS, ``setarch -R`` (no ASLR), N as a fixed-width argument and ``os._exit`` (no teardown); a plain
run first writes the .pyc files.  The monotonic clock is virtual: an LD_PRELOAD library (built with ``cc``)
makes each CLOCK_MONOTONIC read return the last value plus ``--clock-step-ns`` (250).  With the real clock,
pyloop's busy-poll throttle (poll only when 50 us passed since the last poll) polls every ~2.6 iterations
under callgrind's slow-down instead of every ~200 as natively, so call_soon_chain moved with the machine's
load (0.4 % between runs); with the virtual clock it polls every 200 iterations on every run.  ``sys/op``:
system calls per operation (valgrind's sysCount).  ``--repeat R`` (default 2) measures each pair R times;
``spread`` is (max - min) / median of the R values of Ir/op.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

LOOPS = {"pyloop": "pyloop", "asyncio": "asyncio", "uvloop": "uvloop", "rloop": "rloop"}  # name -> module
# name -> (n_small, n_large) defaults; chosen so one callgrind run takes a few seconds here.
BENCHES = {"call_soon_chain": (2_000, 22_000), "echo_protocol_1k": (500, 5_500),
           "echo_protocol_10k": (300, 2_300), "echo_protocol_100k": (100, 600),
           "echo_sock_1k": (500, 5_500), "echo_sock_10k": (300, 3_300), "echo_sock_100k": (100, 1_100),
           "echo_streams_1k": (500, 5_500), "echo_streams_10k": (300, 3_300)}
DEFAULT_BENCHES = "call_soon_chain,echo_protocol_1k"    # the others on request (--bench)
WARMUP = 1_000          # operations before the N measured ones, in both runs
ECHO_SIZES = {"echo_protocol_1k": 1024, "echo_protocol_10k": 10 * 1024, "echo_protocol_100k": 100 * 1024}
N_WIDTH = 10            # N is passed zero-padded to this many digits

# LD_PRELOADed into the children: CLOCK_MONOTONIC* read as a virtual clock that advances a fixed step per read.
FAKE_CLOCK_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <time.h>
static long long now_ns = 1000000000LL;
int clock_gettime(clockid_t clk, struct timespec *ts) {
    if (clk == CLOCK_MONOTONIC || clk == CLOCK_MONOTONIC_RAW || clk == CLOCK_MONOTONIC_COARSE
            || clk == CLOCK_BOOTTIME) {
        long long t = __atomic_add_fetch(&now_ns, STEP_NS, __ATOMIC_RELAXED);
        ts->tv_sec = t / 1000000000LL, ts->tv_nsec = t % 1000000000LL;
        return 0;
    }
    return ((int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime"))(clk, ts);
}
"""


# ---------------------------------------------------------------- the child (one workload, then os._exit)

def _call_soon_chain(loop, n):
    async def driver(count):
        call_soon = loop.call_soon
        done = loop.create_future()

        def step(i):
            if i:
                call_soon(step, i - 1)
            else:
                done.set_result(None)

        call_soon(step, count - 1)
        await done

    loop.run_until_complete(driver(WARMUP))
    loop.run_until_complete(driver(n))


def _echo_protocol(loop, n, size):
    import asyncio
    import socket

    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            self.transport.write(data)

    class Client(Echo):
        payload = b"x" * size

        def start(self, count):
            self.left, self.got, self.done = count, 0, loop.create_future()
            self.transport.write(self.payload)
            return self.done

        def data_received(self, data):
            self.got += len(data)
            if self.got < size:         # a large message may come in pieces
                return
            self.got -= size
            self.left -= 1
            if self.left:
                self.transport.write(self.payload)
            else:
                self.done.set_result(None)

    async def main():
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(8)
        address = lsock.getsockname()     # before: rloop's create_server takes the socket's fd over
        server = await loop.create_server(Echo, sock=lsock)
        csock = socket.create_connection(address)   # completes through the backlog
        csock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _, client = await loop.create_connection(Client, sock=csock)
        await client.start(WARMUP)
        await client.start(n)
        return server

    loop.run_until_complete(main())


def _echo_sock(loop, n, size):
    import asyncio
    import socket

    async def server(conn):
        while True:
            data = await loop.sock_recv(conn, 256 * 1024)
            if not data:
                return
            await loop.sock_sendall(conn, data)

    async def client(sock, count):
        payload = b"x" * size
        for _ in range(count):
            await loop.sock_sendall(sock, payload)
            got = 0
            while got < size:
                got += len(await loop.sock_recv(sock, 256 * 1024))

    async def main():
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(8)
        lsock.setblocking(False)
        csock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        csock.setblocking(False)
        # ensure_future: rloop's sock_accept returns a future, not a coroutine.
        accept = asyncio.ensure_future(loop.sock_accept(lsock), loop=loop)
        await loop.sock_connect(csock, lsock.getsockname())
        conn, _ = await accept
        for s in (conn, csock):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        task = loop.create_task(server(conn))
        await client(csock, WARMUP)
        await client(csock, n)
        return task, conn, csock, lsock

    loop.run_until_complete(main())


def _echo_streams(loop, n, size):
    import asyncio

    async def server(reader, writer):
        while True:
            data = await reader.read(256 * 1024)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        writer.close()

    async def client(reader, writer, count):
        payload = b"x" * size
        for _ in range(count):
            writer.write(payload)
            await writer.drain()
            await reader.readexactly(size)

    async def main():
        srv = await asyncio.start_server(server, "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection(*srv.sockets[0].getsockname()[:2])
        await client(reader, writer, WARMUP)
        await client(reader, writer, n)
        return srv, writer

    loop.run_until_complete(main())


WORKLOADS = {"call_soon_chain": _call_soon_chain,
             **{name: (lambda loop, n, size=size: _echo_protocol(loop, n, size)) for name, size in ECHO_SIZES.items()},
             "echo_sock_1k": lambda loop, n: _echo_sock(loop, n, 1024),
             "echo_sock_10k": lambda loop, n: _echo_sock(loop, n, 10 * 1024),
             "echo_sock_100k": lambda loop, n: _echo_sock(loop, n, 100 * 1024),
             "echo_streams_1k": lambda loop, n: _echo_streams(loop, n, 1024),
             "echo_streams_10k": lambda loop, n: _echo_streams(loop, n, 10 * 1024)}


def child(loop_name, bench, n):
    import importlib
    mod = importlib.import_module(LOOPS[loop_name])      # the public factory only
    WORKLOADS[bench](mod.new_event_loop(), n)
    print(json.dumps({"file": mod.__file__, "version": getattr(mod, "__version__", sys.version.split()[0])}),
          flush=True)
    os._exit(0)


# ---------------------------------------------------------------- the parent

def child_env(preload=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VALGRIND", "LD_PRELOAD"))}
    if "PYTHONPATH" in os.environ:   # absolute, so the children find the same tree from any cwd
        env["PYTHONPATH"] = os.pathsep.join(map(os.path.abspath, os.environ["PYTHONPATH"].split(os.pathsep)))
    env["PYTHONHASHSEED"] = "0"
    if preload:
        env["LD_PRELOAD"] = preload
    return env


def child_cmd(python, loop_name, bench, n):
    return [python, os.path.abspath(__file__), "--child", loop_name, bench, str(n).zfill(N_WIDTH)]


def plain_run(args, loop_name, bench):
    """Run the child once without valgrind: writes .pyc files, checks it works, says which module ran."""
    p = subprocess.run(child_cmd(args.python, loop_name, bench, 100), env=child_env(),
                       capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise RuntimeError((p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1])
    return json.loads(p.stdout.strip().splitlines()[-1])


def callgrind_counts(args, job, tmp, preload):
    """(Ir, system calls) of one child run under callgrind."""
    out = os.path.join(tmp, "cg.%s.%s.%d.%d" % job)
    cmd = [args.valgrind, "--tool=callgrind", f"--callgrind-out-file={out}", "--dump-line=no",
           "--collect-systime=yes"] + child_cmd(args.python, *job[:3])
    if shutil.which("setarch"):
        cmd = ["setarch", os.uname().machine, "-R"] + cmd
    p = subprocess.run(cmd, env=child_env(preload), capture_output=True, text=True, timeout=args.timeout)
    if p.returncode != 0:
        raise RuntimeError(f"{job[0]} {job[1]} n={job[2]}: exit {p.returncode}: {p.stderr.strip()[-2000:]}")
    with open(out) as f:
        text = f.read()
    events, total = re.search(r"^events:(.*)$", text, re.M), re.search(r"^(?:summary|totals):(.*)$", text, re.M)
    counts = dict(zip(events.group(1).split(), map(int, total.group(1).split())))
    return counts["Ir"], counts.get("sysCount", 0)


def median(xs):
    xs = sorted(xs)
    return (xs[(len(xs) - 1) // 2] + xs[len(xs) // 2]) / 2


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--loops", default="pyloop", help="comma-separated, of: " + ",".join(LOOPS))
    ap.add_argument("--bench", default=DEFAULT_BENCHES, help="comma-separated, of: " + ",".join(BENCHES))
    ap.add_argument("--n-small", type=int, help="operations in the small run (default per benchmark)")
    ap.add_argument("--n-large", type=int, help="operations in the large run (default per benchmark)")
    ap.add_argument("--repeat", type=int, default=2, help="measure every pair this many times (default 2)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="callgrind runs in parallel")
    ap.add_argument("--clock-step-ns", type=int, default=250, help="virtual clock step per read (0: real clock)")
    ap.add_argument("--python", default=sys.executable, help="interpreter for the children")
    ap.add_argument("--valgrind", default="valgrind")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per callgrind run")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    ap.add_argument("--child", nargs=3, metavar=("LOOP", "BENCH", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(args.child[0], args.child[1], int(args.child[2]))
    loops, benches = args.loops.split(","), args.bench.split(",")
    bad = [x for x in loops if x not in LOOPS] + [x for x in benches if x not in BENCHES]
    if bad:
        ap.error(f"unknown: {', '.join(bad)}")
    if not shutil.which(args.valgrind):
        ap.error(f"{args.valgrind} not found")

    t0 = time.monotonic()
    cells, info, jobs, status = {}, {}, [], 0
    for loop_name in loops:
        for bench in benches:
            try:
                info[loop_name] = plain_run(args, loop_name, bench)
            except Exception as exc:
                print(f"# {loop_name} {bench}: skipped: {exc}")
                status = 1
                continue
            small, large = args.n_small or BENCHES[bench][0], args.n_large or BENCHES[bench][1]
            if large <= small:
                ap.error("--n-large must exceed --n-small")
            cells[(loop_name, bench)] = {"loop": loop_name, "bench": bench, "n_small": small, "n_large": large,
                                         "runs": []}
            jobs += [(loop_name, bench, n, r) for r in range(args.repeat) for n in (small, large)]
    for loop_name, i in info.items():
        print(f"# {loop_name}: {i['version']} {i['file'] or ''}")
    vg = subprocess.run([args.valgrind, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"# {vg}, Python {sys.version.split()[0]} ({args.python}), virtual clock step "
          f"{args.clock_step_ns or 'off (real clock)'}{' ns' if args.clock_step_ns else ''}")

    with tempfile.TemporaryDirectory(prefix="callgrind-") as tmp, \
            concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
        preload = None
        if args.clock_step_ns > 0:
            preload = os.path.join(tmp, "fakeclock.so")
            subprocess.run([os.environ.get("CC", "cc"), "-O2", "-shared", "-fPIC", "-o", preload, "-x", "c", "-",
                            "-ldl"], input=FAKE_CLOCK_C.replace("STEP_NS", f"{args.clock_step_ns}LL"),
                           text=True, check=True)
        futures = [pool.submit(callgrind_counts, args, job, tmp, preload) for job in jobs]
        counts = {}
        for job, fut in zip(jobs, futures):
            try:
                counts[job] = fut.result()
            except Exception as exc:
                print(f"# error: {exc}")
                status = 1
    for (loop_name, bench, small, r) in jobs[::2]:
        c = cells[(loop_name, bench)]
        a, b = counts.get((loop_name, bench, small, r)), counts.get((loop_name, bench, c["n_large"], r))
        if a and b:      # Ir and system calls per operation from the difference of the two runs
            dn = c["n_large"] - small
            c["runs"].append({"ir_small": a[0], "ir_large": b[0], "sys_small": a[1], "sys_large": b[1],
                              "ir_per_op": (b[0] - a[0]) / dn, "sys_per_op": (b[1] - a[1]) / dn})

    print(f"{'loop':<8} {'benchmark':<18} {'Ir/op':>9} {'spread':>7} {'sys/op':>7}  runs: Ir/op (sys/op)")
    for c in cells.values():
        vals = [r["ir_per_op"] for r in c["runs"]]
        if not vals:
            print(f"{c['loop']:<8} {c['bench']:<18} {'error':>9}")
            continue
        c.update(ir_per_op=median(vals), spread=(max(vals) - min(vals)) / median(vals),
                 sys_per_op=median(r["sys_per_op"] for r in c["runs"]))
        print(f"{c['loop']:<8} {c['bench']:<18} {c['ir_per_op']:>9.1f} {c['spread']:>7.2%} {c['sys_per_op']:>7.3f}  "
              + "  ".join(f"{r['ir_per_op']:.1f} ({r['sys_per_op']:.3f})" for r in c["runs"]))
    elapsed = time.monotonic() - t0
    print(f"# {len(jobs)} callgrind runs in {elapsed:.0f} s (--jobs {args.jobs})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"python": sys.version.split()[0], "valgrind": vg, "clock_step_ns": args.clock_step_ns,
                       "loops": info, "results": list(cells.values()), "seconds": round(elapsed, 1),
                       "method": "(Ir(n_large) - Ir(n_small)) / (n_large - n_small) under callgrind"}, f, indent=2)
    return status


if __name__ == "__main__":
    sys.exit(main())
