"""Run CPython's loop-generic asyncio tests against an event loop implementation.

    python -m tests.conformance --loop pyloop|uvloop|asyncio [options]

The parent (this module) builds the catalog (catalog.py + manifest.toml),
selects tests, and runs each test class in child processes (child.py), at
most --jobs at a time.  A child that hangs or crashes is replaced by a new one
that resumes after the test that was running.  Results go to
results/<loop>[-<tag>].json (per test) and .md (summary by module).
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor

from . import report
from .catalog import Catalog, id_matches, module_names

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
MUST_PASS = os.path.join(HERE, "must_pass.toml")
DEFAULT_RESULTS = os.path.join(HERE, "results")
# After the per-test timeout, faulthandler kills the child itself; this much
# more silence (e.g. a hang in setUpClass, where no watchdog is armed) and
# the parent kills it.
BACKSTOP_GRACE = 30.0


def load_milestones(path=MUST_PASS):
    with open(path, "rb") as f:
        return tomllib.load(f)


def milestone_patterns(name, path=MUST_PASS):
    data = load_milestones(path)
    if name == "current":
        name = data["current"]
    try:
        ms = data["milestones"][name]
    except KeyError:
        raise SystemExit(f"unknown milestone {name!r}; known: "
                         f"{', '.join(data['milestones'])}") from None
    return name, ms.get("include", []), ms.get("exclude", [])


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m tests.conformance",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--loop", default="pyloop",
                   help="implementation under test: pyloop, uvloop or asyncio "
                        "(default: pyloop)")
    p.add_argument("--module", "-m", action="append", default=[],
                   help="only this test module (repeatable), e.g. test_events")
    p.add_argument("-k", dest="patterns", action="append", default=[],
                   help="only test ids matching: a substring, or an fnmatch "
                        "pattern if it has *?[ (repeatable; any may match)")
    p.add_argument("--id", dest="ids", action="append", default=[],
                   help="only this exact test id (repeatable)")
    p.add_argument("--milestone", metavar="NAME",
                   help="only the must-pass tests of a milestone in "
                        "must_pass.toml ('current' for the current one)")
    p.add_argument("--list", action="store_true",
                   help="list the selected tests and how each is run; run nothing")
    p.add_argument("--check", action="store_true",
                   help="check the catalog (every test class classified, every "
                        "manifest rule matching something); run nothing")
    p.add_argument("--jobs", "-j", type=int, default=2,
                   help="child processes at once (default 2)")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="seconds before a test counts as hung (default 30)")
    p.add_argument("--results-dir", default=DEFAULT_RESULTS,
                   help="where <loop>[-<tag>].json/.md go (default: %(default)s)")
    p.add_argument("--tag", help="suffix for the result file names "
                                 "(default: milestone name, 'subset' for "
                                 "other selections, none for a full run)")
    p.add_argument("--json", dest="json_path", help="also write the per-test "
                                                    "JSON here")
    p.add_argument("--quiet", "-q", action="store_true",
                   help="no per-class progress lines")
    p.add_argument("--keep-logs", action="store_true",
                   help="keep every child's output, not only those of hung/"
                        "crashed/failed classes")
    return p.parse_args(argv)


def select(catalog, args):
    entries = catalog.entries
    if args.module:
        entries = [e for e in entries if e.module in args.module]
    if args.patterns:
        def hit(e):
            for pat in args.patterns:
                if any(ch in pat for ch in "*?["):
                    if id_matches(e.id, [pat]):
                        return True
                elif pat in e.id:
                    return True
            return False
        entries = [e for e in entries if hit(e)]
    if args.ids:
        wanted = set(args.ids)
        unknown = wanted - {e.id for e in entries}
        if unknown:
            raise SystemExit(f"unknown test id(s): {', '.join(sorted(unknown))}")
        entries = [e for e in entries if e.id in wanted]
    if args.milestone:
        _, include, exclude = milestone_patterns(args.milestone)
        entries = [e for e in entries
                   if id_matches(e.id, include) and not id_matches(e.id, exclude)]
    return entries


# ------------------------------------------------------------------ children

class Unit:
    """One test class to run, maybe over several child processes."""

    def __init__(self, run_class, methods):
        self.module = run_class.module
        self.cls = run_class.name
        self.kind = run_class.kind
        self.methods = methods
        self.results = {}          # method -> result dict
        self.fixtures = []         # class/module fixture problems
        self.children = 0
        self.duration = 0.0
        self.logs = []

    @property
    def name(self):
        return f"{self.module}.{self.cls}"


def _read_events(path):
    out = []
    try:
        with open(path, "rb") as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass   # torn last line of a killed child
    except FileNotFoundError:
        pass
    return out


def _read_text(path, limit=8000):
    try:
        with open(path, errors="replace") as f:
            data = f.read()
    except FileNotFoundError:
        return ""
    return data[-limit:]


def _main_thread_frames(dump):
    """Frames of the thread running the test in a faulthandler dump,
    innermost first: the block that goes through unittest (dump_traceback_later
    lists every Python thread; a fatal-error dump marks "Current thread")."""
    blocks = [b.strip() for b in dump.split("\n\n")
              if "(most recent call first)" in b]
    if not blocks:
        return []
    chosen = next((b for b in blocks if "unittest/case.py" in b),
                  next((b for b in blocks if "Current thread" in b), blocks[-1]))
    return [ln.strip() for ln in chosen.splitlines()[1:]
            if ln.strip().startswith("File ")]


def _where(dump):
    """'main thread at X[, test at Y]': innermost frame, and the innermost
    frame in CPython's test_asyncio code when that is a different one."""
    frames = _main_thread_frames(dump)
    if not frames:
        return None
    text = f"main thread at {_short_frame(frames[0])}"
    for fr in frames:
        if "/test_asyncio/" in fr:
            if fr != frames[0]:
                text += f", test at {_short_frame(fr)}"
            break
    return text


