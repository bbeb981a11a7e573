"""aiohttp server and client on pyloop (and on stock asyncio for comparison).

The server is a real ``web.Application`` behind ``AppRunner`` + ``TCPSite`` on
an OS-chosen loopback port; the client is ``aiohttp.ClientSession``.  Every
handler records which loop implementation served it, so a test that passed on
the wrong loop would fail.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("pyloop._core.loop", reason="pyloop is not built")
aiohttp = pytest.importorskip("aiohttp")
from aiohttp import web  # noqa: E402

import pyloop  # noqa: E402

from .loops import LoopThread, run, running_loop_kind  # noqa: E402


class Barrier:
    """Releases every waiter once ``n`` have arrived: proves they were all in flight at once."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.arrived = 0
        self.event = asyncio.Event()

    async def wait(self) -> None:
        self.arrived += 1
        if self.arrived >= self.n:
            self.event.set()
        await asyncio.wait_for(self.event.wait(), 30)


SERVED_ON = web.AppKey("served_on", set)
WS_CLOSED = web.AppKey("ws_closed", asyncio.Queue)
BARRIER = web.AppKey("barrier", Barrier)
FILE_PATH = web.AppKey("file_path", str)


def make_app() -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[SERVED_ON] = set()
    app[WS_CLOSED] = asyncio.Queue()

    @web.middleware
    async def record_loop(request, handler):
        request.app[SERVED_ON].add(running_loop_kind())
        return await handler(request)

    app.middlewares.append(record_loop)

    async def loop_kind(request):
        return web.json_response({"loop": running_loop_kind()})

    async def echo_json(request):
        body = await request.json()
        return web.json_response({"sum": sum(body["numbers"]), "echo": body, "method": request.method},
                                 status=201)

    async def stream(request):
        count = int(request.query["count"])
        size = int(request.query["size"])
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(count):
            await resp.write(bytes([i % 256]) * size)
            if i % 10 == 0:
                await asyncio.sleep(0)  # let the client see partial bodies
        await resp.write_eof()
        return resp

    async def upload(request):
        digest = hashlib.sha256()
        size = 0
        async for chunk in request.content.iter_any():
            digest.update(chunk)
            size += len(chunk)
        return web.json_response({"size": size, "sha256": digest.hexdigest(),
                                  "transfer_encoding": request.headers.get("Transfer-Encoding")})

    async def gather(request):
        await request.app[BARRIER].wait()
        return web.Response(text=request.query["i"])

    async def ws_echo(request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                if msg.data.startswith("close:"):
                    code = int(msg.data.split(":")[1])
                    await ws.close(code=code, message=b"server says bye")
                    break
                await ws.send_str(msg.data.upper())
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(msg.data[::-1])
        await request.app[WS_CLOSED].put(ws.close_code)
        return ws

    app.router.add_get("/loop", loop_kind)
    app.router.add_post("/json", echo_json)
    app.router.add_put("/json", echo_json)
    app.router.add_get("/stream", stream)
    app.router.add_post("/upload", upload)
    app.router.add_get("/gather", gather)
    app.router.add_get("/ws", ws_echo)
    async def file(request):
        return web.FileResponse(request.app[FILE_PATH])

    async def tls(request):
        ssl_object = request.transport.get_extra_info("ssl_object")
        return web.json_response({"tls": ssl_object.version() if ssl_object else None})

    app.router.add_get("/file", file)
    app.router.add_get("/tls", tls)
    return app


async def start(app: web.Application, ssl_context=None) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"{'https' if ssl_context else 'http'}://{host}:{port}"


def test_json_round_trip(loop_factory, loop_name):
    async def main():
        app = make_app()
        runner, base = await start(app)
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(f"{base}/loop") as resp:
                    assert resp.status == 200
                    assert await resp.json() == {"loop": loop_name}
                payload = {"numbers": list(range(100)), "text": "héllo ☃", "nested": {"a": [None, True, 1.5]}}
                for method in ("POST", "PUT"):
                    async with session.request(method, f"{base}/json", json=payload) as resp:
                        assert resp.status == 201
                        assert resp.content_type == "application/json"
                        assert await resp.json() == {"sum": 4950, "echo": payload, "method": method}
                async with session.post(f"{base}/json", data=b"not json",
                                        headers={"Content-Type": "application/json"}) as resp:
                    assert resp.status == 500  # the handler's JSONDecodeError
                async with session.get(f"{base}/missing") as resp:
                    assert resp.status == 404
        finally:
            await runner.cleanup()
        assert app[SERVED_ON] == {loop_name}

    run(loop_factory, main)


def test_streaming_chunked_response(loop_factory, loop_name):
    count, size = 200, 4096

    async def main():
        runner, base = await start(make_app())
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(f"{base}/stream", params={"count": count, "size": size}) as resp:
                    assert resp.status == 200
                    assert resp.headers["Transfer-Encoding"] == "chunked"
                    assert "Content-Length" not in resp.headers
                    body = bytearray()
                    pieces = 0
                    async for chunk in resp.content.iter_chunked(10_000):
                        body += chunk
                        pieces += 1
                assert pieces > 1
                assert len(body) == count * size
                assert body == b"".join(bytes([i % 256]) * size for i in range(count))
        finally:
            await runner.cleanup()

    run(loop_factory, main)


def test_chunked_upload_from_async_generator(loop_factory):
    chunks = [os.urandom(n) for n in (1, 1000, 65536, 200_000, 7, 300_000)]
    expected = hashlib.sha256(b"".join(chunks)).hexdigest()

    async def body():
        for chunk in chunks:
            yield chunk
            await asyncio.sleep(0)

    async def main():
        runner, base = await start(make_app())
        try:
            async with aiohttp.ClientSession() as session:
                async with session.post(f"{base}/upload", data=body()) as resp:
                    assert resp.status == 200
                    result = await resp.json()
        finally:
            await runner.cleanup()
        assert result == {"size": sum(map(len, chunks)), "sha256": expected, "transfer_encoding": "chunked"}

    run(loop_factory, main)


def test_websocket_echo_and_close_codes(loop_factory):
    async def main():
        app = make_app()
        runner, base = await start(app)
        try:
            async with aiohttp.ClientSession() as session:
                # Client-initiated close: the server sees the client's code.
                async with session.ws_connect(f"{base}/ws") as ws:
                    await ws.send_str("hello")
                    assert (await ws.receive(timeout=30)).data == "HELLO"
                    await ws.send_bytes(b"\x00\x01\x02abc")
                    msg = await ws.receive(timeout=30)
                    assert msg.type == aiohttp.WSMsgType.BINARY and msg.data == b"cba\x02\x01\x00"
                    big = os.urandom(1 << 20)
                    await ws.send_bytes(big)
                    assert (await ws.receive(timeout=30)).data == big[::-1]
                    await ws.close(code=4000, message=b"client done")
                    assert ws.closed
                assert await asyncio.wait_for(app[WS_CLOSED].get(), 30) == 4000

                # Server-initiated close: the client sees the server's code and reason.
                async with session.ws_connect(f"{base}/ws") as ws:
                    await ws.send_str("close:4321")
                    msg = await ws.receive(timeout=30)
                    assert msg.type == aiohttp.WSMsgType.CLOSE
                    assert msg.data == 4321 and msg.extra == "server says bye"
                    assert (await ws.receive(timeout=30)).type == aiohttp.WSMsgType.CLOSED
                    assert ws.closed and ws.close_code == 4321
                # The server handler finished; its close_code is the client's reply (aiohttp: 1000).
                assert await asyncio.wait_for(app[WS_CLOSED].get(), 30) == 1000
        finally:
            await runner.cleanup()

    run(loop_factory, main)


def test_250_concurrent_requests(loop_factory, loop_name):
    n = 250

    async def main():
        app = make_app()
        app[BARRIER] = Barrier(n)
        runner, base = await start(app)
        try:
            connector = aiohttp.TCPConnector(limit=0)  # one connection per request: all in flight at once
            async with aiohttp.ClientSession(connector=connector) as session:
                async def one(i):
                    async with session.get(f"{base}/gather", params={"i": i}) as resp:
                        assert resp.status == 200
                        return int(await resp.text())

                results = await asyncio.gather(*(one(i) for i in range(n)))
        finally:
            await runner.cleanup()
        assert results == list(range(n))
        assert app[BARRIER].arrived == n
        assert app[SERVED_ON] == {loop_name}

    run(loop_factory, main)


@pytest.mark.parametrize("server_loop, client_loop", [("pyloop", "asyncio"), ("asyncio", "pyloop")])
def test_server_and_client_on_different_loops_and_threads(server_loop, client_loop):
    factories = {"pyloop": pyloop.new_event_loop, "asyncio": asyncio.new_event_loop}
    app = make_app()
    app[BARRIER] = Barrier(50)
    with LoopThread(factories[server_loop]) as server:
        runner, base = server.call(start(app))
        try:
            async def client():
                assert running_loop_kind() == client_loop
                async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
                    async with session.get(f"{base}/loop") as resp:
                        assert await resp.json() == {"loop": server_loop}
                    async with session.post(f"{base}/json", json={"numbers": [1, 2, 3]}) as resp:
                        assert (await resp.json())["sum"] == 6

                    async def one(i):
                        async with session.get(f"{base}/gather", params={"i": i}) as resp:
                            return int(await resp.text())

                    assert await asyncio.gather(*(one(i) for i in range(50))) == list(range(50))
                    async with session.ws_connect(f"{base}/ws") as ws:
                        await ws.send_str("cross")
                        assert (await ws.receive(timeout=30)).data == "CROSS"

            run(factories[client_loop], client)
        finally:
            server.call(runner.cleanup())
    assert app[SERVED_ON] == {server_loop}


def test_file_response_sendfile_and_range(loop_factory, tmp_path):
    """web.FileResponse sends with ``loop.sendfile`` (os.sendfile on a plain socket)."""
    data = os.urandom(5 * 1024 * 1024 + 17)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)

    async def main():
        app = make_app()
        app[FILE_PATH] = str(path)
        runner, base = await start(app)
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(f"{base}/file") as resp:
                    assert resp.status == 200
                    assert int(resp.headers["Content-Length"]) == len(data)
                    assert await resp.read() == data
                async with session.get(f"{base}/file", headers={"Range": "bytes=1000-1999"}) as resp:
                    assert resp.status == 206
                    assert await resp.read() == data[1000:2000]
                async with session.get(f"{base}/file", headers={"Range": "bytes=-10"}) as resp:
                    assert await resp.read() == data[-10:]
                # Several downloads at once share the loop fairly and all complete.
                bodies = await asyncio.gather(*(session.get(f"{base}/file") for _ in range(8)))
                for resp in bodies:
                    assert await resp.read() == data
                    resp.release()
        finally:
            await runner.cleanup()

    run(loop_factory, main)


