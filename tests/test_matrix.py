"""The test command's version matrix (tools/matrix.py, tools/test.sh, .ci/run) and the versions the
package says it supports.

Each CPython version with pins (constraints/py3.X.txt) is a version the test command runs the suite
on, and pyproject.toml has a classifier for it; ``requires-python`` admits the oldest.  The matrix's
choices -- which interpreters, which tests on which version, what the summary says -- are checked
here without running a suite.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _load_matrix():
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        spec = importlib.util.spec_from_file_location("_pyloop_matrix", ROOT / "tools" / "matrix.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module         # dataclasses look their module up there
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "tools"))
    return module


matrix = _load_matrix()


def _pinned_versions():
    return sorted(tuple(map(int, m.groups())) for p in (ROOT / "constraints").glob("py*.txt")
                  if (m := re.fullmatch(r"py(\d+)\.(\d+)\.txt", p.name)))


def test_a_classifier_for_every_tested_version_and_no_other():
    classifiers = PYPROJECT["project"]["classifiers"]
    listed = sorted(tuple(map(int, m.groups())) for c in classifiers
                    if (m := re.fullmatch(r"Programming Language :: Python :: (\d+)\.(\d+)", c)))
    assert listed == _pinned_versions()
    assert len(listed) >= 3
    oldest = listed[0]
    assert PYPROJECT["project"]["requires-python"] == f">={oldest[0]}.{oldest[1]}"


def test_the_pytest_plugin_is_registered_by_entry_point():
    assert PYPROJECT["project"]["entry-points"]["pytest11"] == {"pyloop": "pyloop.pytest_plugin"}


def test_primary_runs_the_whole_suite_and_the_others_what_can_differ():
    args, what = matrix.pytest_args([], primary=True, latest=False)
    assert args == [] and what == "whole suite"
    args, what = matrix.pytest_args([], primary=False, latest=False)
    assert args == ["--ignore=tests/test_style.py", "--ignore=tests/core", "--ignore=tests/integration",
                    "--deselect=tests/integration/test_wheel.py"]
    for kept in ("tests/loop", "tests/transports", "tests/process", "tests/api", "tests/conformance",
                 "tests/reliability", "tests/plugin"):
        assert not any(kept in a for a in args)


def test_pytest_args_run_as_given_on_every_version_but_the_wheel_once():
    user = ["tests/loop", "-x", "-k", "timer"]
    assert matrix.pytest_args(user, primary=True, latest=False)[0] == user
    assert matrix.pytest_args(user, primary=False, latest=False)[0] == [
        *user, "--deselect=tests/integration/test_wheel.py"]
    assert matrix.pytest_args([], primary=True, latest=True)[0] == ["tests/integration",
                                                                     "tests/test_environment.py"]


def test_every_trimmed_path_exists():
    for path in (*matrix.PRIMARY_ONLY, matrix.WHEEL_TESTS):
        assert (ROOT / path).exists(), path


def test_ci_needs_two_versions(monkeypatch):
    monkeypatch.delenv("PYTHON", raising=False)
    monkeypatch.setenv("CI", "true")
    monkeypatch.setattr(matrix.devenv, "find_pythons", lambda: ["/usr/bin/python3.11"])
    with pytest.raises(SystemExit, match="needs at least two"):
        matrix.choose_pythons()
    monkeypatch.delenv("CI")
    assert matrix.choose_pythons() == (["/usr/bin/python3.11"], "/usr/bin/python3.11")


def test_python_names_the_one_interpreter(monkeypatch):
    monkeypatch.setenv("PYTHON", "/opt/python3.12")
    monkeypatch.setenv("CI", "true")
    assert matrix.choose_pythons() == (["/opt/python3.12"], "/opt/python3.12")


def test_the_primary_is_the_interpreter_running_the_matrix(monkeypatch):
    monkeypatch.delenv("PYTHON", raising=False)
    monkeypatch.delenv("CI", raising=False)
    found = {"/p/3.11": (3, 11), "/p/3.12": (3, 12), "/p/3.13": (3, 13)}
    monkeypatch.setattr(matrix.devenv, "find_pythons", lambda: list(found))
    monkeypatch.setattr(matrix.devenv, "interpreter_version", found.__getitem__)
    pythons, primary = matrix.choose_pythons()
    mine = next((p for p, v in found.items() if v == sys.version_info[:2]), "/p/3.11")
    assert primary == mine and pythons[0] == mine and sorted(pythons) == sorted(found)


@pytest.mark.parametrize("line, summary", [
    ("1203 passed, 12 skipped, 2 xfailed in 480.31s (0:08:00)", "1203 passed, 12 skipped, 2 xfailed"),
    ("===== 3 failed, 97 passed in 2.00s =====", "3 failed, 97 passed"),
    ("9 passed in 30.58s", "9 passed"),
])
def test_the_summary_line_is_read(line, summary):
    assert matrix.SUMMARY.match(line).group(1) == summary


def test_conformance_counts_read_the_json_written_during_the_run(tmp_path):
    path = tmp_path / "pytest-last.json"
    assert matrix.conformance_counts(path, 0) == "not run"
    path.write_text('{"python": "3.12.1", "selection": "milestone m3", "totals": {"passed": 410, '
                    '"failed": 1, "errored": 0, "skipped": 7, "hung": 0, "crashed": 0, "excluded": 30}}')
    assert matrix.conformance_counts(path, 0) == (
        "410/418 passed (410 passed, 1 failed, 7 skipped; milestone m3; test.test_asyncio of 3.12.1)")
    assert matrix.conformance_counts(path, path.stat().st_mtime + 10) == "not run"   # an older run's
    path.write_text('{"python": "3.13.0", "selection": {"module": [], "k": [], "milestone": "current"}, '
                    '"totals": {"passed": 2, "failed": 0, "skipped": 0, "excluded": 1}}')
    assert matrix.conformance_counts(path, 0) == (
        "2/2 passed (2 passed; milestone current; test.test_asyncio of 3.13.0)")


def test_two_lanes_on_two_cores_unless_told(monkeypatch):
    monkeypatch.delenv("PYLOOP_MATRIX_JOBS", raising=False)
    monkeypatch.setattr(matrix.os, "cpu_count", lambda: 2)
    assert matrix.jobs() == 2
    monkeypatch.setattr(matrix.os, "cpu_count", lambda: 1)
    assert matrix.jobs() == 1
    monkeypatch.setenv("PYLOOP_MATRIX_JOBS", "1")
    monkeypatch.setattr(matrix.os, "cpu_count", lambda: 16)
    assert matrix.jobs() == 1


def test_each_version_has_its_own_conformance_results_and_cache():
    # Two suites at once must not write the same files (tools/matrix.py runs two lanes).
    assert "PYLOOP_CONFORMANCE_RESULTS" in (ROOT / "tests" / "conformance" / "test_conformance.py").read_text()
    source = (ROOT / "tools" / "matrix.py").read_text()
    assert "cache_dir=" in source and "PYLOOP_CONFORMANCE_RESULTS" in source


def test_ci_runs_every_version():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "unset PYTHON" in ci and "bash tools/test.sh" in ci
    assert "tools/matrix.py" in (ROOT / "tools" / "test.sh").read_text(encoding="utf-8")
