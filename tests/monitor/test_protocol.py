"""The monitor socket under abuse: garbage, oversized and slow clients, other users.

A pyloop loop runs a ticker in a background thread and is served in-process; after
each abuse the ticker must still tick and the socket still answer.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import time
from types import SimpleNamespace

import pytest

import pyloop
from pyloop import monitor
from pyloop.monitor._client import MonitorClient
from pyloop.monitor._server import MAX_CLIENTS, MAX_REQUEST, _private_dir, peer_uid

TIMEOUT = 30.0


@pytest.fixture
def served(tmp_path):
    loop = pyloop.new_event_loop()
    ticks = [0]
    started = threading.Event()

    async def ticker():
        while True:
            ticks[0] += 1
            await asyncio.sleep(0.002)

    def run():
        ticking = loop.create_task(ticker(), name="ticker")
        loop.call_soon(started.set)
        loop.run_forever()
        ticking.cancel()
        loop.run_until_complete(asyncio.gather(ticking, return_exceptions=True))

    thread = threading.Thread(target=run)
    thread.start()
    assert started.wait(TIMEOUT)
    path = tmp_path / "monitor.sock"
    server = monitor.serve(path)
    try:
        yield SimpleNamespace(loop=loop, ticks=ticks, server=server, path=path)
    finally:
        server.close()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(TIMEOUT)
        loop.close()


def _still_ticking(ns) -> None:
    before = ns.ticks[0]
    deadline = time.monotonic() + TIMEOUT
    while ns.ticks[0] <= before + 3:
        assert time.monotonic() < deadline, "the loop stopped ticking"
        time.sleep(0.001)
    with MonitorClient(path=str(ns.path)) as client:
        assert client.request("stats")["metrics"]["running"]


def test_garbage_and_oversized_requests_get_errors(served):
    callbacks = monitor.metrics(served.loop).callbacks
    with MonitorClient(path=str(served.path)) as client:
        for data, error in [(b"not json\n", "malformed request: not JSON"),
                            (b"\xff\xfe\x00garbage\n", "malformed request: not JSON"),
                            (b"[1, 2, 3]\n", "not a JSON object"),
                            (b'{"cmd": "exec", "code": "import os"}\n', "unknown command 'exec'"),
                            (b'{"no": "cmd"}\n', "unknown command None"),
                            (b"x" * (MAX_REQUEST + 10) + b"\n", "request too large")]:
            reply = client.send_raw(data)
            assert reply["ok"] is False and error in reply["error"], reply
            _still_ticking(served)
        # The connection survived all of it.
        assert client.request("hello")["pid"] == os.getpid()
        assert client.request("stats", id=7)["id"] == 7
        # A request that never ends: answered, then the connection is closed.
        reply = client.send_raw(b"y" * (3 * MAX_REQUEST))
        assert reply["ok"] is False and "request too large" in reply["error"]
        with pytest.raises(Exception, match="closed the connection"):
            client.read_reply()
    _still_ticking(served)
    assert monitor.metrics(served.loop).callbacks > callbacks


def test_a_client_that_stops_reading_is_dropped_and_never_blocks_the_loop(served):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(TIMEOUT)
    sock.connect(str(served.path))
    request = b'{"cmd": "?"}\n'             # a cheap (error) reply each
    sent = 0
    try:
        # Replies pile up on the server until it gives up on this client.
        while sent < 400_000:
            sock.sendall(request * 100)
            sent += 100
            if sent % 5_000 == 0:
                _still_ticking(served)
    except (BrokenPipeError, ConnectionResetError):
        pass
    _still_ticking(served)
    # Whatever was sent before the drop, then the end of the stream (or a reset:
    # the server closed with our unread requests in its buffer).
    sock.settimeout(TIMEOUT)
    total = 0
    try:
        while chunk := sock.recv(1 << 20):
            total += len(chunk)
    except ConnectionResetError:
        pass
    sock.close()
    assert sent < 400_000, "the server never dropped the client"


def test_half_requests_and_vanished_clients(served):
    idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    idle.connect(str(served.path))
    idle.sendall(b'{"cmd": "sta')              # and then nothing
    for _ in range(5):                         # ask for tasks (work for the loop) and vanish
        gone = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        gone.connect(str(served.path))
        gone.sendall(b'{"cmd": "tasks"}\n')
        gone.close()
    _still_ticking(served)
    with MonitorClient(path=str(served.path)) as client:
        names = {t["name"] for t in client.request("tasks")["tasks"]}
    assert "ticker" in names
    idle.close()


def test_at_most_max_clients(served):
    clients = [MonitorClient(path=str(served.path)) for _ in range(MAX_CLIENTS)]
    try:
        for c in clients:
            c.request("hello")
        extra = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        extra.settimeout(TIMEOUT)
        extra.connect(str(served.path))
        reply = json.loads(extra.makefile("rb").readline())
        extra.close()
        assert reply["ok"] is False and "too many" in reply["error"]
    finally:
        for c in clients:
            c.close()
    _still_ticking(served)


def test_the_socket_answers_its_own_user(served):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(served.path))
        assert peer_uid(sock) == os.geteuid()
    assert stat.S_IMODE(os.stat(served.path).st_mode) == 0o600


def _second_user() -> tuple[int, int] | None:
    """A uid/gid other than ours: an existing unprivileged user, or one we create (as root)."""
    if os.geteuid() != 0:
        return None
    name = "pyloopmon"
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        useradd = shutil.which("useradd")
        if useradd is None:
            return None
        if subprocess.run([useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                          capture_output=True).returncode != 0:
            return None
        entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid


def _connect_as(uid: int, gid: int, path: str) -> str:
    """Fork, become uid/gid, connect to path, report what happened."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:                            # the child: no locks, no logging, only syscalls
        outcome = b"?"
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(TIMEOUT)
            try:
                sock.connect(path)
            except PermissionError:
                outcome = b"connect: permission denied"
            else:
                # Nothing sent: a refused client is told so at once (and sending
                # to a socket the server closed would only race with that).
                data = b""
                while b"\n" not in data:
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                outcome = b"reply: " + data.split(b"\n")[0]
        except BaseException as exc:
            outcome = f"error: {exc!r}".encode()
        finally:
            os.write(write_end, outcome)
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        outcome = f.read().decode()
    os.waitpid(pid, 0)
    return outcome


