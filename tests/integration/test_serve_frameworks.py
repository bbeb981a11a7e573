"""pyloop.serve() runs what aiohttp and uvicorn give a user, with no adapter: on 2 workers, over HTTP.

Each case starts a real program (APP below) in a subprocess: an aiohttp ``web.Application``, an
``AppRunner``, an async factory of an Application, a Starlette app (ASGI, served by uvicorn), a
uvicorn ``Config``, a uvicorn ``Server``, and a factory returning a bare ASGI function.  The
program's ``ready`` callback prints the port the OS picked and the workers' pids on stdout; the
test waits for that line (no sleeps), asks over real HTTP until both workers have answered, then
checks a graceful stop: a request in flight when SIGTERM comes is answered, the framework's own
shutdown hooks run in every worker (aiohttp ``on_cleanup``, the ASGI lifespan's shutdown), and the
program exits 0.
"""

from __future__ import annotations

import os
import queue
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
pytest.importorskip("aiohttp")
pytest.importorskip("uvicorn")
pytest.importorskip("starlette")

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="pyloop.serve forks (POSIX)")

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 60.0

APP = textwrap.dedent('''
    import asyncio, contextlib, os, sys
    from pyloop.serving import current_worker, serve

    KIND = sys.argv[1]

    def who():
        loop = type(asyncio.get_running_loop()).__module__.partition(".")[0]     # pyloop, uvloop, asyncio
        return f"{os.getpid()} {current_worker().index} {loop}"

    def ready(info):
        print("READY", info.port, *info.pids, flush=True)

    def cleaned_up():
        print(f"cleanup {os.getpid()}", file=sys.stderr, flush=True)

    kwargs = {}
    if KIND.startswith("aiohttp"):
        from aiohttp import web

        async def hello(request):
            return web.Response(text=who())

        async def wait_stop(request):
            # Streams "waiting" at once, then answers once the worker is told to stop: a request
            # in flight across SIGTERM.
            resp = web.StreamResponse()
            await resp.prepare(request)
            await resp.write(b"waiting\\n")
            await current_worker().stopping.wait()
            await resp.write(f"stopping {who()}\\n".encode())
            await resp.write_eof()
            return resp

        async def on_cleanup(app):
            cleaned_up()

        def make_app():
            app = web.Application()
            app.router.add_get("/", hello)
            app.router.add_get("/wait-stop", wait_stop)
            app.on_cleanup.append(on_cleanup)
            return app

        async def app_factory():
            return make_app()

        target = {"aiohttp-app": lambda: make_app(), "aiohttp-runner": lambda: web.AppRunner(make_app()),
                  "aiohttp-factory": lambda: app_factory,
                  # aiohttp's own SIGINT/SIGTERM handlers: the workers must keep theirs.
                  "aiohttp-runner-signals": lambda: web.AppRunner(make_app(), handle_signals=True),
                  }[KIND]()
    else:
        import uvicorn
        from starlette.applications import Starlette
        from starlette.responses import PlainTextResponse, StreamingResponse
        from starlette.routing import Route

        async def hello(request):
            return PlainTextResponse(who())

        async def wait_stop(request):
            async def body():
                yield b"waiting\\n"
                await current_worker().stopping.wait()
                yield f"stopping {who()}\\n".encode()
            return StreamingResponse(body())

        @contextlib.asynccontextmanager
        async def lifespan(app):
            if KIND == "starlette-startup-fails":
                raise RuntimeError("startup failed on purpose")
            yield
            cleaned_up()

        app = Starlette(routes=[Route("/", hello), Route("/wait-stop", wait_stop)], lifespan=lifespan)

        async def bare_asgi(scope, receive, send):   # a plain ASGI function, under the Starlette app
            await app(scope, receive, send)

        if KIND in ("starlette", "starlette-startup-fails"):
            target = app
        elif KIND == "uvicorn-config":
            target = uvicorn.Config(app, port=0, log_level="warning")       # its address is used
        elif KIND == "uvicorn-config-asyncio":
            target = uvicorn.Config(app, port=0, log_level="warning", loop="asyncio")  # its loop too
        elif KIND == "uvicorn-server":
            target = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
            kwargs["port"] = 0                   # given here, it overrides the Config's 8000
        else:
            def target():
                return bare_asgi
    sys.exit(serve(target, workers=2, ready=ready, **kwargs))
''')

