"""Plumbing shared by the network benchmark groups (echo.py, http_bench.py) and their servers (servers/).

Runner side:
* :func:`build_tool` compiles a C program from ``bench/loadgen/`` with the system compiler (``$CC`` or
  ``cc``, ``-O2``) into ``bench/results/bin/`` (git ignores ``bench/results/``), again only when the source
  is newer than the binary.  No binary is ever committed.
* :class:`Server` starts a server subprocess that prints its bound port as the first line of its stdout,
  optionally pinned to one CPU, and reads its CPU time from ``/proc/PID/stat``.
* :func:`cpu_plan` decides which CPU the server and which the load generator run on.

Server side (bench/servers/*.py): :func:`serve` parses ``--loop/--flavour/--host/--port``, makes the loop,
starts the chosen flavour, prints the port and runs the loop forever.  A flavour the loop does not support
(pyloop's ``create_server`` before the transports land) prints ``unsupported: <why>`` instead of a port and
exits with status 3, which the runner reports as "not supported" rather than an error.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
LOADGEN = os.path.join(HERE, "loadgen")
SERVERS = os.path.join(HERE, "servers")
BIN_DIR = os.path.join(HERE, "results", "bin")

UNSUPPORTED_EXIT = 3
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class Unavailable(Exception):
    """A prerequisite (compiler, wrk, httptools) is missing: the group is skipped, not failed."""


class Unsupported(Exception):
    """The loop cannot run this server flavour (e.g. create_server not implemented yet)."""


class ServerError(Exception):
    """The server did not start or died."""


# ---------------------------------------------------------------------------------------------- building

def build_tool(name: str, libs: tuple[str, ...] = (), needs: str = "") -> str:
    """Path of bench/loadgen/<name>.c compiled for this machine, linked with ``libs`` (e.g. ``("ssl",
    "crypto")``); rebuilt when the source or a header beside it is newer than the binary.  Unavailable
    without a C compiler, or when the build fails (``needs`` names what it takes, for the message)."""
    src = os.path.join(LOADGEN, name + ".c")
    exe = os.path.join(BIN_DIR, name)
    sources = [src] + [os.path.join(LOADGEN, f) for f in os.listdir(LOADGEN) if f.endswith(".h")]
    if os.path.exists(exe) and os.path.getmtime(exe) >= max(map(os.path.getmtime, sources)):
        return exe
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        raise Unavailable(f"no C compiler (cc) to build the load generator {name}")
    os.makedirs(BIN_DIR, exist_ok=True)
    tmp = exe + f".tmp{os.getpid()}"
    proc = subprocess.run([cc, "-O2", "-Wall", "-o", tmp, src, *(f"-l{lib}" for lib in libs)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise Unavailable(f"building {name} failed{f' ({needs})' if needs else ''}: "
                          f"{proc.stderr.strip()[-500:]}")
    os.replace(tmp, exe)  # atomic, so a concurrent run never executes a half-written binary
    return exe


# ----------------------------------------------------------------------------------------- CPU placement

def cpu_plan(pin: bool) -> tuple[int | None, int | None]:
    """(server CPU, load generator CPU) with pin=True, else (None, None): the scheduler places them.

    Unpinned is the default because it measured steadier on the 2-core reference machine, where two
    CPU-bound neighbour processes run all the time.  Eight interleaved rounds of the 1 KiB protocol echo
    (asyncio, uvloop, rloop; 0.8 s each), pinned (server on the last CPU, client on the first) against
    unpinned: the per-round ratio asyncio/uvloop of msgs/s had a coefficient of variation of 0.40 pinned
    and 0.11 unpinned, and of CPU per message 0.18 against 0.12 (rloop/uvloop: 0.58 and 0.31 against 0.12
    and 0.10).  Pinned, each end of the ping-pong always shares its CPU with a neighbour and waits out its
    time slice (p99 latency 8-14 ms); unpinned, the scheduler moves them to whichever CPU is free.  On an
    idle machine pinning may be the steadier choice: try ``--pin``.
    """
    if not pin or not hasattr(os, "sched_getaffinity"):
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return cpus[-1], cpus[0]


def pinned(cpu: int | None):
    """A preexec_fn that pins the child (and every thread it will start) to one CPU."""
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


# ------------------------------------------------------------------------------------------------ server

def proc_cpu(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process, all its threads, from /proc/PID/stat (10 ms resolution)."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    fields = text[text.rindex(")") + 2:].split()  # fields 3.. of proc(5); the name may contain spaces
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


class Server:
    """A server subprocess whose first line of stdout is its port (or 'unsupported: why')."""

    def __init__(self, argv: list[str], cpu: int | None = None, env: dict | None = None,
                 start_timeout: float = 30.0):
        self.argv = argv
        self.cpu = cpu
        self.env = env
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self._stderr = tempfile.TemporaryFile()

    def start(self) -> "Server":
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=self._stderr,
                                     stdin=subprocess.DEVNULL, env=self.env, preexec_fn=pinned(self.cpu))
        ready, _, _ = select.select([self.proc.stdout], [], [], self.start_timeout)
        line = self.proc.stdout.readline().decode(errors="replace").strip() if ready else ""
        if line.startswith("unsupported:"):
            self.stop()
            raise Unsupported(line.split(":", 1)[1].strip())
        if not line.isdigit():
            if ready and self.proc.poll() is None:  # printed something else, or EOF racing the exit
                try:
                    self.proc.wait(1.0)
                except subprocess.TimeoutExpired:
                    pass
            why = f"no port after {self.start_timeout:g} s" if not ready else (
                f"printed {line!r}" if line else "exited")
            why = f"{why}: {self.stderr_tail()}"
            self.stop()
            raise ServerError(why)
        self.port = int(line)
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cpu_times(self) -> tuple[float, float]:
        return proc_cpu(self.pid)

    def stderr_tail(self) -> str:
        self._stderr.seek(0)
        lines = self._stderr.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else f"exit status {self.proc.poll()}"

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self._stderr.close()

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def python_server(script: str, loop: str, flavour: str, cpu: int | None, env: dict) -> Server:
    return Server([sys.executable, os.path.join(SERVERS, script), "--loop", loop, "--flavour", flavour,
                   "--host", "127.0.0.1", "--port", "0"], cpu=cpu, env=env)


# ------------------------------------------------------------------------------------------- statistics

def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def paired_ratio(a: list[float], b: list[float]) -> float | None:
    """Median over rounds of a[i] / b[i]: the two were measured in the same round, close together."""
    pairs = [x / y for x, y in zip(a, b) if y]
    return statistics.median(pairs) if pairs else None


def split_total(total: float | None, user_s: list[float],
                sys_s: list[float]) -> tuple[float | None, float | None]:
    """(user, sys) parts of a median total CPU figure: the total split by the user share pooled over rounds.

    The kernel measures a process's total CPU time exactly but splits it into user and system time by
    sampling which mode the process was in at each timer tick (CONFIG_HZ, 250 here; no
    VIRT_CPU_ACCOUNTING).  A 0.4 s measurement of a server that is busy half the time and spends 15 % of
    that in user mode sees about 8 user ticks, so one round's user figure scatters by +-40 % (measured:
    coefficient of variation 0.3-0.9 per round), and a median of three such figures is hardly better.
    Pooling the ticks of all rounds is the efficient estimate of the share; the level stays the median
    total, so one disturbed round cannot move it.
    """
    if total is None:
        return None, None
    u, s = sum(user_s), sum(sys_s)
    share = u / (u + s) if u + s > 0 else 0.0
    return total * share, total * (1.0 - share)


def fmt_num(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def md_table(head: list[str], rows: list[list[str]], align_left: int = 1) -> list[str]:
    line = lambda r: "| " + " | ".join(r) + " |"  # noqa: E731
    return [line(head), line(["---"] * align_left + ["---:"] * (len(head) - align_left)), *map(line, rows)]


def text_table(head: list[str], rows: list[list[str]], align_left: int = 1) -> str:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    line = lambda r: "  ".join(c.ljust(w) if i < align_left else c.rjust(w)  # noqa: E731
                               for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([line(head), "  ".join("-" * w for w in widths), *map(line, rows)])


# ------------------------------------------------------------------------------------------- server side

def serve(description: str, flavours: dict, argv: list[str] | None = None) -> int:
    """Main of a benchmark server: flavours maps a name to ``async start(loop, host, port) -> bound port``."""
    import benchlib  # bench/ is on sys.path in the server scripts

    p = argparse.ArgumentParser(description=description)
    p.add_argument("--loop", choices=list(benchlib.LOOPS), default="asyncio")
    p.add_argument("--flavour", choices=list(flavours), default=next(iter(flavours)))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args(argv)
    # SIGTERM from the runner ends the process at once; SIGINT too, without a KeyboardInterrupt traceback.
    signal.signal(signal.SIGINT, signal.SIG_DFL)

    try:
        loop = benchlib.make_loop(args.loop)
    except ImportError as exc:
        print(f"unsupported: {args.loop} is not installed ({exc})", flush=True)
        return UNSUPPORTED_EXIT
    loop.set_debug(False)
    asyncio.set_event_loop(loop)
    try:
        port = loop.run_until_complete(flavours[args.flavour](loop, args.host, args.port))
    except NotImplementedError as exc:
        print(f"unsupported: {exc}", flush=True)
        return UNSUPPORTED_EXIT
    print(port, flush=True)
    loop.run_forever()
    return 0


# ------------------------------------------------------------------------------------------------- plot

def plot_panels(panels: list, columns: list[str], path: str, title: str) -> str | None:
    """Grouped bars like report.plot (log scale, min - max whiskers, dashed red targets, the same colour per
    loop as the micro plot), one panel per metric.

    panels: [(y label, lower_is_better, [(x label, {column: values}, target or None), ...]), ...], where
    values is a list of per-round values (the bar shows their median) or a tuple (bar height, per-round
    values) for a figure that is not a plain median (see split_total).
    Returns why the plot was skipped, or None.
    """
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install matplotlib)"
    import benchlib

    width_in = max(6.0, 1.2 * max(len(groups) for _, _, groups in panels) + 2)
    fig, axes = plt.subplots(len(panels), 1, squeeze=False, figsize=(width_in, 4.2 * len(panels)))
    width = 0.8 / max(len(columns), 1)
    for ax, (ylabel, lower, groups) in zip(axes[:, 0], panels):
        for i, name in enumerate(columns):
            xs, ys, lo, hi = [], [], [], []
            for x, (_, values, _) in enumerate(groups):
                vals = values.get(name)
                if not vals:
                    continue
                # a list of per-round values (the bar is their median), or (bar, per-round values)
                med, vals = vals if isinstance(vals, tuple) else (statistics.median(vals), vals)
                xs.append(x - 0.4 + width * (i + 0.5))
                ys.append(med)
                lo.append(max(med - min(vals), 0.0))
                hi.append(max(max(vals) - med, 0.0))
            loop_names = list(benchlib.LOOPS)
            color = f"C{loop_names.index(name)}" if name in loop_names else "0.55"  # the ceiling in grey
            ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2, label=name, color=color, edgecolor="black",
                   linewidth=1.5 if name == benchlib.SUBJECT else 0.5)
        first = True
        for x, (_, _, target) in enumerate(groups):
            if target is not None:
                ax.hlines(target, x - 0.45, x + 0.45, colors="red", linestyles="dashed",
                          label=f"{benchlib.SUBJECT} target" if first else None)
                first = False
        ax.set_yscale("log")
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels([g[0] for g in groups], rotation=20, ha="right")
        ax.set_ylabel(f"{ylabel}\n(median, log scale; {'lower' if lower else 'higher'} is better)")
        ax.grid(axis="y", which="both", alpha=0.3)
        ax.legend(fontsize="small", ncol=2)
    axes[0, 0].set_title(title + "\nbars: median over rounds; whiskers: min - max")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