def test_https_server_and_client(loop_factory, loop_name, certificate, tmp_path):
    """TLS on both ends: JSON, a large upload, a file (no sendfile under TLS) and a websocket."""
    data = os.urandom(3 * 1024 * 1024)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)

    async def main():
        app = make_app()
        app[FILE_PATH] = str(path)
        runner, base = await start(app, ssl_context=certificate.server_context())
        assert base.startswith("https://")
        try:
            connector = aiohttp.TCPConnector(ssl=certificate.client_context())
            async with aiohttp.ClientSession(connector=connector) as session:
                async with session.get(f"{base}/loop") as resp:
                    assert await resp.json() == {"loop": loop_name}
                async with session.get(f"{base}/tls") as resp:
                    assert (await resp.json())["tls"].startswith("TLSv1.")
                async with session.post(f"{base}/upload", data=io.BytesIO(data)) as resp:
                    assert (await resp.json())["sha256"] == hashlib.sha256(data).hexdigest()
                async with session.get(f"{base}/file") as resp:
                    assert await resp.read() == data
                async with session.ws_connect(f"{base}/ws") as ws:
                    await ws.send_str("secure")
                    assert (await ws.receive(timeout=30)).data == "SECURE"
                    await ws.close()
                results = await asyncio.gather(*(session.get(f"{base}/loop") for _ in range(40)))
                for resp in results:
                    assert resp.status == 200
                    resp.release()
            # A client that does not trust the certificate is refused.
            async with aiohttp.ClientSession() as untrusting:
                with pytest.raises(aiohttp.ClientConnectorCertificateError):
                    await untrusting.get(f"{base}/loop")
        finally:
            await runner.cleanup()

    run(loop_factory, main)


