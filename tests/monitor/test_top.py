"""``python -m pyloop top PID`` driven in a real terminal: tmux send-keys / capture-pane.

tmux is a test dependency (tools/ci_setup.sh installs it): missing, this test skips
locally and fails under CI.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time

import pytest

from .conftest import TIMEOUT


def _tmux() -> str:
    found = shutil.which("tmux")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("tmux is a test dependency (bash tools/ci_setup.sh) and is missing", pytrace=False)
        pytest.skip("tmux is not installed (bash tools/ci_setup.sh installs it)")
    return found


class Terminal:
    """One tmux pane of a private tmux server, running one command."""

    def __init__(self, tmux: str, socket: str, env: dict[str, str]) -> None:
        self.tmux = tmux
        self.socket = socket
        self.env = env

    def run(self, *args: str) -> str:
        proc = subprocess.run([self.tmux, "-S", self.socket, *args], env=self.env, capture_output=True,
                              text=True, timeout=TIMEOUT)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "top")

    def wait_for(self, *needles: str) -> str:
        deadline = time.monotonic() + TIMEOUT
        while True:
            screen = self.screen()
            if all(n in screen for n in needles):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"never saw {needles} on the screen:\n{screen}")
            time.sleep(0.05)


def test_top_in_a_real_terminal(start_app, tmp_path):
    tmux = _tmux()
    app = start_app()
    env = dict(app.env)
    env.pop("PYLOOP_MONITOR", None)
    env["TERM"] = "xterm-256color"
    env.pop("TMUX", None)
    command = (f"{shlex.quote(sys.executable)} -m pyloop top {app.pid} --interval 0.2; "
               f"echo TOP-EXITED-$?; sleep {int(TIMEOUT)}")
    term = Terminal(tmux, str(tmp_path / "tmux.sock"), env)
    term.run("new-session", "-d", "-s", "top", "-x", "160", "-y", "40", command)
    try:
        screen = term.wait_for("busy", "callbacks/s", "member-a", "s sorts by name")
        assert f"pid {app.pid}" in screen and "lag p50" in screen and "p99" in screen
        for header in ("TASK", "STATE", "AGE", "WAITED BY", "IN", "AWAITING"):
            assert header in screen
        assert "ticker _app.py:" in screen
        assert "TaskGroup" in screen and "JoinSet" in screen and "gather" in screen
        assert "no stall now" in screen
        term.run("send-keys", "-t", "top", "s")
        term.wait_for("s sorts by age")
        term.run("send-keys", "-t", "top", "q")
        screen = term.wait_for("TOP-EXITED-0")
    finally:
        subprocess.run([tmux, "-S", str(tmp_path / "tmux.sock"), "kill-server"], env=env,
                       capture_output=True, timeout=TIMEOUT)
