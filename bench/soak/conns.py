"""Ten thousand concurrent connections on one loop: memory per idle connection, and
latency for the active few while the rest are open.

    PYTHONPATH=. python bench/soak/conns.py [--loop pyloop|asyncio|uvloop|all] [--quick]
                                            [--conns N] [--active K] [--seconds S]

This process runs an echo server (a plain ``asyncio.Protocol``) on the loop under
test; a client subprocess (bench/soak/_client.py, always on the same client loop)
drives it.  Steps:

1. ``K`` active clients echo 64-byte messages for ``S`` seconds: the baseline latency;
2. the client opens ``N`` idle connections; the server's RSS before and after (after a
   full GC) gives the RSS per idle connection;
3. the ``K`` active clients run again while the ``N`` are open: p50/p99 round trip;
4. one byte is echoed through every idle connection: all ``N`` are still served;
5. the client closes everything; the server must see every connection lost.

Both ends of a local connection cost one fd each, which is why the clients live in
another process: each side needs ``N`` fds (plus a few), within RLIMIT_NOFILE's hard limit.
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

MESSAGE = 64


class Echo(asyncio.Protocol):
    open_count = 0
    made = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        Echo.open_count += 1
        Echo.made += 1

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        Echo.open_count -= 1


async def wait_for_count(target: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while Echo.open_count != target:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def scenario(n: int, active: int, seconds: float) -> dict:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, "127.0.0.1", 0, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    client = subprocess.Popen([sys.executable, os.path.join(C.HERE, "_client.py"), "127.0.0.1", str(port)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    async def ask(command: str) -> dict:
        client.stdin.write(command + "\n")
        client.stdin.flush()
        line = await loop.run_in_executor(None, client.stdout.readline)
        if not line:
            raise RuntimeError(f"client exited during {command!r}")
        return json.loads(line)

    result: dict = {"conns": n, "active": active, "seconds": seconds, "message_bytes": MESSAGE}
    try:
        await asyncio.sleep(0.2)  # let the executor thread and the client start before the baseline
        result["fds_start"] = C.open_fds()
        cpu0 = C.cpu_seconds()
        result["baseline"] = await ask(f"active {active} {seconds} {MESSAGE}")
        result["baseline"]["server_cpu_us_per_rt"] = (C.cpu_seconds() - cpu0) * 1e6 / max(
            1, result["baseline"]["round_trips"])
        await wait_for_count(0, 30)
        rss_before = C.settled_rss_kib()
        cpu0 = C.cpu_seconds()
        opened = await ask(f"idle {n}")
        result["opened"] = opened
        result["server_saw_all"] = await wait_for_count(n, 120)
        result["server_open"] = Echo.open_count
        rss_after = C.settled_rss_kib()
        result["accept_cpu_s"] = C.cpu_seconds() - cpu0
        result["fds_with_idle"] = C.open_fds()
        result["rss_before_kib"] = rss_before
        result["rss_after_kib"] = rss_after
        result["rss_per_idle_conn_bytes"] = (rss_after - rss_before) * 1024 / max(1, Echo.open_count)
        cpu0 = C.cpu_seconds()
        result["loaded"] = await ask(f"active {active} {seconds} {MESSAGE}")
        result["loaded"]["server_cpu_us_per_rt"] = (C.cpu_seconds() - cpu0) * 1e6 / max(
            1, result["loaded"]["round_trips"])
        result["check"] = await ask("check")
        await ask("close")
        result["all_lost"] = await wait_for_count(0, 120)
        result["rss_end_kib"] = C.settled_rss_kib()
        result["fds_end"] = C.open_fds()
    finally:
        try:
            client.stdin.write("quit\n")
            client.stdin.flush()
        except OSError:
            pass
        await loop.run_in_executor(None, client.wait)
        server.close()
        await server.wait_closed()
    return result


def ok(r: dict) -> bool:
    return (r["server_saw_all"] and r["opened"]["opened"] == r["conns"] and r["check"]["ok"] == r["conns"]
            and r["loaded"]["errors"] == 0 and r["baseline"]["errors"] == 0 and r["all_lost"])


def lines_for(r: dict, loop_name: str) -> list[str]:
    b, ld, c = r["baseline"], r["loaded"], r["check"]
    return [
        f"{loop_name}: {r['server_open']:,} of {r['conns']:,} connections held by the server"
        f" ({r['opened']['opened']:,} opened in {r['opened']['seconds']:.1f} s, accept CPU {r['accept_cpu_s']:.2f} s)"
        f" -- {'OK' if ok(r) else 'FAILED'}",
        f"  server RSS {r['rss_before_kib'] / 1024:.1f} -> {r['rss_after_kib'] / 1024:.1f} MiB:"
        f" {r['rss_per_idle_conn_bytes'] / 1024:.2f} KiB per idle connection;"
        f" after closing all {r['rss_end_kib'] / 1024:.1f} MiB; fds {r['fds_start']} -> {r['fds_with_idle']}"
        f" -> {r['fds_end']}",
        f"  {r['active']} active echo clients, {r['message_bytes']} B, {r['seconds']:g} s each:",
        f"    no idle conns : {b['round_trips']:,} round trips, p50 {b['p50_us']:.0f} us, p99 {b['p99_us']:.0f} us,"
        f" max {b['max_us']:.0f} us, server CPU {b['server_cpu_us_per_rt']:.1f} us/round trip, errors {b['errors']}",
        f"    {r['conns']:,} idle open: {ld['round_trips']:,} round trips, p50 {ld['p50_us']:.0f} us,"
        f" p99 {ld['p99_us']:.0f} us, max {ld['max_us']:.0f} us, server CPU {ld['server_cpu_us_per_rt']:.1f} us/round trip,"
        f" errors {ld['errors']}",
        f"  every idle connection echoed one byte at the end: {c['ok']:,} ok, {c['failed']} failed;"
        f" all connection_lost seen: {r['all_lost']}",
    ]


def summarise(results: dict[str, dict]) -> list[str]:
    rows = []
    for name, r in results.items():
        b, ld = r["baseline"], r["loaded"]
        rows.append([name, f"{r['server_open']:,}", f"{r['check']['ok']:,}",
                     f"{r['rss_per_idle_conn_bytes'] / 1024:.2f}",
                     f"{b['p50_us']:.0f} / {b['p99_us']:.0f}", f"{ld['p50_us']:.0f} / {ld['p99_us']:.0f}",
                     f"{ld['round_trips'] / r['seconds']:,.0f}", f"{ld['server_cpu_us_per_rt']:.1f}",
                     "yes" if ok(r) else "NO"])
    return C.table(["loop", "held", "echoed at end", "RSS KiB/idle conn", "p50/p99 us (0 idle)",
                    "p50/p99 us (N idle)", "round trips/s (N idle)", "server CPU us/rt (N idle)", "ok"], rows)


def main() -> int:
    def extra(p):
        p.add_argument("--conns", type=int, default=None, help="idle connections (10,000; 500 with --quick)")
        p.add_argument("--active", type=int, default=8, help="active echo clients")
        p.add_argument("--seconds", type=float, default=None, help="each latency phase (5 s; 1 s quick)")

    args = C.parse_args(__doc__.splitlines()[0], extra)
    if args.conns is None:
        args.conns = 500 if args.quick else 10_000
    if args.seconds is None:
        args.seconds = 1.0 if args.quick else 5.0
    if args.loop == "all":
        return C.run_all(__file__, args, C.child_argv(args, ["conns", "active", "seconds"]), 900, summarise)
    limit = C.raise_nofile(args.conns + args.active + 256)
    if limit < args.conns + args.active + 64:
        print(f"RLIMIT_NOFILE is {limit}: too low for {args.conns} connections", file=sys.stderr)
        return 2
    loop = C.loop_factory(args.loop)()
    try:
        r = loop.run_until_complete(scenario(args.conns, args.active, args.seconds))
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()
    C.emit(args, r, lines_for(r, args.loop))
    return 0 if ok(r) else 1


if __name__ == "__main__":
    sys.exit(main())