def test_server_abort_mid_body_is_a_client_error(loop_factory):
    """The server drops the connection halfway through a Content-Length body:
    the client gets ClientPayloadError, not a truncated success or a hang."""
    async def main():
        async def truncated(request):
            resp = web.StreamResponse(headers={"Content-Length": "1000000"})
            await resp.prepare(request)
            await resp.write(b"x" * 100_000)
            request.transport.abort()
            return resp

        app = web.Application()
        app.router.add_get("/truncated", truncated)
        runner, base = await start(app)
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(f"{base}/truncated") as resp:
                    assert resp.status == 200
                    with pytest.raises(aiohttp.ClientPayloadError):
                        await resp.read()
        finally:
            await runner.cleanup()

    run(loop_factory, main)


def test_debug_mode(loop_factory, loop_name):
    """The same traffic with the loop in debug mode (extra checks, slow-callback reports)."""
    async def main():
        asyncio.get_running_loop().set_debug(True)
        app = make_app()
        app[BARRIER] = Barrier(30)
        runner, base = await start(app)
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
                async def one(i):
                    async with session.get(f"{base}/gather", params={"i": i}) as resp:
                        return int(await resp.text())

                assert await asyncio.gather(*(one(i) for i in range(30))) == list(range(30))
                async with session.ws_connect(f"{base}/ws") as ws:
                    await ws.send_str("debug")
                    assert (await ws.receive(timeout=30)).data == "DEBUG"
        finally:
            await runner.cleanup()
        assert app[SERVED_ON] == {loop_name}

    run(loop_factory, main)


