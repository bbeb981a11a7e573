"""The test command's version matrix: the suite on every CPython >= 3.11 found, one venv each.

``bash tools/test.sh`` installs the system packages and hands over to this script, which

1. finds the interpreters (``tools/devenv.py pythons``: ``python3.X`` on PATH, pyenv's
   versions), or takes the one named by ``PYTHON=``; under CI (``CI`` set, no ``PYTHON``) it
   fails when it finds fewer than two;
2. for each, makes ``.venv/py3.X`` with pyloop built into it and the pins of
   ``constraints/py3.X.txt`` (``tools/devenv.py venv``), one after the other;
3. runs pytest in each venv, in two lanes at once on a machine with two cores or more: the
   primary version's whole suite in one, streamed, and the other versions one after the other
   in the second, each into ``.venv/py3.X/pytest.log``, printed when it ends.  Much of the suite
   waits (on sockets, subprocesses, timers) rather than computes: on the 2-core development
   machine tests/loop on 3.12 and 3.13 took 54 s side by side against 80-88 s one after the
   other.  ``PYLOOP_MATRIX_JOBS=1`` runs everything in one lane;
4. prints per version what passed, what CPython's own asyncio tests (tests/conformance, run
   against that interpreter's ``test.test_asyncio``) gave, and how long it took.

Two suites at once share the checkout: each version gets its own pytest cache
(``.venv/py3.X/.pytest_cache``) and conformance results (``tests/conformance/results/py3.X``,
``PYLOOP_CONFORMANCE_RESULTS``); the C core's build (tests/core) and the services of the
integration tests are the primary version's alone.

What runs where
---------------
The *primary* version (the interpreter that runs this script, ``python3`` -- else the oldest
found) runs the whole suite.  The others run everything whose result can depend on the Python
version -- the loop, transports, processes, the toolbox, the pytest plugin, the reliability
tests and the conformance suite against their own ``test.test_asyncio`` -- and leave out
(``--ignore``) what cannot, or what only re-tests third-party code:

* ``tests/test_style.py`` -- ruff, cython-lint, import-linter and the source rules read the
  files, not the interpreter;
* ``tests/core`` -- the C engine, compiled and run as plain C: no Python in it;
* ``tests/integration`` -- real servers and clients (aiohttp, uvicorn, asyncpg, redis, httpx,
  websockets, anyio), the docs, the examples, type checking and the wheel: they exercise
  pyloop's transports through other projects' code, which the transports' own tests and the
  conformance suite already cover on every version.

Pytest arguments given to the command (``bash tools/test.sh tests/loop -x``) run as given on
every version, without that trimming -- except the wheel tests (``tests/integration/
test_wheel.py``), which build and install pyloop from scratch and run on the primary version
only (``PYLOOP_WHEEL_TESTS=1`` there, deselected elsewhere).

``--latest`` (``bash tools/test.sh --latest``) makes ``.venv/py3.X-latest`` with the newest
release of every dependency, for every version, and runs tests/integration and
tests/test_environment.py there unless pytest arguments say otherwise.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import devenv  # tools/devenv.py: this script's directory is first on sys.path

ROOT = devenv.ROOT
CONFORMANCE_RESULTS = ROOT / "tests" / "conformance" / "results"
PRIMARY_ONLY = ("tests/test_style.py", "tests/core", "tests/integration")
WHEEL_TESTS = "tests/integration/test_wheel.py"
LATEST_DEFAULT = ("tests/integration", "tests/test_environment.py")
# pytest's last line: "1203 passed, 12 skipped, 2 xfailed in 480.31s (0:08:00)".
SUMMARY = re.compile(r"^=*\s*((?:\d+ \w+)(?:, \d+ \w+)*) in [\d.]+s")
_PRINT = threading.Lock()


@dataclass
class Outcome:
    python: str
    version: str
    what: str
    primary: bool
    args: list[str] = field(default_factory=list)
    venv_python: str = ""
    status: int = 0
    summary: str = "no result"
    conformance: str = "not run"
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def tag(self) -> str:
        major, minor = self.version.split(".")[:2]
        return f"py{major}.{minor}"


def log(*args) -> None:
    with _PRINT:
        print("matrix:", *args, file=sys.stderr, flush=True)


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"


def jobs() -> int:
    """How many versions' suites run at once: 2 with two cores or more, else 1."""
    chosen = os.environ.get("PYLOOP_MATRIX_JOBS")
    if chosen:
        return max(1, int(chosen))
    return 2 if (os.cpu_count() or 1) >= 2 else 1


