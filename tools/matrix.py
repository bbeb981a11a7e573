"""The test command's version matrix: the suite on every CPython >= 3.11 found, one venv each.

``bash tools/test.sh`` installs the system packages and hands over to this script, which

1. finds the interpreters (``tools/devenv.py pythons``: ``python3.X`` on PATH, pyenv's
   versions), or takes the one named by ``PYTHON=``; under CI (``CI`` set, no ``PYTHON``) it
   fails when it finds fewer than two;
2. for each, makes ``.venv/py3.X`` with pyloop built into it and the pins of
   ``constraints/py3.X.txt`` (``tools/devenv.py venv``), one after the other;
3. runs pytest in each venv, one after the other (on two cores, two suites at once took longer
   in total than one after the other: see README "Tests"), streaming the output, and prints
   per version what passed, what CPython's own asyncio tests (tests/conformance, run against
   that interpreter's ``test.test_asyncio``) gave, and how long it took.

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
import time
from dataclasses import dataclass, field

import devenv  # tools/devenv.py: this script's directory is first on sys.path

ROOT = devenv.ROOT
CONFORMANCE_JSON = ROOT / "tests" / "conformance" / "results" / "pytest-last.json"
PRIMARY_ONLY = ("tests/test_style.py", "tests/core", "tests/integration")
WHEEL_TESTS = "tests/integration/test_wheel.py"
LATEST_DEFAULT = ("tests/integration", "tests/test_environment.py")
# pytest's last line: "1203 passed, 12 skipped, 2 xfailed in 480.31s (0:08:00)".
SUMMARY = re.compile(r"^=*\s*((?:\d+ \w+)(?:, \d+ \w+)*) in [\d.]+s")


@dataclass
class Outcome:
    python: str
    version: str
    what: str
    status: int = 0
    summary: str = "no result"
    conformance: str = "not run"
    seconds: dict[str, float] = field(default_factory=dict)


def log(*args) -> None:
    print("matrix:", *args, file=sys.stderr, flush=True)


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"


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


def run_streaming(command: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run ``command`` with its output passed through; return its status and last summary line."""
    summary = "no summary (pytest did not finish)"
    with subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors="replace") as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            match = SUMMARY.match(line.strip())
            if match:
                summary = match.group(1)
        sys.stdout.flush()
    return proc.returncode, summary


def conformance_counts(since: float) -> str:
    """What tests/conformance's pytest test wrote during this version's run, in one line."""
    try:
        if CONFORMANCE_JSON.stat().st_mtime < since:
            return "not run"
        data = json.loads(CONFORMANCE_JSON.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "not run"
    totals = data["totals"]
    ran = sum(n for status, n in totals.items() if status != "excluded")
    shown = ", ".join(f"{n} {status}" for status, n in totals.items() if n and status != "excluded")
    return f"{totals['passed']}/{ran} passed ({shown}; {data['selection']}; test.test_asyncio of {data['python']})"


def run_version(python: str, primary: bool, user_args: list[str], latest: bool) -> Outcome:
    version = full_version(python)
    args, what = pytest_args(user_args, primary, latest)
    outcome = Outcome(python, version, what)
    log(f"== CPython {version} ({python}): {what}")
    started = time.monotonic()
    flags = ["--extras", "test", "--python", python] + (["--latest"] if latest else [])
    venv = subprocess.run([sys.executable, str(ROOT / "tools" / "devenv.py"), "venv", *flags],
                          cwd=ROOT, stdout=subprocess.PIPE, text=True)
    outcome.seconds["venv"] = time.monotonic() - started
    if venv.returncode != 0:
        outcome.status, outcome.summary = venv.returncode, "the venv could not be made (output above)"
        return outcome
    venv_python = venv.stdout.strip().splitlines()[-1]
    env = dict(os.environ)
    # tests/test_environment.py checks the installed versions against the pins in pinned mode
    # and reports how far the newest releases are from them in latest mode.
    env["PYLOOP_TEST_DEPS"] = "latest" if latest else "pinned"
    env["PYLOOP_WHEEL_TESTS"] = "1" if primary else "0"
    tests_started = time.time()
    clock = time.monotonic()
    outcome.status, outcome.summary = run_streaming([venv_python, "-m", "pytest", *args], env)
    outcome.seconds["tests"] = time.monotonic() - clock
    outcome.conformance = conformance_counts(tests_started)
    log(f"== CPython {version}: {outcome.summary}; conformance {outcome.conformance}; "
        f"venv {minutes(outcome.seconds['venv'])}, tests {minutes(outcome.seconds['tests'])}")
    return outcome


def report(outcomes: list[Outcome], total: float) -> None:
    lines = [f"matrix: {len(outcomes)} CPython version(s) in {minutes(total)}"]
    for o in outcomes:
        mark = "ok  " if o.status == 0 else "FAIL"
        took = ", ".join(f"{k} {minutes(v)}" for k, v in o.seconds.items())
        lines += [f"  {mark} {o.version:8s} {o.what}",
                  f"         pytest: {o.summary}",
                  f"         conformance: {o.conformance}",
                  f"         {took}"]
    print("\n".join(lines), flush=True)


def main(argv: list[str]) -> int:
    latest = bool(argv) and argv[0] == "--latest"
    user_args = argv[1:] if latest else argv
    pythons, primary = choose_pythons()
    log("versions: " + ", ".join(f"{full_version(p)} ({p})" for p in pythons)
        + f"; primary (whole suite): {full_version(primary)}")
    started = time.monotonic()
    outcomes = [run_version(p, p == primary, user_args, latest) for p in pythons]
    report(outcomes, time.monotonic() - started)
    failed = [o.status for o in outcomes if o.status != 0]
    return failed[0] if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
