"""Every ```python block of every guide in docs/guides/ is a program that runs and stops by itself.

Each block runs in its own subprocess (this interpreter, the repository first on ``sys.path``)
with a timeout and must exit 0.  A block that cannot run on its own is marked with an HTML
comment ``<!-- not run: reason -->`` just before it.  A block that imports a library this
environment lacks (aiohttp, uvicorn, anyio) is skipped, which ``CI=true`` counts as a failure.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pyloop._core.loop", reason="pyloop is not built")

ROOT = Path(__file__).resolve().parents[2]
GUIDES = ROOT / "docs" / "guides"
BLOCK = re.compile(r"(<!-- not run: [^>]+-->\s*\n)?```python\n(.*?)```", re.S)
IMPORT = re.compile(r"^\s*(?:import|from)\s+(\w+)", re.M)
TIMEOUT = 120


def _blocks():
    for guide in sorted(GUIDES.glob("*.md")):
        for n, match in enumerate(BLOCK.finditer(guide.read_text(encoding="utf-8")), 1):
            marks = [pytest.mark.skip(reason=match.group(1).strip())] if match.group(1) else []
            yield pytest.param(guide, match.group(2), id=f"{guide.stem}-{n}", marks=marks)


@pytest.mark.parametrize("guide, code", list(_blocks()))
def test_guide_block_runs(guide, code, tmp_path):
    for module in set(IMPORT.findall(code)):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{guide.name} needs {module}")
    script = tmp_path / "block.py"
    script.write_text(code, encoding="utf-8")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("PYTHONASYNCIODEBUG", None)
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, text=True,
                          capture_output=True, timeout=TIMEOUT)
    assert proc.returncode == 0, f"{guide.name}:\n{code}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    # A block's comments show what it prints: `print(...)  # Loop, the same loop` means the
    # output has "Loop" (the comment up to its first ':' or ',').
    expected = [re.split(r"[:,]", m.group(1))[0].strip()
                for m in re.finditer(r"^\s*print\(.*\)\s+# (.+)$", code, re.M)]
    for text in expected:
        assert text in proc.stdout, f"{guide.name}: {text!r} not printed:\n{proc.stdout}"


def test_the_index_lists_every_guide():
    index = (GUIDES / "README.md").read_text(encoding="utf-8")
    for guide in GUIDES.glob("*.md"):
        if guide.name != "README.md":
            assert f"]({guide.name})" in index, f"docs/guides/README.md does not list {guide.name}"


def test_every_guide_has_a_block_that_runs():
    for guide in GUIDES.glob("*.md"):
        if guide.name != "README.md":
            blocks = [m for m in BLOCK.finditer(guide.read_text(encoding="utf-8")) if not m.group(1)]
            assert blocks, f"{guide.name} has no python block that runs"


# ---- testing.md: its python blocks are test files, run by pytest with the guide's own ini block ----

def test_testing_guide_runs_under_pytest_with_pyloop(tmp_path):
    pytest.importorskip("pytest_asyncio", reason="testing.md is about pytest-asyncio")
    text = (GUIDES / "testing.md").read_text(encoding="utf-8")
    (tmp_path / "pytest.ini").write_text(re.search(r"```ini\n(.*?)```", text, re.S).group(1), encoding="utf-8")
    tests = [m.group(2) for m in BLOCK.finditer(text) if not m.group(1) and "def test_" in m.group(2)]
    for n, code in enumerate(tests, 1):
        (tmp_path / f"test_guide_{n}.py").write_text(code, encoding="utf-8")
    env = dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")   # the plugins named below, installed or not
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    for name in ("PYTEST_ADDOPTS", "PYTHONASYNCIODEBUG"):
        env.pop(name, None)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "pyloop.pytest_plugin", "-p", "pytest_asyncio.plugin",
                           "-p", "no:cacheprovider", "-q", str(tmp_path)], cwd=tmp_path, env=env, text=True,
                          capture_output=True, timeout=TIMEOUT)
    count = sum(code.count("\nasync def test_") + code.count("\ndef test_") for code in tests)
    assert proc.returncode == 0 and f"{count} passed" in proc.stdout, proc.stdout + proc.stderr
