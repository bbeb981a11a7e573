"""``python -m pyloop ps|stats PID`` against a real process that serves its monitor."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time

from .conftest import APP, TIMEOUT, child_env

BLOCKING_LINE = next(n for n, line in enumerate(APP.read_text().splitlines(), 1)
                     if "the blocking line" in line)


def test_ps_prints_the_task_tree(start_app):
    app = start_app()
    result = app.cli("ps", str(app.pid))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith(f"process {app.pid}, loop pyloop._eventloop.loop.Loop")
    assert "├── [TaskGroup] 'gatherer'" in out or "└── [TaskGroup] 'gatherer'" in out
    assert out.count("[gather] ") == 2
    assert "[JoinSet] 'member-a'" in out and "[JoinSet] 'member-b'" in out
    assert "awaiting JoinSet.join_next" in out
    assert "'ticker' pending" in out and "ticker at " in out

    result = app.cli("ps", str(app.pid), "--json")
    assert result.returncode == 0, result.stderr
    reply = json.loads(result.stdout)
    names = {t["name"] for t in reply["tasks"]}
    assert {"gatherer", "joiner", "ticker", "member-a", "member-b"} <= names
    # PYLOOP_MONITOR turned task ages on before the tasks were created.
    assert all(t["age"] is not None for t in reply["tasks"] if t["name"] != "Task-1")


def test_stats_text_and_json(start_app):
    app = start_app()
    result = app.cli("stats", str(app.pid), "--json")
    assert result.returncode == 0, result.stderr
    reply = json.loads(result.stdout)
    assert reply["ok"] and reply["loop"]["running"] and reply["loop"]["pyloop"]
    m = reply["metrics"]
    assert m["callbacks"] > 0 and m["iterations"] > 0 and m["live_tasks"] >= 8
    assert 0 <= m["busy_ratio"] <= 1 and m["lag_count"] == sum(m["lag_buckets"])
    assert reply["stall"] is None and reply["stall_threshold"] == 0.1
    later = json.loads(app.cli("stats", str(app.pid), "--json").stdout)["metrics"]
    assert later["callbacks"] > m["callbacks"]          # the ticker ticks

    result = app.cli("stats", str(app.pid))
    assert result.returncode == 0, result.stderr
    assert f"process {app.pid}, loop pyloop._eventloop.loop.Loop" in result.stdout
    for label in ("busy", "callbacks", "fd events", "loop lag", "p99", "live tasks", "stall"):
        assert label in result.stdout


def test_a_blocked_loop_is_seen_where_it_is_blocked(start_app, tmp_path):
    block = tmp_path / "block"
    app = start_app("--block-file", str(block))
    block.touch()
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:
            reply = json.loads(app.cli("stats", str(app.pid), "--json").stdout)
            if reply["stall"] is not None or time.monotonic() > deadline:
                break
        stall = reply["stall"]
        assert stall is not None, "no stall seen"
        assert stall["where"] == f"{APP}:{BLOCKING_LINE} in ticker"
        assert stall["task"] == "ticker" and not stall["ended"]
        # The tasks live on the blocked thread: ps says so instead of hanging.
        result = app.cli("ps", str(app.pid))
        assert result.returncode == 1
        assert "did not answer" in result.stderr and "blocked" in result.stderr
        text = app.cli("stats", str(app.pid)).stdout
        assert "STALL NOW" in text and f"_app.py:{BLOCKING_LINE} in ticker" in text
    finally:
        block.unlink()
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        reply = json.loads(app.cli("stats", str(app.pid), "--json").stdout)
        if reply["stall"] is None and reply["last_stall"] is not None:
            break
    assert reply["last_stall"]["ended"] and reply["last_stall"]["blocked_for"] >= 0.1
    assert app.cli("ps", str(app.pid)).returncode == 0


def test_the_socket_is_private_and_removed_at_exit(start_app):
    app = start_app()
    st = os.stat(app.socket)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert stat.S_IMODE(os.stat(app.socket.parent).st_mode) == 0o700
    rc, err = app.stop()
    assert rc == 0, err
    assert not app.socket.exists()


def test_monitor_off_or_at_a_path(start_app, runtime_dir, tmp_path):
    app = start_app(monitor="0")
    assert not app.socket.exists()
    result = app.cli("ps", str(app.pid))
    assert result.returncode == 1 and "does not serve its monitor" in result.stderr
    assert "PYLOOP_MONITOR=1" in result.stderr

    path = tmp_path / "elsewhere.sock"
    app = start_app(monitor=str(path))
    assert path.exists() and not app.socket.exists()
    result = app.cli("stats", str(app.pid), "--socket", str(path))
    assert result.returncode == 0, result.stderr


def test_command_line_errors(start_app):
    app = start_app()
    result = subprocess.run([sys.executable, "-m", "pyloop"], env=app.env, capture_output=True, text=True,
                            timeout=TIMEOUT)
    assert result.returncode == 2 and "ps,top,stats" in result.stderr
    result = app.cli("stats", str(app.pid), "--loop", "12345")
    assert result.returncode == 1 and "no loop 12345" in result.stderr
    result = app.cli("stats", "999999999")
    assert result.returncode == 1 and "does not serve" in result.stderr


def test_python_m_pyloop_does_not_serve_itself(start_app):
    # PYLOOP_MONITOR=1 exported in the shell reaches the client too; it must not
    # leave a socket of its own behind (or serve while it runs).
    app = start_app()
    env = dict(app.env)         # PYLOOP_MONITOR=1 kept
    result = subprocess.run([sys.executable, "-m", "pyloop", "stats", str(app.pid)], env=env,
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in app.socket.parent.iterdir()) == [app.socket.name]


FORKER = r"""
import asyncio, os, sys
import pyloop

async def main(tag):
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.add_reader(sys.stdin.fileno(), lambda: done.done() or done.set_result(None))
    sys.stdout.write(f"{tag} {os.getpid()}\n")    # one write: the two processes share the pipe
    sys.stdout.flush()
    await done
    loop.remove_reader(sys.stdin.fileno())

pid = os.fork()
if pid == 0:
    pyloop.run(main("CHILD"))
    os._exit(0)             # no atexit: its socket stays behind
pyloop.run(main("PARENT"))
os.waitpid(pid, 0)
"""


def test_a_forked_child_serves_its_own_socket_and_dead_ones_are_swept(runtime_dir, start_app):
    proc = subprocess.Popen([sys.executable, "-c", FORKER], env=child_env(runtime_dir), text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        pids = dict(proc.stdout.readline().split() for _ in range(2))
        env = child_env(runtime_dir, None)
        for tag in ("PARENT", "CHILD"):
            result = subprocess.run([sys.executable, "-m", "pyloop", "ps", pids[tag]], env=env,
                                    capture_output=True, text=True, timeout=TIMEOUT)
            assert result.returncode == 0, result.stderr
            assert result.stdout.startswith(f"process {pids[tag]}, ")
    finally:
        proc.stdin.close()
        proc.wait(TIMEOUT)
    sockets = runtime_dir / "pyloop"
    assert sorted(p.name for p in sockets.iterdir()) == [f"monitor-{pids['CHILD']}.sock"]
    app = start_app()           # the next process to serve there sweeps the dead one away
    assert sorted(p.name for p in sockets.iterdir()) == [app.socket.name]