def _dump_details(dump, limit=6000):
    main = _main_thread_frames(dump)
    head = ("test thread, innermost first:\n  " + "\n  ".join(main) + "\n\n"
            if main else "")
    return head + dump[:limit]


def _short_frame(frame):
    # 'File "/long/path/x.py", line 3 in f'  ->  'x.py:3 in f'
    try:
        path, rest = frame[len('File "'):].split('", line ', 1)
        line, func = rest.split(" in ", 1)
        return f"{os.path.basename(path)}:{line} in {func}"
    except ValueError:
        return frame


def _signal_name(rc):
    try:
        return signal.Signals(-rc).name
    except (ValueError, TypeError):
        return f"signal {-rc}"


def run_unit(unit, args, logdir, stop):
    t0 = time.monotonic()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [REPO] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.setdefault("PYTHONUNBUFFERED", "1")
    remaining = list(unit.methods)
    while remaining and not stop.is_set():
        unit.children += 1
        work = tempfile.mkdtemp(prefix="conformance-")
        spec_path = os.path.join(work, "spec.json")
        events = os.path.join(work, "events.jsonl")
        fault = os.path.join(work, "fault.txt")
        log = os.path.join(work, "output.txt")
        with open(spec_path, "w") as f:
            json.dump({"loop": args.loop, "module": unit.module, "cls": unit.cls,
                       "methods": remaining, "timeout": args.timeout,
                       "events": events, "fault": fault}, f)
        with open(log, "wb") as logf:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tests.conformance.child", spec_path],
                cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=logf,
                stderr=subprocess.STDOUT, start_new_session=True)
            last_size, last_change, killed = -1, time.monotonic(), False
            while proc.poll() is None:
                try:
                    proc.wait(0.2)
                except subprocess.TimeoutExpired:
                    pass
                try:
                    size = os.path.getsize(events)
                except OSError:
                    size = 0
                now = time.monotonic()
                if size != last_size:
                    last_size, last_change = size, now
                elif now - last_change > args.timeout + BACKSTOP_GRACE or stop.is_set():
                    _kill_group(proc.pid)
                    killed = True
                    proc.wait()
        rc = proc.returncode
        # Whatever the child left behind (subprocess tests, leaked helpers).
        _kill_group(proc.pid)

        records = _read_events(events)
        in_progress = None
        done = fatal = False
        abort = None
        for rec in records:
            ev = rec.get("ev")
            if ev == "start":
                in_progress = rec["method"]
            elif ev == "end":
                unit.results[rec["method"]] = _result_from_end(rec)
                in_progress = None
            elif ev == "fixture":
                unit.fixtures.append({k: rec.get(k) for k in
                                      ("desc", "status", "reason", "details")})
            elif ev == "fatal":
                fatal = rec
            elif ev == "abort":
                abort = rec
            elif ev == "done":
                done = True
        progressed = any(r.get("ev") == "end" for r in records)
        dump = _read_text(fault, 200000)
        output = _read_text(log, 4000)
        keep_log = False

        if fatal:
            for m in remaining:
                if m not in unit.results:
                    unit.results[m] = {"status": "errored",
                                       "reason": fatal["reason"],
                                       "details": fatal.get("details")}
            keep_log = True
        elif in_progress is not None:
            keep_log = True
            if abort is not None:
                unit.results[in_progress] = {
                    "status": "errored", "reason": abort["reason"],
                    "details": abort.get("details")}
            elif "Timeout (" in dump or killed:
                where = _where(dump)
                unit.results[in_progress] = {
                    "status": "hung",
                    "reason": f"no result after {args.timeout:g}s"
                              + (f"; {where}" if where else ""),
                    "details": _dump_details(dump) or output}
            else:
                what = (_signal_name(rc) if rc is not None and rc < 0
                        else f"child exited with status {rc}")
                first = dump.strip().splitlines()[0] if dump.strip() else ""
                where = _where(dump)
                reason = what + (f" ({first})" if first else "")
                if where:
                    reason += f"; {where}"
                unit.results[in_progress] = {
                    "status": "crashed", "reason": reason,
                    "details": (_dump_details(dump)
                                + "\n--- child output ---\n" + output)}
        elif not done:
            keep_log = True
            desc = ("hung outside any test (class/module fixture)" if killed
                    else f"child died outside any test (status {rc})")
            unit.fixtures.append({"desc": f"{unit.name} (fixtures)",
                                  "status": "hung" if killed else "crashed",
                                  "reason": desc, "details": dump + output})
            if not progressed:
                for m in remaining:
                    unit.results.setdefault(m, {
                        "status": "errored",
                        "reason": f"not run: {desc}"})

        new_remaining = [m for m in remaining if m not in unit.results]
        if done or fatal or new_remaining == remaining:
            # Tests the child never started: a setUpClass/setUpModule
            # problem (reported as a fixture) kept unittest from running them.
            fx = next((f for f in unit.fixtures if "setUp" in (f["desc"] or "")), None)
            for m in new_remaining:
                if fx is not None:
                    unit.results[m] = {"status": fx["status"],
                                       "reason": f"not run: {fx['desc']}: {fx['reason']}"}
                else:
                    unit.results[m] = {"status": "errored",
                                       "reason": "not run (no result from the child)"}
            new_remaining = []
        if any(r["status"] in ("failed", "errored") for r in unit.results.values()):
            keep_log = True
        if args.keep_logs or keep_log:
            dest = os.path.join(logdir, f"{unit.name}.{unit.children}.log")
            os.makedirs(logdir, exist_ok=True)
            with open(dest, "w") as f:
                f.write(_read_text(log, 200000))
                if dump:
                    f.write("\n--- faulthandler ---\n" + dump)
            unit.logs.append(dest)
        shutil.rmtree(work, ignore_errors=True)
        remaining = new_remaining
    unit.duration = time.monotonic() - t0
    return unit


