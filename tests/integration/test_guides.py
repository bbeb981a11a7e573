"""Every ```python block of every guide in docs/guides/ is a program that runs and stops by itself.

Each block runs in its own subprocess (this interpreter, the repository first on ``sys.path``)
with a timeout and must exit 0.  A block that cannot run on its own is marked with an HTML
comment ``<!-- not run: reason -->`` just before it.  A block that imports a library this
environment lacks (aiohttp, uvicorn, anyio) is skipped, which ``CI=true`` counts as a failure.

The uvicorn guide's command line (``uvicorn main:app --loop pyloop:new_event_loop --workers N``) is
run too, as a subprocess with its ``main.py`` block, and stopped with SIGTERM.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.util
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
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


def test_uvicorn_cli_with_workers_runs_as_the_guide_says(tmp_path):
    # The uvicorn guide's command line, run for real: its main.py block as main.py, its command
    # with 2 workers and a port from the OS.  One request must be served on pyloop's loop, and
    # SIGTERM must stop the parent and both workers cleanly (exit status 0).
    if importlib.util.find_spec("uvicorn") is None:
        pytest.skip("needs uvicorn")
    section = (GUIDES / "uvicorn.md").read_text(encoding="utf-8")
    section = section[section.index("## From the command line, with workers"):]
    (tmp_path / "main.py").write_text(BLOCK.search(section).group(2), encoding="utf-8")
    command = shlex.split(re.search(r"```sh\n(uvicorn .*)\n```", section).group(1))
    assert command[:2] == ["uvicorn", "main:app"] and "--loop" in command, command
    command[command.index("--workers") + 1] = "2"
    command += ["--port", "0"]
    script = Path(sys.executable).with_name("uvicorn")
    argv = ([str(script)] if script.exists() else [sys.executable, "-m", "uvicorn"]) + command[1:]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("PYTHONASYNCIODEBUG", None)
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    lines: queue.Queue[str | None] = queue.Queue()
    log: list[str] = []

    def pump():
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    def wait_for(pattern: str) -> re.Match[str]:
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no line matching {pattern!r} in {TIMEOUT} s:\n" + "\n".join(log))
            if line is None:
                pytest.fail(f"uvicorn exited before {pattern!r}:\n" + "\n".join(log))
            log.append(line)
            if m := re.search(pattern, line):
                return m

    threading.Thread(target=pump, daemon=True).start()
    try:
        port = int(wait_for(r"Uvicorn running on http://127\.0\.0\.1:(\d+)").group(1))
        workers = {wait_for(r"Started server process \[(\d+)\]").group(1) for _ in range(2)}
        assert len(workers) == 2, log
        # uvicorn logs nothing once a worker listens on the shared socket (it binds in the parent
        # and each worker listens when it starts): a refused connection is the only sign that
        # none does yet, so that alone is retried.
        deadline = time.monotonic() + TIMEOUT
        while True:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
            try:
                conn.request("GET", "/")
                break
            except ConnectionRefusedError:
                conn.close()
                assert time.monotonic() < deadline, "\n".join(log)
                time.sleep(0.05)
        with contextlib.closing(conn):
            resp = conn.getresponse()
            assert (resp.status, resp.read()) == (200, b"pyloop._eventloop.loop")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(TIMEOUT) == 0, "\n".join(log)
        while (line := lines.get(timeout=TIMEOUT)) is not None:
            log.append(line)
        text = "\n".join(log)
        for pid in workers:
            assert f"Finished server process [{pid}]" in text, text
        assert "Traceback" not in text, text
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(TIMEOUT)


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