# What each program serves, and the loop its workers must run (pyloop's unless a Config names one).
KINDS = {"aiohttp-app": "pyloop", "aiohttp-runner": "pyloop", "aiohttp-factory": "pyloop",
         "starlette": "pyloop", "uvicorn-config": "pyloop", "uvicorn-config-asyncio": "asyncio",
         "uvicorn-server": "pyloop", "asgi-factory": "pyloop"}


class Program:
    """APP in a subprocess; stdout and stderr collected line by line in threads."""

    def __init__(self, tmp_path: Path, kind: str, *, new_session: bool = False,
                 expect_ready: bool = True) -> None:
        self.script = tmp_path / "app.py"
        self.script.write_text(APP)
        path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        env = dict(os.environ, PYTHONPATH=path)
        env.pop("PYTHONASYNCIODEBUG", None)
        self.proc = subprocess.Popen([sys.executable, str(self.script), kind], env=env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=new_session)
        self.stdout: queue.Queue[str | None] = queue.Queue()
        self.stderr_lines: list[str] = []
        self._stderr_done = threading.Event()
        threading.Thread(target=self._pump_stdout, daemon=True).start()
        threading.Thread(target=self._pump_stderr, daemon=True).start()
        self.pids: list[int] = []
        if not expect_ready:
            return
        deadline = time.monotonic() + DEADLINE
        while True:
            try:
                line = self.stdout.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"not ready within {DEADLINE} s:\n{self.stderr()}")
            if line is None:
                self.proc.wait(DEADLINE)
                pytest.fail(f"exited ({self.proc.returncode}) before it was ready:\n{self.stderr()}")
            if line.startswith("READY "):
                _, port, *pids = line.split()
                self.port, self.pids = int(port), [int(p) for p in pids]
                break

    def _pump_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.stdout.put(line.rstrip("\n"))
        self.stdout.put(None)

    def _pump_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_lines.append(line.rstrip("\n"))
        self._stderr_done.set()

    def stderr(self) -> str:
        return "\n".join(self.stderr_lines)

    def finish(self) -> tuple[int, str]:
        """Exit status once the parent exits and every worker has closed stderr; stderr."""
        code = self.proc.wait(DEADLINE)
        assert self._stderr_done.wait(DEADLINE), f"a worker kept stderr open:\n{self.stderr()}"
        return code, self.stderr()

    def connect(self, path: str) -> socket.socket:
        conn = socket.create_connection(("127.0.0.1", self.port), timeout=DEADLINE)
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".encode())
        return conn

    def get(self, path: str = "/") -> str:
        with self.connect(path) as conn:
            data = _read_all(conn)
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), data
        return body.decode()

    def __enter__(self) -> Program:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(DEADLINE)
        for pid in self.pids:       # never leave a worker behind, never signal a stranger
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    ours = str(self.script).encode() in f.read().split(b"\0")
            except OSError:
                continue
            if ours:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def _read_all(conn: socket.socket) -> bytes:
    data = b""
    while chunk := conn.recv(65536):
        data += chunk
    return data


