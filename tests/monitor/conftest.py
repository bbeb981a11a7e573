"""Fixtures for the monitor tests: a real process that serves its monitor (tests/monitor/_app.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APP = Path(__file__).with_name("_app.py")
TIMEOUT = 60


def child_env(runtime_dir: Path, monitor: str | None = "1") -> dict[str, str]:
    """The environment of a child: this checkout first on the path, its own runtime dir."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env["XDG_RUNTIME_DIR"] = str(runtime_dir)
    env.pop("PYLOOP_MONITOR", None)
    if monitor is not None:
        env["PYLOOP_MONITOR"] = monitor
    return env


@dataclass
class App:
    proc: subprocess.Popen
    pid: int
    env: dict[str, str]
    runtime_dir: Path

    @property
    def socket(self) -> Path:
        return self.runtime_dir / "pyloop" / f"monitor-{self.pid}.sock"

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        """``python -m pyloop ARGS`` in the same environment (runtime dir) as the app."""
        env = dict(self.env)
        env.pop("PYLOOP_MONITOR", None)
        return subprocess.run([sys.executable, "-m", "pyloop", *args], env=env, capture_output=True,
                              text=True, timeout=TIMEOUT)

    def stop(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode, self.proc.stderr.read()


@pytest.fixture
def runtime_dir(tmp_path):
    path = tmp_path / "run"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
def start_app(runtime_dir):
    """start_app(*args, monitor="1") -> App: tests/monitor/_app.py, up and serving."""
    apps: list[App] = []

    def start(*args: str, monitor: str | None = "1") -> App:
        env = child_env(runtime_dir, monitor)
        proc = subprocess.Popen([sys.executable, str(APP), *args], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
        line = proc.stdout.readline()
        if not line.startswith("READY"):
            proc.kill()
            raise AssertionError(f"the app did not start: {line!r} {proc.stderr.read()}")
        app = App(proc, int(line.split()[1]), env, runtime_dir)
        apps.append(app)
        return app

    yield start
    for app in apps:
        app.stop()
