"""pyloop.gunicorn: real gunicorn masters with 2 pyloop workers, reloaded and stopped under load.

Each test writes a small app (aiohttp for AiohttpWorker, plain ASGI for UvicornWorker) to a
temporary directory and starts ``python -m gunicorn -k pyloop.gunicorn.<Worker> -w 2`` on it
as a subprocess.  The listening socket is bound here, on 127.0.0.1 port 0, and handed to
gunicorn as ``--bind fd://N``: the port comes from the OS and nothing can take it between
choosing and binding.  The tests wait on observable events with generous deadlines, never on
sleeps: the error log (``--error-logfile``) says when a worker starts shutting down, and a slow
request stays in flight until the test creates a ``release`` file.

The app's endpoints (HTTP/1.1, one request per connection):
  ``/``            -> ``ok <pid>``;
  ``/loop``        -> ``<module>.<class> <pid>`` of ``asyncio.get_running_loop()``;
  ``/hold?tag=T``  -> creates ``started-T``, waits until the ``release`` file exists, then
                      answers ``done T <pid>``: a request in flight for as long as the test wants.
"""

from __future__ import annotations

import http.client
import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("pyloop._core.loop", reason="pyloop is not built")

import pyloop  # noqa: E402


def need(module):
    """Skip without ``module`` -- except under CI (``CI`` set), which must run these tests."""
    if importlib.util.find_spec(module) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{module} is a test dependency and must be installed under CI",
                        pytrace=False)
        pytest.skip(f"{module} is not installed")



ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 60.0
LOOP_NAME = f"{pyloop.Loop.__module__}.{pyloop.Loop.__qualname__}"

pytestmark = [pytest.mark.timeout(240),
              pytest.mark.skipif(not hasattr(os, "fork"), reason="gunicorn forks (POSIX)")]

AIOHTTP_APP = textwrap.dedent("""
    import asyncio, logging, os
    from pathlib import Path
    from aiohttp import web

    HERE = Path(__file__).parent

    async def ok(request):
        return web.Response(text=f"ok {os.getpid()}")

    async def loop_type(request):
        lp = asyncio.get_running_loop()
        return web.Response(text=f"{type(lp).__module__}.{type(lp).__qualname__} {os.getpid()}")

    async def hold(request):
        tag = request.query["tag"]
        (HERE / f"started-{tag}").touch()
        while not (HERE / "release").exists():
            await asyncio.sleep(0.02)
        return web.Response(text=f"done {tag} {os.getpid()}")

    async def on_shutdown(app):
        logging.getLogger("gunicorn.error").info("app shutting down")

    async def make_app():
        app = web.Application()
        app.router.add_get("/", ok)
        app.router.add_get("/loop", loop_type)
        app.router.add_get("/hold", hold)
        app.on_shutdown.append(on_shutdown)
        return app
""")

ASGI_APP = textwrap.dedent("""
    import asyncio, os
    from pathlib import Path
    from urllib.parse import parse_qs

    HERE = Path(__file__).parent

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        path = scope["path"]
        if path == "/loop":
            lp = asyncio.get_running_loop()
            body = f"{type(lp).__module__}.{type(lp).__qualname__} {os.getpid()}"
        elif path == "/hold":
            tag = parse_qs(scope["query_string"].decode())["tag"][0]
            (HERE / f"started-{tag}").touch()
            while not (HERE / "release").exists():
                await asyncio.sleep(0.02)
            body = f"done {tag} {os.getpid()}"
        else:
            body = f"ok {os.getpid()}"
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": body.encode()})
""")


class Kind:
    def __init__(self, worker, module, source, target, shutdown_marker):
        self.worker = worker
        self.module = module
        self.source = source
        self.target = target
        self.shutdown_marker = shutdown_marker      # what a worker logs when it starts stopping


KINDS = {
    "aiohttp": Kind("pyloop.gunicorn.AiohttpWorker", "aioapp", AIOHTTP_APP, "aioapp:make_app",
                    "app shutting down"),
    "asgi": Kind("pyloop.gunicorn.UvicornWorker", "asgiapp", ASGI_APP, "asgiapp:app",
                 "Shutting down"),
}


@pytest.fixture(params=sorted(KINDS))
def kind(request):
    name = request.param
    need("gunicorn")
    need("aiohttp" if name == "aiohttp" else "uvicorn")
    return KINDS[name]


def wait_for(predicate, what, deadline=DEADLINE):
    end = time.monotonic() + deadline
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def get(port, path, timeout=DEADLINE):
    """GET on a fresh connection (Connection: close); (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def children(pid):
    """Pids of the live (not zombie) children of pid, from /proc."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(entry))
    return found