@pytest.mark.parametrize("kind, loop", KINDS.items(), ids=list(KINDS))
def test_framework_app_on_two_workers_serves_and_stops_gracefully(tmp_path, kind, loop):
    with Program(tmp_path, kind) as program:
        assert len(program.pids) == 2 and program.proc.pid not in program.pids
        answers = [program.get().split() for _ in range(100)]
        assert {name for _, _, name in answers} == {loop}, answers
        assert {int(pid) for pid, _, _ in answers} <= set(program.pids)
        assert {int(index) for _, index, _ in answers} <= {0, 1}
        # SO_REUSEPORT (Linux) hashes each connection to one of the two listening sockets: 100
        # connections all landing on one has probability 2**-99.
        if sys.platform.startswith("linux"):
            assert {int(pid) for pid, _, _ in answers} == set(program.pids), answers

        # A request in flight when SIGTERM comes is answered.
        with program.connect("/wait-stop") as conn:
            data = b""
            while b"waiting" not in data:
                chunk = conn.recv(65536)
                assert chunk, data
                data += chunk
            program.proc.send_signal(signal.SIGTERM)
            data += _read_all(conn)
        assert re.search(rb"stopping (\d+) [01] " + loop.encode(), data), data
        code, log = program.finish()
        assert code == 0, log
        for pid in program.pids:
            assert f"cleanup {pid}" in log, log          # the framework's shutdown hooks ran
        assert "Traceback" not in log and "killed" not in log, log


def test_ctrl_c_reaches_the_workers_as_one_graceful_stop_despite_aiohttp_signal_handlers(tmp_path):
    # AppRunner(handle_signals=True) installs aiohttp's SIGINT/SIGTERM handlers in each worker;
    # serve() takes the signals back once the app is set up, so the terminal's Ctrl-C (SIGINT to
    # the whole process group) still ends in one graceful stop driven by the parent.
    with Program(tmp_path, "aiohttp-runner-signals", new_session=True) as program:
        assert program.get().split()[2] == "pyloop"
        with program.connect("/wait-stop") as conn:
            data = b""
            while b"waiting" not in data:
                chunk = conn.recv(65536)
                assert chunk, data
                data += chunk
            os.killpg(program.proc.pid, signal.SIGINT)
            data += _read_all(conn)
        assert re.search(rb"stopping (\d+) [01] pyloop", data), data
        code, log = program.finish()
        assert code == 0, log
        assert "SIGINT received: stopping 2 workers" in log, log
        for pid in program.pids:
            assert f"cleanup {pid}" in log, log
        assert "Traceback" not in log and "GracefulExit" not in log, log


def test_asgi_lifespan_startup_failure_stops_the_server_and_says_so(tmp_path):
    with Program(tmp_path, "starlette-startup-fails", expect_ready=False) as program:
        code, log = program.finish()
        assert code == 1, log
        assert "RuntimeError: startup failed on purpose" in log, log
        # uvicorn exits with status 3 when the lifespan startup fails.
        assert re.search(r"worker [01] \(pid \d+\) exited with status 3 before it was ready: its error is "
                         r"above", log), log
        assert "a worker failed to start: stopping" in log, log


def test_a_uvicorn_config_gives_the_address_unless_serve_is_given_one():
    # In this process: the address is decided before anything forks.
    import uvicorn

    from pyloop.serving import _address
    from pyloop.serving._adapters import adapt

    async def app(scope, receive, send):  # pragma: no cover - never served here
        pass

    config = adapt(uvicorn.Config(app, host="0.0.0.0", port=8123), 1.0)
    server = adapt(uvicorn.Server(uvicorn.Config(app)), 1.0)
    assert _address(config, *_serve_defaults()) == ("0.0.0.0", 8123)
    assert _address(server, *_serve_defaults()) == ("127.0.0.1", 8000)        # uvicorn's defaults
    assert _address(config, "127.0.0.1", 0) == ("127.0.0.1", 0)              # given: they win
    assert _address(config, None, 9000) == (None, 9000)
    assert _address(adapt(app, 1.0), *_serve_defaults()) == ("127.0.0.1", 0)  # not a Config


def _serve_defaults():
    import inspect

    from pyloop.serving import serve
    params = inspect.signature(serve).parameters
    return params["host"].default, params["port"].default
