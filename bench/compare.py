"""Compare pyloop with asyncio, uvloop and rloop: every benchmark, every installed loop, interleaved.

    python bench/compare.py                      # all benchmarks, all installed loops, 7 rounds
    python bench/compare.py --quick              # CI smoke: 2 short rounds
    python bench/compare.py --loops asyncio,pyloop --bench call_soon_chain,sleep_zero --rounds 11
    python bench/compare.py --group echo,http    # only the network groups
    python bench/compare.py --group tls          # TLS echo (1 KiB, 64 KiB) and HTTPS, every loop's TLS layer

Prints a table of medians with ratios against pyloop and against the fastest other loop, marks DESIGN.md's
targets as met or missed, and writes <out>/micro.md and <out>/micro.png (default out: bench/results).
The network groups (echo.py: echo servers under a C load generator; http_bench.py: an httptools server
under wrk; tls_bench.py: the same two over each loop's TLS layer, with a C OpenSSL echo client and wrk on
https://) run after the micro-benchmarks when their prerequisites exist, and write <out>/echo.md,
<out>/http.md, <out>/tls.md and their plots; see those modules and bench/README.md for how they measure.

How it measures, and why (the machine this was built on has 2 cores and neighbours that compile):

* Every measurement runs in a fresh subprocess (bench/_worker.py): one loop, a warm-up of a tenth of the
  operations, then --repeat timed runs whose minimum is that process's value (noise only ever adds time, so
  the minimum of back-to-back runs is the least disturbed one).  A fresh process per measurement means no
  loop inherits another loop's heap, GC generations or imported extension modules, process-level luck (address
  layout, which core, hash seed) is sampled anew every round instead of frozen into one run, and a loop
  that crashes or hangs costs one cell of the table, not the run.  Start-up is never timed (the clock runs
  inside the loop), so the ~50 ms a process costs is only wall time.
* Rounds are interleaved: each round measures every benchmark on every loop, loops back to back per
  benchmark and in an order rotated each round.  A burst of outside load then hits all loops alike instead of
  wrecking one column, and slow drift (thermal, a neighbour's build) spreads evenly over the columns.
* The reported figure is the median of the per-round values: one disturbed round cannot move it.
  Measurements never run in parallel (the threadsafe benchmark already uses both cores).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import benchlib  # noqa: E402
import report  # noqa: E402

WORKER = os.path.join(HERE, "_worker.py")
TABLE_TITLES = {"micro": "Event loop micro-benchmarks",
                "toolbox": "Toolbox: pyloop.task/sync against asyncio's nearest equivalents"}


def parse_args(argv: list[str] | None, benches: dict[str, benchlib.Benchmark]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 2 rounds, 1 timed run each, a tenth of the operations")
    p.add_argument("--loops", default=",".join(benchlib.LOOPS),
                   help="comma-separated loops to compare (default: %(default)s)")
    p.add_argument("--group", default=",".join(benchlib.GROUPS),
                   help="comma-separated benchmark groups (default: %(default)s); echo needs a C compiler, "
                        "http needs wrk and httptools, tls a C compiler with OpenSSL's headers and the openssl "
                        "command (wrk for its HTTPS row), and each is skipped with a message without them")
    p.add_argument("--bench", default="",
                   help="comma-separated benchmarks (default: all of the chosen groups): " + ", ".join(benches))
    p.add_argument("--rounds", type=int,
                   help="interleaved rounds (default: micro 7, echo, http and tls 3; --quick: 2, 1, 1, 1)")
    p.add_argument("--repeat", type=int, help="timed runs per process, best kept (default 3; --quick 1)")
    p.add_argument("--scale", type=float,
                   help="multiply every operation count (default 1; --quick 0.1)")
    p.add_argument("--clock", choices=list(benchlib.CLOCKS), default="wall",
                   help="wall: elapsed time (default); cpu: process CPU time, steadier on a busy machine")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="seconds before one measurement is abandoned (default: %(default)s)")
    p.add_argument("--out", default=os.path.join(HERE, "results"),
                   help="directory for the reports: micro.md, echo.md, http.md and their PNGs "
                        "(default: bench/results)")
    p.add_argument("--no-plot", action="store_true", help="do not write the PNG")
    p.add_argument("--publish", action="store_true",
                   help="also write bench/RESULTS.md and bench/plots/ (tracked files: the figures the README "
                        "shows); without it a run writes only under --out, which git ignores")
    p.add_argument("--duration", type=float,
                   help="seconds of one echo/http/tls measurement after its warm-up (default: echo 0.4, "
                        "http 2, tls echo 1 and HTTPS 2; --quick: 0.25, 1, 0.3 and 1; wrk takes whole seconds)")
    p.add_argument("--pin", action="store_true",
                   help="echo/http: pin the server to the last CPU and the load generator to the first "
                        "(default: let the scheduler place them, steadier on a busy machine)")
    args = p.parse_args(argv)
    args.net_rounds = args.rounds  # None: each network group picks its own default
    args.rounds = args.rounds or (2 if args.quick else 7)
    args.repeat = args.repeat or (1 if args.quick else 3)
    args.scale = args.scale or (0.1 if args.quick else 1.0)
    args.loops = [x for x in args.loops.split(",") if x]
    args.group = [x for x in args.group.split(",") if x]
    unknown = [x for x in args.group if x not in benchlib.GROUPS]
    if unknown:
        p.error(f"unknown group(s): {', '.join(unknown)}; choose from {', '.join(benchlib.GROUPS)}")
    args.bench = [x for x in args.bench.split(",") if x] or [
        name for name, b in benches.items() if b.group in args.group]
    for kind, chosen, known in (("loop", args.loops, benchlib.LOOPS), ("benchmark", args.bench, benches)):
        unknown = [x for x in chosen if x not in known]
        if unknown:
            p.error(f"unknown {kind}(s): {', '.join(unknown)}; choose from {', '.join(known)}")
    if args.rounds < 1 or args.repeat < 1 or args.scale <= 0:
        p.error("--rounds and --repeat must be >= 1 and --scale > 0")
    if args.duration is not None and args.duration <= 0:
        p.error("--duration must be > 0")
    return args


def worker_env() -> dict[str, str]:
    env = dict(os.environ)
    for var in ("PYTHONASYNCIODEBUG", "PYTHONDEVMODE", "PYTHONTRACEMALLOC", "PYTHONMALLOC"):
        env.pop(var, None)  # debug modes would measure the debug checks, differently per loop
    return env


def call_worker(args: list[str], timeout: float) -> dict:
    """Run _worker.py with args; its JSON answer, or {"ok": False, "error": ...}."""
    try:
        proc = subprocess.run([sys.executable, WORKER, *args], capture_output=True, text=True,
                              timeout=timeout, env=worker_env())
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout:g} s"}
    lines = proc.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        if proc.returncode < 0:
            why = f"killed by {signal.Signals(-proc.returncode).name}"
        else:
            why = f"exit status {proc.returncode}"
        last = proc.stderr.strip().splitlines()[-1:]
        return {"ok": False, "error": why + (f": {last[0]}" if last else "")}


def probe_loops(names: list[str], timeout: float) -> tuple[dict[str, str], dict[str, str], bool]:
    """(available loop -> version string, unavailable loop -> why, whether an installed one is broken)."""
    versions, missing, broken = {}, {}, False
    for name in names:
        answer = call_worker(["probe", name], timeout)
        if answer.get("ok"):
            versions[name] = answer["version"]
        else:  # not installed is normal; installed but failing to make a loop is an error
            missing[name] = answer["error"] if answer.get("missing") else "broken: " + answer["error"]
            broken = broken or not answer.get("missing")
    return versions, missing, broken


def load_average() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0


def run_rounds(loops: list[str], benches: list[benchlib.Benchmark], args) -> report.Results:
    results: report.Results = {b.name: {name: report.Cell() for name in loops} for b in benches}
    started = time.monotonic()
    for rnd in range(args.rounds):
        k = rnd % len(loops)
        order = loops[k:] + loops[:k]  # rotate, so no loop always goes first after a switch
        for bench in benches:
            n = max(1, round(bench.n * args.scale))
            shown = []
            for name in order:
                cell = results[bench.name][name]
                if cell.error:  # failed once: report it, don't spend more rounds on it
                    continue
                answer = call_worker(["run", name, bench.name, str(n), str(args.repeat), args.clock],
                                     args.timeout)
                if answer.get("ok"):
                    cell.values.append(min(answer["values"]))
                    shown.append(f"{name} {report.fmt(cell.values[-1], bench.unit)}")
                else:
                    cell.error = answer["error"]
                    shown.append(f"{name} ERROR")
            print(f"[round {rnd + 1}/{args.rounds} {time.monotonic() - started:6.1f}s] "
                  f"{bench.name:<22} " + "  ".join(shown), file=sys.stderr, flush=True)
    return results


def run_micro(args, loops: list[str], benches: list[benchlib.Benchmark], versions: dict[str, str],
              missing: dict[str, str], load_before: float, group: str = "micro") -> int:
    """One group of benchmarks that run as func(loop, n) in _worker.py: a table, <group>.md and <group>.png."""
    print("measuring " + ", ".join(versions[n] for n in loops) +
          f": {len(benches)} benchmarks x {args.rounds} rounds x {args.repeat} runs, "
          f"scale {args.scale:g}, {args.clock} clock", file=sys.stderr)

    results = run_rounds(loops, benches, args)
    rows = [report.summarize(b, results[b.name], loops) for b in benches]
    info = report.system_info()
    settings = (f"{args.rounds} rounds x {args.repeat} runs per process, operation counts x{args.scale:g}"
                f"{' (--quick)' if args.quick else ''}, {args.clock} clock")
    load_after = load_average()
    info["load"] = f"1-min load average {load_before:.2f} before, {load_after:.2f} after"
    if max(load_before, load_after) > 0.5 * (os.cpu_count() or 1):
        info["load"] += " (busy machine: expect noisy numbers; --clock cpu is steadier)"

    print()
    print(f"{info['python']} on {info['cpu']}, {info['date']}; {settings}")
    print(report.console_table(rows, loops, results))
    print(report.ratio_note(loops))
    print(f"Load: {info['load']}")
    for b, per in results.items():
        for name, cell in per.items():
            if cell.error:
                print(f"ERROR {b} on {name}: {cell.error}")

    os.makedirs(args.out, exist_ok=True)
    md_path = os.path.join(args.out, f"{group}.md")
    with open(md_path, "w") as f:
        f.write(report.markdown(rows, loops, results, info, versions, missing, settings,
                                TABLE_TITLES.get(group, f"{group} benchmarks")))
    print(f"\nwrote {md_path}")
    if not args.no_plot:
        png_path = os.path.join(args.out, f"{group}.png")
        title = TABLE_TITLES.get(group, f"{group} benchmarks")
        skipped = report.plot(rows, loops, results, png_path,
                              f"{title} ({info['python']}, {info['date']}, "
                              f"{args.clock} clock)")
        print(f"skipped the plot: {skipped}" if skipped else f"wrote {png_path}")
    return 1 if any(cell.error for per in results.values() for cell in per.values()) else 0


def main(argv: list[str] | None = None) -> int:
    all_benches = benchlib.load_benchmarks()
    args = parse_args(argv, all_benches)
    chosen = [all_benches[name] for name in args.bench]

    run_started = time.time() - 1.0   # reports older than this are from an earlier run
    load_before = load_average()
    versions, missing, broken = probe_loops(args.loops, min(args.timeout, 60.0))
    for name, why in missing.items():
        print(f"{name}: {why}; skipped", file=sys.stderr)
    loops = [name for name in args.loops if name in versions]
    if not loops:
        print("no loop to measure", file=sys.stderr)
        return 1

    status = 1 if broken else 0
    for group in benchlib.GROUPS:
        in_worker = [b for b in chosen if b.group == group and not benchlib.runs_itself(group)]
        if in_worker:
            status = max(status, run_micro(args, loops, in_worker, versions, missing, load_before, group))
    for group in benchlib.GROUPS:
        benches = [b for b in chosen if b.group == group and benchlib.runs_itself(group)]
        if not benches:
            continue
        mod = benchlib.group_module(group)
        why = mod.prerequisites()
        if why:
            print(f"\n{group}: skipped ({why})", file=sys.stderr)
            continue
        print(file=sys.stderr)
        status = max(status, mod.run_group(args, loops, benches, versions, missing, worker_env()))
    write_results_page(args, run_started)
    return status


def write_results_page(args, run_started: float) -> None:
    """Gather this run's group reports into one page: <out>/RESULTS.md, and with --publish
    bench/RESULTS.md with the plots copied to bench/plots/, which the README shows.  Publishing is
    opt-in so that running the benchmark never modifies tracked files."""
    parts, plots = [], []
    for group in benchlib.GROUPS:
        md = os.path.join(args.out, f"{group}.md")
        if not os.path.exists(md) or os.path.getmtime(md) < run_started:
            continue  # not measured in this run
        with open(md) as f:  # each report's headings go one level down on the page
            parts.append("\n".join("#" + line if line.startswith("#") else line
                                   for line in f.read().strip().splitlines()))
        png = os.path.join(args.out, f"{group}.png")
        if os.path.exists(png) and os.path.getmtime(png) >= run_started:
            plots.append((group, png))
    if not parts:
        return
    command = "python bench/compare.py " + " ".join(sys.argv[1:])
    header = ["# Benchmark results", "",
              f"Written by `{command.strip()}` (one run, all loops interleaved); the per-group reports "
              "below are its tables, the plots its figures.", ""]
    pages = [(os.path.join(args.out, "RESULTS.md"), "")]
    if args.publish:
        pages.append((os.path.join(HERE, "RESULTS.md"), "plots/"))
        os.makedirs(os.path.join(HERE, "plots"), exist_ok=True)
        for group, png in plots:
            shutil.copyfile(png, os.path.join(HERE, "plots", f"{group}.png"))
    for path, plot_dir in pages:
        body = list(header)
        for group, _ in plots:
            body.append(f"![{group}]({plot_dir}{group}.png)")
        body += ["", "\n\n".join(parts), ""]
        with open(path, "w") as f:
            f.write("\n".join(body))
        print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
