"""uvicorn + starlette served on pyloop, in a background thread and in a subprocess.

uvicorn takes its loop from ``Config(loop=...)``: besides "auto"/"asyncio"/"uvloop"
it accepts an import string naming a loop factory, so ``loop="pyloop:new_event_loop"``
runs the server on pyloop with no policy changes.  Every handler reports which
loop served it.

The listening socket is bound and put in listening state by the test before the
server starts, so a client may connect at once (the kernel queues it) and no test
waits for "server started" by polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass, field

import pytest

pytest.importorskip("pyloop._core.loop", reason="pyloop is not built")
uvicorn = pytest.importorskip("uvicorn")
pytest.importorskip("starlette")
aiohttp = pytest.importorskip("aiohttp")
from starlette.applications import Starlette  # noqa: E402
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse  # noqa: E402
from starlette.routing import Route, WebSocketRoute  # noqa: E402
from starlette.websockets import WebSocket, WebSocketDisconnect  # noqa: E402

from .loops import TEST_TIMEOUT, run, running_loop_kind  # noqa: E402

UVICORN_LOOPS = {"pyloop": "pyloop:new_event_loop", "asyncio": "asyncio"}
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass
class AppState:
    served_on: set = field(default_factory=set)
    events: list = field(default_factory=list)
    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


def make_app(state: AppState) -> Starlette:
    async def loop_kind(request):
        state.served_on.add(running_loop_kind())
        return JSONResponse({"loop": running_loop_kind()})

    async def echo(request):
        state.served_on.add(running_loop_kind())
        body = await request.body()
        return Response(body[::-1], media_type="application/octet-stream",
                        headers={"x-length": str(len(body))})

    async def stream(request):
        count = int(request.query_params["count"])

        async def chunks():
            for i in range(count):
                yield f"line {i}\n".encode()
                await asyncio.sleep(0)

        return StreamingResponse(chunks(), media_type="text/plain")

    async def blocks(request):
        count = int(request.query_params["count"])
        size = int(request.query_params["size"])

        async def chunks():
            for i in range(count):
                yield bytes([i % 251]) * size

        return StreamingResponse(chunks(), media_type="application/octet-stream")

    async def slow(request):
        state.entered.set()
        # Blocks a worker thread of the server's own executor, not the loop.
        released = await asyncio.get_running_loop().run_in_executor(None, state.release.wait, TEST_TIMEOUT)
        return PlainTextResponse("finished" if released else "timed out")

    def sync_handler(request):
        # Starlette runs plain functions in anyio's worker threads, off the loop.
        return JSONResponse({"thread": threading.current_thread().name != "uvicorn",
                             "n": int(request.query_params["n"]) ** 2})

    async def ws_echo(websocket: WebSocket):
        state.served_on.add(running_loop_kind())
        await websocket.accept()
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    state.events.append(("ws-disconnect", message.get("code")))
                    return
                if message.get("text") == "bye":
                    await websocket.close(code=4001, reason="bye to you")
                    return
                if message.get("text") is not None:
                    await websocket.send_text(message["text"][::-1])
                else:
                    await websocket.send_bytes(message["bytes"][::-1])
        except WebSocketDisconnect as exc:  # pragma: no cover - depends on timing
            state.events.append(("ws-disconnect", exc.code))

    @contextlib.asynccontextmanager
    async def lifespan(app):
        state.events.append(("startup", running_loop_kind()))
        yield
        state.events.append(("shutdown", running_loop_kind()))

    return Starlette(routes=[
        Route("/loop", loop_kind),
        Route("/echo", echo, methods=["POST"]),
        Route("/stream", stream),
        Route("/blocks", blocks),
        Route("/sync", sync_handler),
        Route("/slow", slow),
        WebSocketRoute("/ws", ws_echo),
    ], lifespan=lifespan)


def listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(512)
    return sock


class ThreadedServer:
    """``uvicorn.Server.run`` in a daemon thread, on the loop named by ``loop``.

    ``sock`` is a listening socket to serve (default: a fresh TCP one on 127.0.0.1).
    """

    def __init__(self, app, loop: str, http: str = "auto", sock: socket.socket | None = None,
                 **config_kwargs) -> None:
        self.sock = sock if sock is not None else listening_socket()
        if self.sock.family == socket.AF_INET:
            self.port = self.sock.getsockname()[1]
            self.base = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, loop=loop, http=http, lifespan="on", log_config=None,
                                log_level="warning", timeout_graceful_shutdown=TEST_TIMEOUT, **config_kwargs)
        self.server = uvicorn.Server(config)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="uvicorn", daemon=True)

    def _run(self) -> None:
        try:
            self.server.run(sockets=[self.sock])
        except BaseException as exc:  # SystemExit from a failed startup included
            self.error = exc

    def __enter__(self) -> "ThreadedServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(TEST_TIMEOUT)
        assert not self.thread.is_alive(), "uvicorn did not shut down"
        self.sock.close()
        if self.error is not None:
            raise self.error

    def __exit__(self, *exc_info) -> None:
        self.stop()


def test_http_and_websocket(loop_factory, loop_name):
    state = AppState()

    async def client(base):
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/loop") as resp:
                assert resp.status == 200
                assert await resp.json() == {"loop": loop_name}
            payload = os.urandom(300_000)
            async with session.post(f"{base}/echo", data=io.BytesIO(payload)) as resp:
                assert resp.status == 200
                assert resp.headers["x-length"] == str(len(payload))
                assert await resp.read() == payload[::-1]
            async with session.get(f"{base}/stream", params={"count": 500}) as resp:
                assert resp.headers["Transfer-Encoding"] == "chunked"
                lines = [line async for line in resp.content]
            assert lines == [f"line {i}\n".encode() for i in range(500)]

            results = await asyncio.gather(*(session.get(f"{base}/loop") for _ in range(100)))
            for resp in results:
                assert (await resp.json())["loop"] == loop_name
                resp.release()
            results = await asyncio.gather(*(session.get(f"{base}/sync", params={"n": i}) for i in range(40)))
            assert [await resp.json() for resp in results] == [{"thread": True, "n": i * i} for i in range(40)]
            for resp in results:
                resp.release()

            async with session.ws_connect(f"{base}/ws") as ws:
                await ws.send_str("stressed")
                assert (await ws.receive(timeout=30)).data == "desserts"
                await ws.send_bytes(b"\x01\x02\x03")
                assert (await ws.receive(timeout=30)).data == b"\x03\x02\x01"
                await ws.send_str("bye")
                msg = await ws.receive(timeout=30)
                assert msg.type == aiohttp.WSMsgType.CLOSE
                assert (msg.data, msg.extra) == (4001, "bye to you")
            async with session.ws_connect(f"{base}/ws") as ws:
                await ws.send_str("ab")
                assert (await ws.receive(timeout=30)).data == "ba"
                await ws.close(code=4002)

    with ThreadedServer(make_app(state), UVICORN_LOOPS[loop_name]) as server:
        run(loop_factory, lambda: client(server.base))
    assert state.served_on == {loop_name}
    assert ("ws-disconnect", 4002) in state.events
    assert state.events[0] == ("startup", loop_name)
    assert state.events[-1] == ("shutdown", loop_name)


@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_pyloop_server_with_each_http_parser(pyloop_factory, http):
    pytest.importorskip(http)
    state = AppState()

    async def client(base):
        async with aiohttp.ClientSession() as session:
            for size in (0, 1, 65536, 1 << 20):
                payload = os.urandom(size)
                async with session.post(f"{base}/echo", data=io.BytesIO(payload)) as resp:
                    assert await resp.read() == payload[::-1]
            async with session.get(f"{base}/loop") as resp:
                assert await resp.json() == {"loop": "pyloop"}

    with ThreadedServer(make_app(state), "pyloop:new_event_loop", http=http) as server:
        run(pyloop_factory, lambda: client(server.base))
    assert state.served_on == {"pyloop"}


def test_graceful_shutdown_finishes_inflight_request(loop_factory, loop_name):
    """should_exit while a request is in flight: new connections are refused, the
    in-flight response is completed, the server then closes that connection,
    lifespan shutdown runs, run() returns.

    What uvicorn documents is the sequence (stop accepting, let in-flight requests
    finish, close the connections), not how it tells a keep-alive client to go:
    releases differ on whether the last response carries ``Connection: close``.
    So the client asks for keep-alive on a raw connection and checks that it reads
    the whole response and then end-of-stream, and that a header, if sent, says close.
    """
    state = AppState()

    async def refused(port) -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except ConnectionRefusedError:
            return True
        writer.close()
        await writer.wait_closed()
        return False

    async def client(server: ThreadedServer):
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n")
        await writer.drain()
        assert await loop.run_in_executor(None, state.entered.wait, TEST_TIMEOUT)
        server.server.should_exit = True
        # The server closes its listener before it waits for connections to finish.
        while not await refused(server.port):
            await asyncio.sleep(0.02)
        assert ("shutdown", "pyloop") not in state.events
        state.release.set()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TEST_TIMEOUT)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")[:-2]
        headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in header_lines)}
        body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), TEST_TIMEOUT)
        # The connection is not kept alive past shutdown: end-of-stream follows the response.
        rest = await asyncio.wait_for(reader.read(), TEST_TIMEOUT)
        writer.close()
        await writer.wait_closed()
        assert status_line.split()[1] == "200"
        assert body == b"finished"
        assert rest == b""
        assert headers.get("connection", "close").lower() == "close"

    server = ThreadedServer(make_app(state), "pyloop:new_event_loop")
    with server:
        run(loop_factory, lambda: client(server))
        server.thread.join(TEST_TIMEOUT)
        assert not server.thread.is_alive()
    assert state.events == [("startup", "pyloop"), ("shutdown", "pyloop")]


SUBPROCESS_SERVER = textwrap.dedent("""
    import asyncio, contextlib, signal, socket, sys
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    terminated = []
    # uvicorn re-raises a captured SIGTERM to the previous handler once it has
    # shut down; this one records it so the process can exit 0.
    signal.signal(signal.SIGTERM, lambda sig, frame: terminated.append(sig))

    async def slow(request):
        loop = type(asyncio.get_running_loop())
        print("ENTERED", loop.__module__, flush=True)
        while not server.should_exit:  # the test sends SIGTERM after reading ENTERED
            await asyncio.sleep(0.01)
        return PlainTextResponse("completed after SIGTERM")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        print("LIFESPAN SHUTDOWN", flush=True)

    app = Starlette(routes=[Route("/slow", slow)], lifespan=lifespan)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    print("PORT", sock.getsockname()[1], flush=True)
    server = uvicorn.Server(uvicorn.Config(app, loop="pyloop:new_event_loop", log_level="warning",
                                           timeout_graceful_shutdown=30))
    server.run(sockets=[sock])
    print("EXITED", terminated == [signal.SIGTERM], flush=True)
