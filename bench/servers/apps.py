"""HTTP servers written with real frameworks, for the ``apps`` benchmark group (driven by wrk).

    python bench/servers/apps.py --loop asyncio|uvloop|rloop|pyloop --flavour aiohttp|starlette|streams --port 0

Prints the bound port on stdout, then serves until SIGTERM/SIGINT.  Every flavour answers ``GET /`` with
200 and the same 13-byte body over HTTP/1.1 keep-alive, the way a user of that framework would write it:

* ``aiohttp``: an ``aiohttp.web`` application with one route, served by ``AppRunner`` + ``SockSite``;
* ``starlette``: a Starlette application with one route under ``uvicorn.Server`` (httptools parser, no
  access log), on the loop this process made, as ``uvicorn.run(app, loop=...)`` would;
* ``streams``: ``asyncio.start_server`` with a hand-written reader of request heads (``readuntil``) and one
  ``write`` + ``drain`` per response, the common shape of small asyncio services.

Unlike servers/http.py these measure what users feel: the framework's own Python work dominates, so the loop's
share of each request is smaller and a faster loop shows as a smaller ratio.  (The file takes its folder off
sys.path for the same reason servers/http.py does.)
"""
from __future__ import annotations

import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]
sys.path.insert(0, os.path.dirname(_here))

import asyncio  # noqa: E402
import socket  # noqa: E402

import netlib  # noqa: E402

BODY = b"Hello, World!"


def listening_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


async def start_aiohttp(loop, host, port):
    from aiohttp import web

    async def hello(request):
        return web.Response(body=BODY, content_type="text/plain")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = listening_socket(host, port)
    bound = sock.getsockname()[1]   # asked first: rloop's create_server takes the socket object's fd
    await web.SockSite(runner, sock).start()
    return bound


async def start_starlette(loop, host, port):
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def hello(request):
        return PlainTextResponse(BODY)

    app = Starlette(routes=[Route("/", hello)])
    config = uvicorn.Config(app, http="httptools", access_log=False, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    sock = listening_socket(host, port)
    bound = sock.getsockname()[1]   # asked first, as in start_aiohttp
    # serve() installs its own signal handlers; SIGTERM from the runner then stops it gracefully.
    loop.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    return bound


async def start_streams(loop, host, port):
    response = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % len(BODY)) + BODY

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if b"\r\nconnection: close" in head.lower():
                    writer.write(response)
                    await writer.drain()
                    break
                writer.write(response)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, sock=listening_socket(host, port), backlog=1024)
    return server.sockets[0].getsockname()[1]


FLAVOURS = {"aiohttp": start_aiohttp, "starlette": start_starlette, "streams": start_streams}

if __name__ == "__main__":
    sys.exit(netlib.serve(__doc__.split("\n\n")[0], FLAVOURS))
