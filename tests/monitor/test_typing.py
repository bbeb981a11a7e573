"""pyloop.monitor is fully annotated: it checks with ``mypy --strict`` (as pyloop.serving does)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_monitor_checks_with_mypy_strict(tmp_path):
    try:
        import mypy  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("mypy is a test dependency and is missing", pytrace=False)
        pytest.skip("mypy is not installed")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("MYPYPATH", None)
    proc = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent",
                           "--cache-dir", str(tmp_path / "cache"), "--no-color-output",
                           "pyloop/monitor", "pyloop/_core/metrics.py", "pyloop/__main__.py"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