class Gunicorn:
    """A gunicorn master running the app of ``kind`` with 2 workers."""

    def __init__(self, kind, tmp_path):
        self.dir = tmp_path
        (tmp_path / f"{kind.module}.py").write_text(kind.source)
        self.kind = kind
        self.errlog = tmp_path / "error.log"
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(ROOT), str(tmp_path), os.environ.get("PYTHONPATH", "")]))
        self.output = open(tmp_path / "output.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-k", kind.worker, "-w", "2",
             "--bind", f"fd://{self.sock.fileno()}", "--chdir", str(tmp_path),
             "--no-control-socket", "--graceful-timeout", "60", "--timeout", "120",
             "--error-logfile", str(self.errlog), "--log-level", "info", kind.target],
            pass_fds=[self.sock.fileno()], env=env, stdout=self.output,
            stderr=subprocess.STDOUT)

    def log(self):
        try:
            return self.errlog.read_text()
        except FileNotFoundError:
            return ""

    def workers(self):
        return children(self.proc.pid)

    def wait_ready(self):
        # Both workers forked and the app answering (a request sent before a
        # worker accepts waits in the listen backlog).
        wait_for(lambda: len(self.workers()) == 2, "2 workers")
        status, body = get(self.port, "/loop")
        assert status == 200
        return body

    def wait_shutting_down(self, pid):
        pattern = re.compile(rf"\[{pid}\] \[INFO\] {re.escape(self.kind.shutdown_marker)}")
        wait_for(lambda: pattern.search(self.log()), f"worker {pid} to start shutting down")

    def hold(self, tag):
        """Start a /hold request in a thread; return it once the app is inside it."""
        result = {}

        def run():
            try:
                result["response"] = get(self.port, f"/hold?tag={tag}")
            except Exception as exc:       # noqa: BLE001 -- reported by the test
                result["error"] = exc

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        wait_for(lambda: (self.dir / f"started-{tag}").exists(), f"request {tag} in flight")
        return thread, result

    def release(self):
        (self.dir / "release").touch()

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(DEADLINE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.sock.close()
        self.output.close()

    def diagnostics(self):
        return self.log() + (self.dir / "output.log").read_text(errors="replace")


@pytest.fixture
def server(kind, tmp_path):
    g = Gunicorn(kind, tmp_path)
    try:
        yield g
    finally:
        g.close()


class Hammer:
    """Issues requests back to back, each on a new connection, until stopped."""

    def __init__(self, port):
        self.port = port
        self.failures = []
        self.served_by = {}              # pid -> responses
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                status, body = get(self.port, "/")
            except Exception as exc:       # noqa: BLE001 -- every failure counts
                self.failures.append(repr(exc))
                continue
            if status != 200 or not body.startswith("ok "):
                self.failures.append(f"{status} {body!r}")
                continue
            pid = int(body.split()[1])
            self.served_by[pid] = self.served_by.get(pid, 0) + 1

    def served_by_any(self, pids, at_least):
        return sum(self.served_by.get(pid, 0) for pid in pids) >= at_least

    def stop(self):
        self._stop.set()
        self._thread.join(DEADLINE)
        assert not self._thread.is_alive()


def test_workers_serve_on_pyloop(server):
    body = server.wait_ready()
    assert body.split()[0] == LOOP_NAME, server.diagnostics()
    for _ in range(20):
        status, body = get(server.port, "/loop")
        assert status == 200
        loop_name, pid = body.split()
        assert loop_name == LOOP_NAME and int(pid) in server.workers()


def test_hup_replaces_the_workers_and_loses_no_request(server):
    server.wait_ready()
    old = server.workers()
    in_flight, result = server.hold("hup")
    hammer = Hammer(server.port)
    try:
        wait_for(lambda: hammer.served_by_any(old, 20), "requests served before the reload")
        server.proc.send_signal(signal.SIGHUP)
        # New workers come up and serve while the old ones finish what they hold.
        new = wait_for(lambda: (lambda now: now if len(now) == 2 else None)(server.workers() - old),
                       "2 new workers")
        for pid in old:
            server.wait_shutting_down(pid)
        assert server.workers() & old, "the old worker holding a request must wait for it"
        wait_for(lambda: hammer.served_by_any(new, 20), "requests served by the new workers")
        server.release()
        in_flight.join(DEADLINE)
        wait_for(lambda: not (server.workers() & old), "the old workers to exit")
        wait_for(lambda: hammer.served_by_any(new, 40), "more requests after the old workers left")
    finally:
        hammer.stop()
    assert "error" not in result, result
    assert result["response"][0] == 200 and result["response"][1].startswith("done hup ")
    assert hammer.failures == [], (hammer.failures[:5], server.diagnostics())
    assert server.proc.poll() is None


def test_term_finishes_requests_in_flight_and_exits(server):
    server.wait_ready()
    workers = server.workers()
    held = [server.hold(f"t{i}") for i in range(4)]
    server.proc.send_signal(signal.SIGTERM)
    for pid in workers:
        server.wait_shutting_down(pid)
    assert server.proc.poll() is None, "the master must wait for the requests in flight"
    server.release()
    for thread, result in held:
        thread.join(DEADLINE)
        assert "error" not in result, (result, server.diagnostics())
        assert result["response"][0] == 200 and result["response"][1].startswith("done t")
    assert server.proc.wait(DEADLINE) == 0, server.diagnostics()
    assert not children(server.proc.pid)


def test_worker_lookup_without_its_packages_says_what_is_missing():
    code = textwrap.dedent("""
        import sys
        sys.modules["uvicorn"] = None          # as if it were not installed
        import pyloop.gunicorn as g
        assert "UvicornWorker" in dir(g)
        try:
            g.UvicornWorker
        except ImportError as exc:
            print("ImportError:", exc)
        try:
            g.NoSuchWorker
        except AttributeError:
            print("AttributeError")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=DEADLINE)
    assert out.returncode == 0, out.stderr
    assert "ImportError: pyloop.gunicorn.UvicornWorker needs gunicorn and uvicorn" in out.stdout
    assert "AttributeError" in out.stdout


def test_worker_classes_are_gunicorn_workers():
    for module in ("gunicorn", "aiohttp", "uvicorn"):
        need(module)
    from gunicorn.workers.base import Worker

    import pyloop.gunicorn as g

    for name in g.__all__:
        cls = getattr(g, name)
        assert issubclass(cls, Worker)
        assert cls.__module__ == "pyloop.gunicorn" and cls.__qualname__ == name
        assert cls.__doc__
    from gunicorn.util import load_class
    assert load_class("pyloop.gunicorn.UvicornWorker") is g.UvicornWorker
