"""The client side of conns.py and echo_soak.py, run as a subprocess.

It drives the server under test from another process, so the server's RSS, CPU and
fd table hold only the server's side of each connection.  The client always runs on
the same loop (uvloop when installed, for the least client overhead; else asyncio),
whatever loop the server uses, so differences in the figures are the server's.

Commands arrive one per line on stdin; each answer is one JSON line on stdout:

    idle N          open N connections and hold them    -> {"opened": N, "seconds": s}
    active K S B[,B...] [R]
                    K connections echo messages (sizes cycling through the B list) for S
                    seconds, closed loop; with R, each reconnects after R round trips
                    -> {"round_trips": n, "p50_us": .., "p99_us": .., "max_us": .., "errors": e}
    check           one byte through every idle connection -> {"ok": n, "failed": f}
    close           close the idle connections             -> {"closed": n}
    quit            exit
"""
from __future__ import annotations

import asyncio
import json
import socket
import sys
import time

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import _common as C  # noqa: E402


class Client:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.idle: list[socket.socket] = []

    async def open_idle(self, n: int) -> dict:
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        gate = asyncio.Semaphore(200)  # the server's accept backlog is bounded too

        async def one() -> None:
            async with gate:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setblocking(False)
                try:
                    await loop.sock_connect(sock, (self.host, self.port))
                except BaseException:
                    sock.close()
                    raise
                self.idle.append(sock)

        results = await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        return {"opened": len(self.idle), "errors": len(errors),
                "first_error": repr(errors[0]) if errors else None, "seconds": time.perf_counter() - t0}

    async def active(self, conns: int, seconds: float, sizes: list[int], reconnect_every: int = 0) -> dict:
        """``conns`` closed-loop echo clients; message sizes cycle through ``sizes``; with
        ``reconnect_every`` > 0 each client opens a fresh connection after that many round trips."""
        latencies: list[float] = []
        errors: list[str] = []
        connections = [0]
        deadline = time.perf_counter() + seconds
        payloads = [b"x" * size for size in sizes]

        async def worker(k: int) -> None:
            turn = k
            while time.perf_counter() < deadline:
                try:
                    reader, writer = await asyncio.open_connection(self.host, self.port)
                except OSError as exc:
                    errors.append(repr(exc))
                    return
                connections[0] += 1
                try:
                    done = 0
                    while time.perf_counter() < deadline and (not reconnect_every or done < reconnect_every):
                        payload = payloads[turn % len(payloads)]
                        turn += 1
                        t0 = time.perf_counter()
                        writer.write(payload)
                        await reader.readexactly(len(payload))
                        latencies.append(time.perf_counter() - t0)
                        done += 1
                except (OSError, asyncio.IncompleteReadError) as exc:
                    errors.append(repr(exc))
                    return
                finally:
                    writer.close()

        await asyncio.gather(*(worker(k) for k in range(conns)))
        us = [x * 1e6 for x in latencies]
        return {"round_trips": len(us), "per_second": len(us) / seconds, "connections": connections[0],
                "p50_us": C.percentile(us, 50), "p99_us": C.percentile(us, 99),
                "max_us": max(us) if us else float("nan"), "errors": len(errors),
                "first_error": errors[0] if errors else None}

    async def check(self) -> dict:
        loop = asyncio.get_running_loop()
        ok = failed = 0
        gate = asyncio.Semaphore(500)

        async def ping(sock: socket.socket) -> bool:
            async with gate:
                try:
                    await loop.sock_sendall(sock, b"!")
                    return await asyncio.wait_for(loop.sock_recv(sock, 1), 60) == b"!"
                except (OSError, asyncio.TimeoutError):
                    return False

        for good in await asyncio.gather(*(ping(s) for s in self.idle)):
            ok, failed = ok + good, failed + (not good)
        return {"ok": ok, "failed": failed}

    def close(self) -> dict:
        n = len(self.idle)
        for sock in self.idle:
            sock.close()
        self.idle.clear()
        return {"closed": n}


async def serve_commands(client: Client) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = (await reader.readline()).decode().split()
        if not line or line[0] == "quit":
            return
        cmd, rest = line[0], line[1:]
        if cmd == "idle":
            answer = await client.open_idle(int(rest[0]))
        elif cmd == "active":
            sizes = [int(x) for x in rest[2].split(",")]
            answer = await client.active(int(rest[0]), float(rest[1]), sizes, int(rest[3]) if rest[3:] else 0)
        elif cmd == "check":
            answer = await client.check()
        elif cmd == "close":
            answer = client.close()
        else:
            answer = {"error": f"unknown command {cmd!r}"}
        print(json.dumps(answer), flush=True)


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    C.raise_nofile(1 << 20)
    try:
        import uvloop
        new_loop = uvloop.new_event_loop
    except ImportError:
        new_loop = asyncio.new_event_loop
    loop = new_loop()
    try:
        loop.run_until_complete(serve_commands(Client(host, port)))
    finally:
        loop.close()


if __name__ == "__main__":
    main()