def _result_from_end(rec):
    out = {"status": rec["status"], "reason": rec.get("reason"),
           "duration": rec.get("duration"), "loops": rec.get("loops")}
    if rec.get("details"):
        out["details"] = rec["details"]
    if rec.get("notes"):
        out["notes"] = rec["notes"]
    return out


def _kill_group(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# ---------------------------------------------------------------------- main

def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    t_start = time.time()
    modules = None
    if args.module:
        known = module_names()
        bad = [m for m in args.module if m not in known]
        if bad:
            raise SystemExit(f"unknown module(s): {', '.join(bad)}")
        modules = args.module
    catalog = Catalog(modules=modules)
    entries = select(catalog, args)
    for problem in catalog.problems:
        print(f"catalog problem: {problem}", file=sys.stderr)

    if args.check:
        bad = [e for e in catalog.entries
               if e.kind in ("unclassified", "import-error")]
        for e in bad:
            print(f"{e.id}: {e.kind}: {e.reason}")
        for problem in catalog.problems:
            print(f"catalog problem: {problem}")
        counts = {}
        for e in catalog.entries:
            counts[e.kind] = counts.get(e.kind, 0) + 1
        print(f"{len(catalog.entries)} tests: " +
              ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
        return 1 if bad or catalog.problems else 0

    if args.list:
        for e in entries:
            line = f"{e.id:90s} {e.kind}"
            if e.reason:
                line += f" ({e.reason})"
            if e.adapt:
                line += f" [adapted: {', '.join(e.adapt)}]"
            print(line)
        counts = {}
        for e in entries:
            counts[e.kind] = counts.get(e.kind, 0) + 1
        print(f"\n{len(entries)} tests: " +
              ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
        return 0

    # Group the runnable tests by class, biggest first (they run longest).
    units = {}
    for e in entries:
        if e.runnable:
            rc = catalog.classes[(e.module, e.cls)]
            units.setdefault((e.module, e.cls), Unit(rc, []))
            units[(e.module, e.cls)].methods.append(e.method)
    units = sorted(units.values(), key=lambda u: -len(u.methods))

    if args.tag:
        tag = args.tag
    elif args.milestone:
        tag = milestone_patterns(args.milestone)[0]
    elif args.module or args.patterns or args.ids:
        tag = "subset"
    else:
        tag = None
    stem = args.loop + (f"-{tag}" if tag else "")
    logdir = os.path.join(args.results_dir, f"{stem}-logs")
    shutil.rmtree(logdir, ignore_errors=True)

    def terminate(signum, frame):
        raise KeyboardInterrupt(f"terminated by {signal.Signals(signum).name}")
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, terminate)

    stop = threading.Event()
    done_count = 0
    lock = threading.Lock()
    print(f"conformance: {args.loop}: {sum(len(u.methods) for u in units)} tests "
          f"in {len(units)} classes, {args.jobs} at a time, "
          f"timeout {args.timeout:g}s per test", flush=True)

    def work(unit):
        nonlocal done_count
        run_unit(unit, args, logdir, stop)
        with lock:
            done_count += 1
            if not args.quiet:
                print(f"[{done_count}/{len(units)}] {unit.name}: "
                      f"{report.count_line(unit.results.values())} "
                      f"({unit.duration:.1f}s"
                      + (f", {unit.children} children" if unit.children > 1 else "")
                      + ")", flush=True)

    pool = ThreadPoolExecutor(max_workers=max(1, args.jobs))
    futures = [pool.submit(work, u) for u in units]
    try:
        for fut in futures:
            fut.result()
    except BaseException:
        # Ctrl-C (or a runner bug): the workers kill their children.
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        print(f"interrupted ({sys.exc_info()[1]!r}); children killed",
              file=sys.stderr)
        raise
    pool.shutdown()

    data = report.assemble(args.loop, entries, units, catalog,
                           time.time() - t_start, t_start,
                           selection={"module": args.module, "k": args.patterns,
                                      "milestone": args.milestone})
    os.makedirs(args.results_dir, exist_ok=True)
    json_path = os.path.join(args.results_dir, stem + ".json")
    md_path = os.path.join(args.results_dir, stem + ".md")
    for path in filter(None, [json_path, args.json_path]):
        with open(path, "w") as f:
            json.dump(data, f, indent=1)
    md = report.markdown(data)
    with open(md_path, "w") as f:
        f.write(md)
    print()
    print(report.summary_table(data))
    print()
    print(report.problem_list(data, limit=60))
    print(f"results: {json_path}\n         {md_path}")
    bad = data["totals"]
    return 1 if (bad["failed"] or bad["errored"] or bad["hung"] or bad["crashed"]
                 or catalog.problems) else 0
