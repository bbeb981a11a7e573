"""An echo soak: continuous traffic for a minute while the server's RSS is sampled.

    PYTHONPATH=. python bench/soak/echo_soak.py [--loop pyloop|asyncio|uvloop|all] [--quick]
                                                [--seconds S] [--clients K] [--interval I]

This process runs an echo server (a plain ``asyncio.Protocol`` that honours flow
control) on the loop under test; a client subprocess (bench/soak/_client.py) runs ``K``
closed-loop clients for ``S`` seconds with message sizes cycling from 64 B to 256 KiB
(so the server's write buffer fills and drains, and reading pauses and resumes), and
each client reconnects every 200 round trips (so connections churn as well).

The server samples its RSS every ``I`` seconds.  The figures: the series, the
least-squares slope over the whole run and over its second half (the first seconds
include the allocator warming up).  A flat second half means no leak per message or
per connection.
"""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

SIZES = "64,1024,16384,262144,512"
RECONNECT_EVERY = 200


class Echo(asyncio.Protocol):
    """Echo with flow control: stop reading while the peer is not reading our writes."""

    lost = 0
    errors: list[str] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)

    def pause_writing(self) -> None:
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.transport.resume_reading()

    def connection_lost(self, exc: BaseException | None) -> None:
        Echo.lost += 1
        if exc is not None and not isinstance(exc, (ConnectionResetError, BrokenPipeError)):
            Echo.errors.append(repr(exc))


async def scenario(seconds: float, clients: int, interval: float) -> dict:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    client = subprocess.Popen([sys.executable, os.path.join(C.HERE, "_client.py"), "127.0.0.1", str(port)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    samples: list[tuple[float, int]] = []
    t0 = time.monotonic()
    cpu0 = C.cpu_seconds()

    async def sampler() -> None:
        while True:
            samples.append((time.monotonic() - t0, C.rss_kib()))
            await asyncio.sleep(interval)

    sampling = asyncio.ensure_future(sampler())
    try:
        client.stdin.write(f"active {clients} {seconds} {SIZES} {RECONNECT_EVERY}\n")
        client.stdin.flush()
        line = await loop.run_in_executor(None, client.stdout.readline)
        if not line:
            raise RuntimeError("client exited early")
        traffic = json.loads(line)
        samples.append((time.monotonic() - t0, C.rss_kib()))
    finally:
        sampling.cancel()
        try:
            client.stdin.write("quit\n")
            client.stdin.flush()
        except OSError:
            pass
        await loop.run_in_executor(None, client.wait)
        server.close()
        await server.wait_closed()
    cpu = C.cpu_seconds() - cpu0
    half = [s for s in samples if s[0] >= seconds / 2]
    rss = [s[1] for s in samples]
    return {
        "seconds": seconds, "clients": clients, "sizes": SIZES, "traffic": traffic,
        "server_cpu_s": cpu, "samples": samples,
        "slope_kib_per_min": C.slope_per_min(samples),
        "second_half_slope_kib_per_min": C.slope_per_min(half),
        "rss_min_kib": min(rss), "rss_max_kib": max(rss),
        "server_errors": Echo.errors[:5], "server_lost": Echo.lost,
    }


def ok(r: dict) -> bool:
    return r["traffic"]["errors"] == 0 and not r["server_errors"] and r["traffic"]["round_trips"] > 0


def lines_for(r: dict, loop_name: str) -> list[str]:
    t = r["traffic"]
    return [
        f"{loop_name}: {r['seconds']:g} s echo soak, {r['clients']} clients, sizes {r['sizes']} B,"
        f" reconnect every {RECONNECT_EVERY} -- {'OK' if ok(r) else 'FAILED'}",
        f"  {t['round_trips']:,} round trips ({t['per_second']:,.0f}/s) over {t['connections']:,} connections;"
        f" p50 {t['p50_us']:.0f} us, p99 {t['p99_us']:.0f} us; client errors {t['errors']},"
        f" server errors {len(r['server_errors'])}; server CPU {r['server_cpu_s']:.1f} s",
        f"  RSS {r['rss_min_kib'] / 1024:.1f}..{r['rss_max_kib'] / 1024:.1f} MiB; slope"
        f" {r['slope_kib_per_min']:+.0f} KiB/min overall, {r['second_half_slope_kib_per_min']:+.0f} KiB/min"
        f" over the second half",
        "  RSS series (s, MiB): " + ", ".join(f"({s:.0f}, {kib / 1024:.1f})" for s, kib in r["samples"]),
    ]


def summarise(results: dict[str, dict]) -> list[str]:
    rows = []
    for name, r in results.items():
        t = r["traffic"]
        rows.append([name, f"{t['round_trips']:,}", f"{t['connections']:,}", f"{r['server_cpu_s']:.1f}",
                     f"{r['rss_min_kib'] / 1024:.1f}..{r['rss_max_kib'] / 1024:.1f}",
                     f"{r['slope_kib_per_min']:+.0f}", f"{r['second_half_slope_kib_per_min']:+.0f}",
                     "yes" if ok(r) else "NO"])
    return C.table(["loop", "round trips", "connections", "server CPU s", "RSS MiB min..max",
                    "slope KiB/min", "2nd-half slope KiB/min", "ok"], rows)


def main() -> int:
    def extra(p):
        p.add_argument("--seconds", type=float, default=None, help="soak length (60 s; 5 s with --quick)")
        p.add_argument("--clients", type=int, default=6)
        p.add_argument("--interval", type=float, default=None, help="RSS sampling period (3 s; 0.5 s quick)")

    args = C.parse_args(__doc__.splitlines()[0], extra)
    if args.seconds is None:
        args.seconds = 5.0 if args.quick else 60.0
    if args.interval is None:
        args.interval = 0.5 if args.quick else 3.0
    if args.loop == "all":
        return C.run_all(__file__, args, C.child_argv(args, ["seconds", "clients", "interval"]),
                         args.seconds * 3 + 120, summarise)
    loop = C.loop_factory(args.loop)()
    try:
        r = loop.run_until_complete(scenario(args.seconds, args.clients, args.interval))
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()
    C.emit(args, r, lines_for(r, args.loop))
    return 0 if ok(r) else 1


if __name__ == "__main__":
    sys.exit(main())