""")


def test_subprocess_sigterm_graceful_exit_0():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [REPO_ROOT, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-c", SUBPROCESS_SERVER], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith("PORT "), (line, proc.stderr.read() if proc.poll() is not None else "")
        port = int(line.split()[1])
        with socket.create_connection(("127.0.0.1", port), timeout=TEST_TIMEOUT) as conn:
            conn.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            assert proc.stdout.readline().split() == ["ENTERED", "pyloop._eventloop.loop"]
            proc.send_signal(signal.SIGTERM)
            response = b""
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                response += chunk
        head, _, body = response.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), response
        assert body == b"completed after SIGTERM"
        out, err = proc.communicate(timeout=TEST_TIMEOUT)
        assert proc.returncode == 0, err
        assert out.splitlines() == ["LIFESPAN SHUTDOWN", "EXITED True"], (out, err)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _read_responses(sock: socket.socket, count: int) -> list[tuple[bytes, bytes]]:
    """Read ``count`` HTTP/1.1 responses with Content-Length bodies: (status line, body)."""
    buf = b""
    responses = []
    while len(responses) < count:
        head_end = buf.find(b"\r\n\r\n")
        if head_end >= 0:
            head = buf[:head_end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(buf) >= head_end + 4 + length:
                responses.append((head.split("\r\n")[0].encode(), buf[head_end + 4:head_end + 4 + length]))
                buf = buf[head_end + 4 + length:]
                continue
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {len(responses)} responses"
        buf += chunk
    return responses


@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_pipelined_requests_in_one_write(pyloop_factory, http):
    """100 requests in one segment: uvicorn pauses reading while each is served
    (transport.pause_reading / resume_reading) and answers all of them in order."""
    pytest.importorskip(http)
    state = AppState()
    with ThreadedServer(make_app(state), "pyloop:new_event_loop", http=http) as server:
        requests = b"".join(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            for body in (f"request number {i}".encode() for i in range(100)))
        with socket.create_connection(("127.0.0.1", server.port), timeout=TEST_TIMEOUT) as conn:
            conn.sendall(requests)
            responses = _read_responses(conn, 100)
    assert [status for status, _ in responses] == [b"HTTP/1.1 200 OK"] * 100
    assert [body for _, body in responses] == [f"request number {i}".encode()[::-1] for i in range(100)]
    assert state.served_on == {"pyloop"}


def dechunk(body: bytes) -> bytes:
    """The payload of a chunked transfer-encoded HTTP body (no trailers)."""
    out = bytearray()
    pos = 0
    while True:
        eol = body.index(b"\r\n", pos)
        size = int(body[pos:eol], 16)
        if size == 0:
            return bytes(out)
        out += body[eol + 2:eol + 2 + size]
        pos = eol + 2 + size + 2


def test_slow_reader_gets_the_whole_stream(loop_name):
    """A client with a small receive buffer that reads in small pieces makes the
    server's transport pause writing (uvicorn waits for resume_writing); the
    4 MiB streaming response still arrives complete and in order."""
    state = AppState()
    count, size = 64, 65536
    with ThreadedServer(make_app(state), UVICORN_LOOPS[loop_name]) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=TEST_TIMEOUT) as conn:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
            conn.sendall(b"GET /blocks?count=%d&size=%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                         % (count, size))
            received = bytearray()
            while True:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                received += chunk
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"transfer-encoding: chunked" in head.lower()
    assert dechunk(body) == b"".join(bytes([i % 251]) * size for i in range(count))


def test_unix_socket_server(loop_factory, loop_name, tmp_path):
    state = AppState()
    path = str(tmp_path / "uvicorn.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen(64)

    async def client():
        connector = aiohttp.UnixConnector(path=path)
        async with aiohttp.ClientSession(connector=connector) as session:
            async with session.get("http://localhost/loop") as resp:
                assert await resp.json() == {"loop": "pyloop"}
            payload = os.urandom(500_000)
            async with session.post("http://localhost/echo", data=io.BytesIO(payload)) as resp:
                assert await resp.read() == payload[::-1]
            results = await asyncio.gather(*(session.get("http://localhost/loop") for _ in range(50)))
            for resp in results:
                assert resp.status == 200
                resp.release()

    with ThreadedServer(make_app(state), "pyloop:new_event_loop", sock=sock):
        run(loop_factory, client)
    assert state.served_on == {"pyloop"}


def test_keep_alive_timeout_closes_idle_connection(pyloop_factory):
    """uvicorn closes an idle keep-alive connection after timeout_keep_alive (a loop timer)."""
    state = AppState()
    with ThreadedServer(make_app(state), "pyloop:new_event_loop", timeout_keep_alive=0.3) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=TEST_TIMEOUT) as conn:
            conn.sendall(b"GET /loop HTTP/1.1\r\nHost: x\r\n\r\n")
            [(status, body)] = _read_responses(conn, 1)
            assert status == b"HTTP/1.1 200 OK" and b"pyloop" in body
            start = time.monotonic()
            assert conn.recv(1) == b""  # the server closed the idle connection
            assert 0.2 <= time.monotonic() - start < TEST_TIMEOUT


CLI_APP = textwrap.dedent("""
    import asyncio, os

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        body = f"{os.getpid()} {type(asyncio.get_running_loop()).__module__}".encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
""")


def test_cli_with_two_workers_on_pyloop(tmp_path):
    """``uvicorn --loop pyloop:new_event_loop --workers 2``: the deployment path.
    Each spawned worker runs its own pyloop loop on the shared listening socket;
    SIGTERM to the supervisor shuts both down and it exits 0.

    SIGTERM is sent once both workers have reported their startup complete: a
    worker still importing the app when the supervisor forwards SIGTERM dies
    without a lifespan shutdown (Python's default SIGTERM action), which is
    uvicorn's documented behaviour, not pyloop's."""
    (tmp_path / "cli_app.py").write_text(CLI_APP)
    sock = listening_socket()
    port = sock.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [REPO_ROOT, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--loop", "pyloop:new_event_loop", "--workers", "2",
         "--fd", str(sock.fileno()), "--app-dir", str(tmp_path), "--no-access-log", "cli_app:app"],
        pass_fds=[sock.fileno()], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err_lines: list[str] = []
    both_started = threading.Event()

    def read_stderr() -> None:
        for line in proc.stderr:
            err_lines.append(line)
            if sum("Application startup complete" in seen for seen in err_lines) >= 2:
                both_started.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        answers = []
        for _ in range(10):
            with socket.create_connection(("127.0.0.1", port), timeout=TEST_TIMEOUT) as conn:
                conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                [(status, body)] = _read_responses(conn, 1)
                assert status == b"HTTP/1.1 200 OK"
                answers.append(body.decode().split())
        assert {kind for _, kind in answers} == {"pyloop._eventloop.loop"}
        assert 1 <= len({pid for pid, _ in answers}) <= 2
        assert str(proc.pid) not in {pid for pid, _ in answers}  # served by workers, not the supervisor
        assert both_started.wait(TEST_TIMEOUT), "".join(err_lines)
        proc.send_signal(signal.SIGTERM)
        proc.wait(TEST_TIMEOUT)
        reader.join(TEST_TIMEOUT)
        err = "".join(err_lines)
        assert proc.returncode == 0, err
        assert err.count("Application shutdown complete") == 2, err
    finally:
        sock.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


POLICY_SCRIPT = textwrap.dedent("""
    import asyncio, socket, threading
    import aiohttp, uvicorn
    import pyloop

    pyloop.install()  # asyncio.run / asyncio.new_event_loop now make pyloop loops

    async def app(scope, receive, send):
        assert scope["type"] == "http"
        body = type(asyncio.get_running_loop()).__module__.encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    # loop="none": uvicorn makes no loop of its own and asyncio's policy decides.
    server = uvicorn.Server(uvicorn.Config(app, loop="none", lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
    thread.start()

    async def client():
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/") as resp:
                served_by = await resp.text()
        return type(asyncio.get_running_loop()).__module__, served_by

    print("asyncio.run", *asyncio.run(client()), flush=True)
    print("pyloop.run", *pyloop.run(client()), flush=True)
    server.should_exit = True
    thread.join(60)
    print("stopped", not thread.is_alive(), flush=True)
""")


def test_install_policy_with_asyncio_run_and_uvicorn_loop_none():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [REPO_ROOT, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-c", POLICY_SCRIPT], capture_output=True, text=True, env=env,
                          timeout=TEST_TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "asyncio.run pyloop._eventloop.loop pyloop._eventloop.loop",
        "pyloop.run pyloop._eventloop.loop pyloop._eventloop.loop",
        "stopped True",
    ], proc.stderr