RUN_APP_SCRIPT = textwrap.dedent("""
    import asyncio, socket, sys
    from aiohttp import web
    import pyloop

    async def kind(request):
        return web.Response(text=type(asyncio.get_running_loop()).__module__)

    async def on_cleanup(app):
        print("CLEANUP", flush=True)

    app = web.Application()
    app.router.add_get("/", kind)
    app.on_cleanup.append(on_cleanup)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)  # clients may connect (and wait in the backlog) before run_app starts
    print("PORT", sock.getsockname()[1], flush=True)
    loop = pyloop.new_event_loop()
    # handle_signals=True: aiohttp installs SIGINT/SIGTERM with loop.add_signal_handler.
    web.run_app(app, sock=sock, loop=loop, print=None, handle_signals=True)
    print("EXITED", flush=True)
""")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_run_app_on_pyloop_stops_on_signal(sig):
    """web.run_app on a pyloop loop; the signal reaches aiohttp's handler through
    pyloop's add_signal_handler and the app shuts down cleanly (exit 0)."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-c", RUN_APP_SCRIPT], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith("PORT "), (line, proc.stderr.read() if proc.poll() is not None else "")
        port = int(line.split()[1])
        conn = socket.create_connection(("127.0.0.1", port), timeout=30)
        with conn:
            conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            response = b""
            while chunk := conn.recv(65536):
                response += chunk
        assert response.startswith(b"HTTP/1.1 200")
        assert response.endswith(b"pyloop._eventloop.loop")
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert out.splitlines() == ["CLEANUP", "EXITED"], (out, err)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_connection_refused_is_reported(loop_factory):
    async def main():
        with socket.socket() as s:  # a port that was just free and is not listening
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientConnectorError) as info:
                await session.get(f"http://127.0.0.1:{port}/")
        assert isinstance(info.value.os_error, ConnectionRefusedError)

    run(loop_factory, main)


RUNNER_SCRIPT = textwrap.dedent("""
    import asyncio, sys
    from aiohttp import web
    import pyloop

    async def main():
        runner = web.AppRunner(web.Application(), handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        print("PORT", runner.addresses[0][1], flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()
            print("CLEANED", flush=True)

    factory = pyloop.new_event_loop if sys.argv[1] == "pyloop" else asyncio.new_event_loop
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(main())
    except KeyboardInterrupt:
        print("INTERRUPTED", flush=True)
""")


def test_ctrl_c_through_asyncio_runner(loop_name):
    """SIGINT while the loop sleeps in its poll: asyncio.Runner's handler must run
    promptly, cancel the main task (cleanup runs) and raise KeyboardInterrupt."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-c", RUNNER_SCRIPT, loop_name], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith("PORT "), (line, proc.stderr.read() if proc.poll() is not None else "")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert out.split() == ["CLEANED", "INTERRUPTED"], (out, err)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
