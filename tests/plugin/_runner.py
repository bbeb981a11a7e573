"""Run a project's test files under pytest in a subprocess, with pyloop's plugin, and read what they saw.

Each test file written by a test here reports the loop it ran on with ``seen(...)`` (from the
``conftest.py`` that :func:`project` writes): one ``SEEN <label> <kind>`` line on stdout, where
kind is ``pyloop`` or the loop's class.  :func:`run_pytest` returns the exit status, the output and
``{label: kind}``.

Plugin autoloading is off in the subprocess and the plugins are named with ``-p``, so the run is the
same whether pyloop is installed (its entry point would load the plugin too) or used from the
source tree; tests/plugin/test_entry_point.py checks the entry point itself.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 180

CONFTEST = '''
import asyncio

import pyloop


def seen(label, loop=None):
    loop = loop or asyncio.get_running_loop()
    kind = "pyloop" if isinstance(loop, pyloop.Loop) else type(loop).__qualname__
    print(f"\\nSEEN {label} {kind}", flush=True)
'''

INI = """
[pytest]
asyncio_default_fixture_loop_scope = function
"""


@dataclass
class Result:
    returncode: int
    output: str
    seen: dict[str, str]

    def __str__(self) -> str:
        return f"exit status {self.returncode}\n{self.output}"


def project(where: Path, files: dict[str, str], ini: str = INI) -> Path:
    """Write a project: ``pytest.ini`` (``ini``), the ``seen`` conftest and ``files``."""
    (where / "pytest.ini").write_text(textwrap.dedent(ini), encoding="utf-8")
    (where / "conftest.py").write_text(CONFTEST, encoding="utf-8")
    for name, text in files.items():
        (where / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return where


def run_pytest(where: Path, *args: str, plugins=("pytest_asyncio.plugin", "anyio.pytest_plugin"),
               env: dict[str, str] | None = None) -> Result:
    command = [sys.executable, "-m", "pytest", "-p", "pyloop.pytest_plugin", "-p", "no:cacheprovider",
               "-s", "-rA"]
    for plugin in plugins:
        command += ["-p", plugin]
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), full_env.get("PYTHONPATH")]))
    full_env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    for name in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTHONASYNCIODEBUG"):
        full_env.pop(name, None)
    full_env.update(env or {})
    proc = subprocess.run([*command, *args], cwd=where, env=full_env, capture_output=True, text=True,
                          timeout=TIMEOUT)
    output = proc.stdout + proc.stderr
    seen = dict(re.findall(r"^SEEN (\S+) (\S+)$", proc.stdout, re.M))
    return Result(proc.returncode, output, seen)
