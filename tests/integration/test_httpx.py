"""httpx.AsyncClient against an aiohttp server on the same loop (pyloop or asyncio),
and against uvicorn on pyloop in another thread.

httpx goes through httpcore's anyio backend, so this exercises anyio's socket
streams on the loop under test, plus ``wait_for``-style read timeouts.
"""

from __future__ import annotations

import asyncio
import hashlib

import pytest

pytest.importorskip("pyloop._core.loop", reason="pyloop is not built")
httpx = pytest.importorskip("httpx")
aiohttp = pytest.importorskip("aiohttp")
from aiohttp import web  # noqa: E402

from .loops import run, running_loop_kind  # noqa: E402

CHUNK = 64 * 1024


def pattern(size: int) -> bytes:
    return (bytes(range(256)) * (size // 256 + 1))[:size]


def make_app() -> web.Application:
    async def echo(request):
        body = await request.read()
        return web.json_response({
            "method": request.method, "query": dict(request.query), "length": len(body),
            "sha256": hashlib.sha256(body).hexdigest(), "loop": running_loop_kind(),
            "content_type": request.content_type,
        })

    async def download(request):
        size = int(request.query["size"])
        resp = web.StreamResponse()
        resp.content_length = size
        await resp.prepare(request)
        data = pattern(size)
        for start in range(0, size, CHUNK):
            await resp.write(data[start:start + CHUNK])
        await resp.write_eof()
        return resp

    async def stall(request):
        # Never answers: the client's read timeout must fire.  The server side is
        # cancelled when the client drops the connection.
        await asyncio.Event().wait()

    async def stall_body(request):
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await resp.write(b"first part")
        await asyncio.Event().wait()

    async def status(request):
        return web.Response(status=int(request.match_info["code"]), text="status")

    app = web.Application(client_max_size=32 * 1024 * 1024)
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/download", download)
    app.router.add_get("/stall", stall)
    app.router.add_get("/stall-body", stall_body)
    app.router.add_get("/status/{code}", status)
    return app


async def start() -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(make_app(), handle_signals=False, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


def test_get_and_post(loop_factory, loop_name):
    async def main():
        runner, base = await start()
        try:
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                r = await client.get("/echo", params={"q": "caf\u00e9", "n": "1"})
                assert r.status_code == 200
                assert r.json()["query"] == {"q": "caf\u00e9", "n": "1"}
                assert r.json()["loop"] == loop_name
                r = await client.post("/echo", json={"a": [1, 2, 3]})
                assert r.json()["content_type"] == "application/json"
                assert r.json()["method"] == "POST"
                r = await client.post("/echo", data={"field": "value"})
                assert r.json()["content_type"] == "application/x-www-form-urlencoded"
                body = pattern(5_000_000)
                r = await client.put("/echo", content=body)
                assert r.json()["length"] == len(body)
                assert r.json()["sha256"] == hashlib.sha256(body).hexdigest()

                async def gen():
                    for i in range(20):
                        yield pattern(10_000 + i)

                r = await client.post("/echo", content=gen())
                expected = b"".join(pattern(10_000 + i) for i in range(20))
                assert r.json()["sha256"] == hashlib.sha256(expected).hexdigest()
                r = await client.get("/status/418")
                assert r.status_code == 418
                with pytest.raises(httpx.HTTPStatusError):
                    r.raise_for_status()
        finally:
            await runner.cleanup()

    run(loop_factory, main)


def test_streaming_download(loop_factory):
    size = 8 * 1024 * 1024

    async def main():
        runner, base = await start()
        try:
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                async with client.stream("GET", "/download", params={"size": size}) as resp:
                    assert resp.status_code == 200
                    assert int(resp.headers["content-length"]) == size
                    digest = hashlib.sha256()
                    chunks = 0
                    async for chunk in resp.aiter_bytes():
                        digest.update(chunk)
                        chunks += 1
                assert chunks > 1
                assert digest.hexdigest() == hashlib.sha256(pattern(size)).hexdigest()
                # Closing a stream early releases the connection for the next request.
                async with client.stream("GET", "/download", params={"size": size}) as resp:
                    async for _ in resp.aiter_raw():
                        break
                r = await client.get("/echo")
                assert r.status_code == 200
        finally:
            await runner.cleanup()

    run(loop_factory, main)


def test_concurrent_requests(loop_factory):
    n = 120  # httpcore's pool scheduling is quadratic in waiters: more only costs time

    async def main():
        runner, base = await start()
        try:
            limits = httpx.Limits(max_connections=12, max_keepalive_connections=12)
            async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
                responses = await asyncio.gather(*(client.get("/echo", params={"i": str(i)}) for i in range(n)))
                assert [r.json()["query"]["i"] for r in responses] == [str(i) for i in range(n)]
        finally:
            await runner.cleanup()

    run(loop_factory, main)


def test_timeouts_raise_and_client_stays_usable(loop_factory):
    async def main():
        runner, base = await start()
        try:
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                loop = asyncio.get_running_loop()
                started = loop.time()
                with pytest.raises(httpx.ReadTimeout):
                    await client.get("/stall", timeout=0.3)
                assert 0.25 <= loop.time() - started < 20

                with pytest.raises(httpx.TimeoutException):
                    async with client.stream("GET", "/stall-body", timeout=httpx.Timeout(30, read=0.3)) as resp:
                        assert resp.status_code == 200
                        async for _ in resp.aiter_bytes():
                            pass

                # A pool timeout: the only connection is busy stalling.
                limits = httpx.Limits(max_connections=1)
                async with httpx.AsyncClient(base_url=base, limits=limits,
                                             timeout=httpx.Timeout(30, pool=0.3)) as single:
                    stalled = asyncio.ensure_future(single.get("/stall"))
                    while not single._transport._pool.connections:  # wait until it holds the connection
                        await asyncio.sleep(0.01)
                    with pytest.raises(httpx.PoolTimeout):
                        await single.get("/echo")
                    stalled.cancel()
                    with pytest.raises(asyncio.CancelledError):
                        await stalled

                r = await client.get("/echo")
                assert r.status_code == 200
        finally:
            await runner.cleanup()

    run(loop_factory, main)


def test_client_against_uvicorn_on_pyloop(loop_factory, loop_name):
    pytest.importorskip("uvicorn")
    from .test_uvicorn import AppState, ThreadedServer
    from .test_uvicorn import make_app as make_starlette_app

    state = AppState()

    async def main(base):
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            assert running_loop_kind() == loop_name
            responses = await asyncio.gather(*(client.get("/loop") for _ in range(50)))
            assert {r.json()["loop"] for r in responses} == {"pyloop"}
            body = pattern(2_000_000)
            r = await client.post("/echo", content=body)
            assert r.content == body[::-1]
            async with client.stream("GET", "/stream", params={"count": 1000}) as resp:
                lines = [line async for line in resp.aiter_lines()]
            assert lines == [f"line {i}" for i in range(1000)]

    with ThreadedServer(make_starlette_app(state), "pyloop:new_event_loop") as server:
        run(loop_factory, lambda: main(server.base))
    assert state.served_on == {"pyloop"}


def test_https(loop_factory, certificate):
    async def main():
        runner = web.AppRunner(make_app(), handle_signals=False, shutdown_timeout=1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=certificate.server_context())
        await site.start()
        port = runner.addresses[0][1]
        try:
            async with httpx.AsyncClient(base_url=f"https://localhost:{port}", timeout=30,
                                         verify=certificate.client_context()) as client:
                r = await client.post("/echo", content=pattern(1_000_000))
                assert r.json()["sha256"] == hashlib.sha256(pattern(1_000_000)).hexdigest()
                async with client.stream("GET", "/download", params={"size": 3_000_000}) as resp:
                    body = b"".join([chunk async for chunk in resp.aiter_bytes()])
                assert body == pattern(3_000_000)
            async with httpx.AsyncClient(base_url=f"https://localhost:{port}", timeout=30) as untrusting:
                with pytest.raises(httpx.ConnectError):
                    await untrusting.get("/echo")
        finally:
            await runner.cleanup()

    run(loop_factory, main)


def test_connection_refused_is_connect_error(loop_factory):
    import socket

    async def main():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        async with httpx.AsyncClient(timeout=30) as client:
            with pytest.raises(httpx.ConnectError):
                await client.get(f"http://127.0.0.1:{port}/")

    run(loop_factory, main)
