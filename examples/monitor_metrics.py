"""An aiohttp app on pyloop that shows what pyloop.monitor sees: /metrics, stall reports, `top`.

    pip install 'pyloop-aio[monitor]' aiohttp
    python examples/monitor_metrics.py --port 8080
    curl -s localhost:8080/metrics | grep pyloop_loop_lag        # Prometheus
    curl -s 'localhost:8080/block?seconds=0.5'                   # a handler that blocks the loop:
                                                                 # a stall report is logged
    python -m pyloop top <pid>                                   # from another terminal
    python -m pyloop ps <pid>

Routes: ``/`` says hello; ``/work`` starts a few tasks in a TaskGroup that sleep
20 s or so (something for ``top`` and ``ps`` to show); ``/block?seconds=S`` calls
``time.sleep(S)`` inside the handler -- the classic mistake the stall watchdog
catches, naming that line while the loop is still blocked; ``/metrics`` is the
Prometheus exposition of the loop's core counters (pyloop.monitor.prometheus).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

import pyloop
from pyloop import monitor
from pyloop.monitor import prometheus


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="hello\n")


async def crunch(n: int) -> None:
    await asyncio.sleep(20 + n)


async def work_batch() -> None:
    async with asyncio.TaskGroup() as tg:
        for n in range(4):
            tg.create_task(crunch(n), name=f"crunch-{n}")


async def work(request: web.Request) -> web.Response:
    tasks = request.app["background"]
    batch = asyncio.create_task(work_batch(), name="work-batch")
    tasks.add(batch)
    batch.add_done_callback(tasks.discard)
    return web.Response(text="started 4 tasks\n")


async def block(request: web.Request) -> web.Response:
    seconds = min(float(request.query.get("seconds", "0.5")), 10.0)
    time.sleep(seconds)          # blocks the whole loop: the stall report points here
    return web.Response(text=f"blocked the loop for {seconds} s\n")


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app["registry"])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def main(host: str, port: int) -> None:
    registry = CollectorRegistry()
    prometheus.register(registry)
    app = web.Application()
    app["registry"] = registry
    app["background"] = set()
    app.router.add_get("/", hello)
    app.router.add_get("/work", work)
    app.router.add_get("/block", block)
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    server = monitor.serve()
    print(f"serving on http://{host}:{bound} (pid {os.getpid()}, monitor at {server.path})", flush=True)
    try:
        with monitor.watch_stalls(0.1):          # warnings on the pyloop.monitor logger
            await asyncio.Event().wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        pyloop.run(main(args.host, args.port))
    except KeyboardInterrupt:
        pass