def test_a_second_user_is_refused(served):
    user = _second_user()
    if user is None:
        pytest.skip("needs root (with useradd, or a second user) to connect as another user")
    uid, gid = user
    # Served from a directory anyone may enter, so that only the socket's own
    # protections are tested.
    public = tempfile.mkdtemp(prefix="pyloop-monitor-test-")
    try:
        os.chmod(public, 0o755)
        served.server.close()
        served.path = os.path.join(public, "monitor.sock")
        served.server = monitor.serve(served.path)
        # The socket's mode keeps the other user out...
        assert _connect_as(uid, gid, served.path) == "connect: permission denied"
        # ... and with the file opened up by mistake, SO_PEERCRED still does.
        os.chmod(served.path, 0o666)
        outcome = _connect_as(uid, gid, served.path)
        assert outcome.startswith("reply: "), outcome
        reply = json.loads(outcome[len("reply: "):])
        assert reply["ok"] is False and "permission denied" in reply["error"]
        _still_ticking(served)
    finally:
        served.server.close()
        shutil.rmtree(public, ignore_errors=True)


def test_private_directory_checks(tmp_path):
    good = tmp_path / "good"
    _private_dir(str(good))
    assert stat.S_IMODE(os.stat(good).st_mode) == 0o700
    _private_dir(str(good))                 # again: fine
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    os.chmod(loose, 0o755)
    with pytest.raises(PermissionError, match="open to other users"):
        _private_dir(str(loose))
    link = tmp_path / "link"
    link.symlink_to(good)
    with pytest.raises(PermissionError, match="not a directory"):
        _private_dir(str(link))


def test_serve_is_one_server_per_process(tmp_path):
    first = monitor.serve(tmp_path / "a.sock")
    try:
        assert monitor.serve() is first
        assert monitor.serve(tmp_path / "a.sock") is first
        with pytest.raises(RuntimeError, match="already serves"):
            monitor.serve(tmp_path / "b.sock")
    finally:
        first.close()
    assert first.closed and not (tmp_path / "a.sock").exists()
    first.close()                           # idempotent
    # A socket left by a process that died is replaced; anything else is not.
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(tmp_path / "c.sock"))
    stale.close()
    with monitor.serve(tmp_path / "c.sock") as second:
        assert second is not first and not second.closed
    (tmp_path / "d.sock").write_text("not a socket")
    with pytest.raises(FileExistsError):
        monitor.serve(tmp_path / "d.sock")
    for bad in (b"bytes", 42):
        with pytest.raises(TypeError):
            monitor.serve(bad)
    with pytest.raises(ValueError):
        monitor.serve(tmp_path / "e.sock", stall_threshold=0)


def test_an_asyncio_loop_is_served_too(tmp_path):
    async def main():
        server = monitor.serve(tmp_path / "aio.sock")       # registers the running loop
        sleeper = asyncio.create_task(asyncio.sleep(3600), name="aio-sleeper")
        try:
            def ask():
                with MonitorClient(path=str(server.path)) as client:
                    loops = client.request("loops")["loops"]
                    mine = next(entry for entry in loops if not entry["pyloop"])
                    return client.request("stats", loop=mine["id"]), client.request("tasks", loop=mine["id"])
            return await asyncio.to_thread(ask)
        finally:
            sleeper.cancel()
            server.close()

    stats, tasks = asyncio.run(main())
    assert stats["metrics"] is None and stats["live_tasks"] == 2
    assert "asyncio" in stats["loop"]["type"]
    assert "aio-sleeper" in {t["name"] for t in tasks["tasks"]}