def choose_pythons() -> tuple[list[str], str]:
    """The interpreters to run, and the primary one (the first of the list)."""
    chosen = os.environ.get("PYTHON")
    if chosen:
        if os.environ.get("CI"):
            log(f"PYTHON={chosen}: one version only (CI proper, .ci/run, runs every version)")
        return [chosen], chosen
    found = devenv.find_pythons()
    if os.environ.get("CI") and len(found) < 2:
        raise SystemExit(
            f"matrix: CI runs the suite on every CPython >= 3.11 and needs at least two; found "
            f"{len(found)}: {found}.  Install more (pyenv install 3.12 3.13) or put python3.X on PATH.")
    if not found:
        raise SystemExit("matrix: no CPython >= 3.11 found (python3.X on PATH or pyenv)")
    mine = sys.version_info[:2]
    primary = next((p for p in found if devenv.interpreter_version(p) == mine), found[0])
    return [primary, *(p for p in found if p != primary)], primary


def full_version(python: str) -> str:
    return subprocess.run([python, "-c", "import platform; print(platform.python_version())"],
                          check=True, capture_output=True, text=True).stdout.strip()


def pytest_args(user_args: list[str], primary: bool, latest: bool) -> tuple[list[str], str]:
    """The arguments for one version's pytest, and what they run (in words)."""
    if user_args:
        args = list(user_args)
        what = " ".join(user_args)
    elif latest:
        args, what = list(LATEST_DEFAULT), "integration, environment (newest releases)"
    elif primary:
        args, what = [], "whole suite"
    else:
        args = [f"--ignore={path}" for path in PRIMARY_ONLY]
        what = "whole suite less " + ", ".join(PRIMARY_ONLY)
    if not primary:
        args.append(f"--deselect={WHEEL_TESTS}")
    return args, what


def conformance_counts(path, since: float) -> str:
    """What tests/conformance's pytest test wrote during this version's run, in one line."""
    try:
        if path.stat().st_mtime < since:
            return "not run"
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "not run"
    totals = data["totals"]
    ran = sum(n for status, n in totals.items() if status != "excluded")
    shown = ", ".join(f"{n} {status}" for status, n in totals.items() if n and status != "excluded")
    selection = data["selection"]
    if isinstance(selection, dict):         # the runner's {"milestone": ..., "module": [], "k": []}
        selection = f"milestone {selection['milestone']}" if selection.get("milestone") else "a selection"
    return f"{totals['passed']}/{ran} passed ({shown}; {selection}; test.test_asyncio of {data['python']})"


def prepare(python: str, primary: bool, user_args: list[str], latest: bool) -> Outcome:
    """Make the version's venv (pyloop built into it); the outcome says what to run there."""
    version = full_version(python)
    args, what = pytest_args(user_args, primary, latest)
    outcome = Outcome(python, version, what, primary, args)
    log(f"== CPython {version} ({python}): venv")
    started = time.monotonic()
    flags = ["--extras", "test", "--python", python] + (["--latest"] if latest else [])
    venv = subprocess.run([sys.executable, str(ROOT / "tools" / "devenv.py"), "venv", *flags],
                          cwd=ROOT, stdout=subprocess.PIPE, text=True)
    outcome.seconds["venv"] = time.monotonic() - started
    if venv.returncode != 0:
        outcome.status, outcome.summary = venv.returncode, "the venv could not be made (output above)"
    else:
        outcome.venv_python = venv.stdout.strip().splitlines()[-1]
    return outcome


