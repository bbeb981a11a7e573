"""pytest entry point: CPython's loop-generic asyncio tests on pyloop.

By default the must-pass tests of the current milestone (must_pass.toml) run,
and every one of them must pass.  PYLOOP_CONFORMANCE selects:

    (unset) / current   the current milestone
    <name>              another milestone of must_pass.toml
    full                every loop-generic test (slow; expect failures
                        until pyloop is complete)
    off                 skip

The runner itself is exercised on stock asyncio (no pyloop needed): the
catalog must classify every test class, and a crash and a hang must be
reported as such with the remaining tests resumed.
"""

import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
BAD = ("failed", "errored", "hung", "crashed")


def _env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [REPO] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.pop("PYLOOP_CONFORMANCE_SELFTEST", None)
    env.update(extra)
    return env


def _runner(args, timeout, **env):
    return subprocess.run([sys.executable, "-m", "tests.conformance", *args],
                          cwd=REPO, env=_env(**env), capture_output=True,
                          text=True, timeout=timeout)


def _pyloop_unusable():
    r = subprocess.run(
        [sys.executable, "-c", "import pyloop; pyloop.new_event_loop().close()"],
        cwd=REPO, env=_env(), capture_output=True, text=True, timeout=120)
    if r.returncode:
        lines = r.stderr.strip().splitlines()
        return lines[-1] if lines else f"exit status {r.returncode}"
    return None


def test_catalog_classifies_every_test():
    r = _runner(["--check"], timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_runner_reports_hang_and_crash_and_resumes(tmp_path):
    out = tmp_path / "selftest.json"
    ids = ["test_huge_content", "test_sock_accept", "test_sock_client_fail"]
    args = ["--loop", "asyncio", "--timeout", "3", "-q", "--jobs", "1",
            "--results-dir", str(tmp_path), "--json", str(out)]
    for name in ids:
        args += ["--id", f"test_sock_lowlevel.SockTests.{name}"]
    r = _runner(args, timeout=120, PYLOOP_CONFORMANCE_SELFTEST=(
        "hang:SockTests.test_huge_content,crash:SockTests.test_sock_accept"))
    data = json.loads(out.read_text())
    status = {t["method"]: t["status"] for t in data["tests"]}
    assert status == {"test_huge_content": "hung", "test_sock_accept": "crashed",
                      "test_sock_client_fail": "passed"}, r.stdout + r.stderr


def test_pyloop_conformance():
    mode = os.environ.get("PYLOOP_CONFORMANCE", "current")
    if mode == "off":
        pytest.skip("PYLOOP_CONFORMANCE=off")
    problem = _pyloop_unusable()
    if problem:
        pytest.skip(f"pyloop is not importable: {problem}")
    if mode == "full":
        args, limit, what = ["--tag", "full"], 3600, "all loop-generic tests"
    else:
        args = ["--milestone", mode, "--timeout", "15"]
        # The whole catalog (m3: ~830-900 tests from 3.12 on), also while the test command
        # runs another Python's suite beside this one (tools/matrix.py).
        limit, what = 900, f"must-pass tests of milestone {mode!r}"
    # tools/matrix.py gives each Python version its own directory: two may run at once.
    results = os.environ.get("PYLOOP_CONFORMANCE_RESULTS") or os.path.join(HERE, "results")
    json_path = os.path.join(results, "pytest-last.json")
    r = _runner(["--loop", "pyloop", "-q", "--results-dir", results, "--json", json_path] + args,
                timeout=limit)
    assert os.path.exists(json_path), r.stdout + r.stderr
    with open(json_path) as f:
        data = json.load(f)
    run = [t for t in data["tests"] if t["status"] != "excluded"]
    assert run, f"selection of {what} is empty"
    bad = [t for t in data["tests"] if t["status"] in BAD]
    lines = _describe(bad)
    lines += [f"fixture  {fx['unit']} {fx['desc']}: {fx['status']}: {fx['reason']}"
              for fx in data["fixtures"]]
    lines += [f"catalog  {p}" for p in data["catalog_problems"]]
    assert not lines, (
        f"{len(bad)} of {len(run)} {what} did not pass on pyloop "
        f"(details: {results}/pyloop-*.md):\n" + "\n".join(lines))


def _describe(bad, collapse=5):
    """One line per test; a reason shared by more than `collapse` tests (say,
    pyloop failing to import) is given once with a count."""
    by_reason = {}
    for t in bad:
        by_reason.setdefault((t["status"], t.get("reason")), []).append(t["id"])
    lines = []
    for (status, reason), ids in by_reason.items():
        if len(ids) > collapse:
            lines.append(f"{status:8s} {len(ids)} tests ({ids[0]}, ...): {reason}")
        else:
            lines += [f"{status:8s} {i}: {reason}" for i in ids]
    return lines
