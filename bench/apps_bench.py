"""Real-frameworks benchmark group (``apps``): aiohttp, uvicorn + Starlette and an asyncio-streams HTTP
server (servers/apps.py), each in its own server process per loop, driven by wrk.

This is what users feel: a request spends most of its time in the framework's Python, so what is left for
the loop to win is smaller than in the ``http`` group.  The measurement is the ``http`` group's
(http_bench.py: one server process per loop and row, a one-second wrk warm-up, then ``wrk -t2 -c50
--latency``; server CPU from /proc/PID/stat around the measured run; rounds interleaved, loop order rotated);
only the servers differ.  The target is pyloop >= 1.2x uvloop's requests/s on each server.  Skipped, with a
message, when wrk or one of aiohttp, uvicorn, starlette, httptools is missing.
"""
from __future__ import annotations

import importlib.util

try:
    from . import benchlib, http_bench
except ImportError:
    import benchlib
    import http_bench

Benchmark = benchlib.Benchmark

_WRK = f"wrk -t{http_bench.THREADS} -c{http_bench.CONNECTIONS}"
BENCHMARKS = [
    Benchmark("app_aiohttp", http_bench.run_wrk, 0,
              f"aiohttp.web application, one route returning a 13-byte body, AppRunner + SockSite; {_WRK}",
              unit="req/s", lower_is_better=False),
    Benchmark("app_starlette", http_bench.run_wrk, 0,
              f"Starlette application under uvicorn.Server (httptools, no access log); {_WRK}",
              unit="req/s", lower_is_better=False),
    Benchmark("app_streams", http_bench.run_wrk, 0,
              f"asyncio.start_server, readuntil(CRLFCRLF) per request, write + drain per response; {_WRK}",
              unit="req/s", lower_is_better=False),
]

GROUP = http_bench.WrkGroup(
    "apps", "pyloop real-frameworks benchmark", "apps.py",
    {"app_aiohttp": "aiohttp", "app_starlette": "starlette", "app_streams": "streams"},
    target_factor=1.2, baseline="uvloop")


def prerequisites() -> str | None:
    why = http_bench.prerequisites()
    if why:
        return why
    missing = [m for m in ("aiohttp", "uvicorn", "starlette") if importlib.util.find_spec(m) is None]
    if missing:
        return f"{', '.join(missing)} not installed (pip install '.[bench]')"
    return None


def run_group(args, loops, benches, versions, missing, env) -> int:
    return http_bench.run_wrk_group(args, loops, benches, versions, missing, env, GROUP)