def run_tests(outcome: Outcome, latest: bool, stream: bool) -> None:
    """Run the version's pytest; stream its output, or keep it in its venv and print it at the end."""
    venv_dir = ROOT / ".venv" / (outcome.tag + ("-latest" if latest else ""))
    results = CONFORMANCE_RESULTS / outcome.tag
    env = dict(os.environ)
    # tests/test_environment.py checks the installed versions against the pins in pinned mode
    # and reports how far the newest releases are from them in latest mode.
    env["PYLOOP_TEST_DEPS"] = "latest" if latest else "pinned"
    env["PYLOOP_WHEEL_TESTS"] = "1" if outcome.primary else "0"
    env["PYLOOP_CONFORMANCE_RESULTS"] = str(results)
    command = [outcome.venv_python, "-m", "pytest", "-o", f"cache_dir={venv_dir / '.pytest_cache'}",
               *outcome.args]
    log(f"== CPython {outcome.version}: pytest {outcome.what}"
        + ("" if stream else f" (output: {(venv_dir / 'pytest.log').relative_to(ROOT)}, shown when done)"))
    started_at, clock = time.time(), time.monotonic()
    summary = "no summary (pytest did not finish)"
    with open(venv_dir / "pytest.log", "w", encoding="utf-8", buffering=1) as keep, \
            subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, errors="replace") as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            keep.write(line)
            if stream:
                sys.stdout.write(line)
            match = SUMMARY.match(line.strip())
            if match:
                summary = match.group(1)
    outcome.status, outcome.summary = proc.returncode, summary
    outcome.seconds["tests"] = time.monotonic() - clock
    outcome.conformance = conformance_counts(results / "pytest-last.json", started_at)
    if not stream:
        with _PRINT:
            print(f"\n==== CPython {outcome.version}: {outcome.what} ====", flush=True)
            sys.stdout.write((venv_dir / "pytest.log").read_text(encoding="utf-8"))
            print(f"==== end of CPython {outcome.version} ====\n", flush=True)
    log(f"== CPython {outcome.version}: {outcome.summary}; conformance {outcome.conformance}; "
        f"venv {minutes(outcome.seconds['venv'])}, tests {minutes(outcome.seconds['tests'])}")


def run_lanes(outcomes: list[Outcome], latest: bool, lanes: int) -> None:
    """The primary version in the first lane (streamed), the others one after the other in the second."""
    ready = [o for o in outcomes if o.venv_python]
    if lanes < 2 or len(ready) < 2:
        for outcome in ready:
            run_tests(outcome, latest, stream=True)
        return
    first, rest = ready[0], ready[1:]

    def second_lane():
        for outcome in rest:
            run_tests(outcome, latest, stream=False)

    with ThreadPoolExecutor(2) as pool:
        done = [pool.submit(run_tests, first, latest, True), pool.submit(second_lane)]
        for future in done:
            future.result()


def report(outcomes: list[Outcome], total: float, lanes: int) -> None:
    lines = [f"matrix: {len(outcomes)} CPython version(s) in {minutes(total)} "
             f"({'two lanes' if lanes > 1 and len(outcomes) > 1 else 'one after the other'})"]
    for o in outcomes:
        mark = "ok  " if o.status == 0 else "FAIL"
        took = ", ".join(f"{k} {minutes(v)}" for k, v in o.seconds.items())
        lines += [f"  {mark} {o.version:8s} {o.what}",
                  f"         pytest: {o.summary}",
                  f"         conformance: {o.conformance}",
                  f"         {took}"]
    with _PRINT:
        print("\n".join(lines), flush=True)


def main(argv: list[str]) -> int:
    latest = bool(argv) and argv[0] == "--latest"
    user_args = argv[1:] if latest else argv
    pythons, primary = choose_pythons()
    lanes = jobs()
    log("versions: " + ", ".join(f"{full_version(p)} ({p})" for p in pythons)
        + f"; primary (whole suite): {full_version(primary)}; lanes: {lanes}")
    started = time.monotonic()
    # The venvs one after the other: each build already uses every core.
    outcomes = [prepare(p, p == primary, user_args, latest) for p in pythons]
    run_lanes(outcomes, latest, lanes)
    report(outcomes, time.monotonic() - started, lanes)
    failed = [o.status for o in outcomes if o.status != 0]
    return failed[0] if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
