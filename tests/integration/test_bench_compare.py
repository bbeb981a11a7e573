"""The main job's harness, bench/compare.py: a short run works and touches only what it should.

Running the benchmark must not modify tracked files: its reports go to ``--out`` (default
``bench/results/``, ignored by git), and only ``--publish`` rewrites ``bench/RESULTS.md`` and
``bench/plots/``.  The runs here are one tiny micro-benchmark on two loops, from a copy of
``bench/`` so the repository's own published figures are never at stake.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import pyloop

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def bench_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "bench"
    shutil.copytree(ROOT / "bench", copy, ignore=shutil.ignore_patterns("results", "__pycache__", "loadgen"))
    return copy


def run_compare(bench: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)   # the workers must import the same pyloop as this test run
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(pyloop.__file__).resolve().parents[1]), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run(
        [sys.executable, str(bench / "compare.py"), "--quick", "--loops", "asyncio,pyloop",
         "--bench", "call_soon_chain", "--no-plot", *args],
        capture_output=True, text=True, timeout=600, env=env, cwd=bench.parent)


def test_a_run_writes_its_report_to_out_and_leaves_the_published_figures_alone(bench_copy: Path):
    published = (bench_copy / "RESULTS.md").read_bytes()
    out = bench_copy / "results"
    proc = run_compare(bench_copy)
    assert proc.returncode == 0, proc.stderr
    report = (out / "RESULTS.md").read_text()
    assert "call_soon" in report and "pyloop" in report
    assert (bench_copy / "RESULTS.md").read_bytes() == published


def test_publish_rewrites_the_published_page(bench_copy: Path):
    proc = run_compare(bench_copy, "--publish")
    assert proc.returncode == 0, proc.stderr
    page = (bench_copy / "RESULTS.md").read_text()
    assert "--publish" in page and "call_soon" in page
