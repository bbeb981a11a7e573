"""A concurrent HTTP client: many requests over a few keep-alive connections.

Fetches from examples/http_json_server.py; a Semaphore caps the connections,
a JoinSet collects the answers as they finish.

    python examples/http_json_server.py --port 8080 &
    python examples/http_client.py --port 8080 --requests 200 --connections 8
"""

from __future__ import annotations

import argparse
import json

import pyloop
from pyloop import net, sync, task


class Connection:
    """One keep-alive HTTP/1.1 connection that sends one request at a time."""

    def __init__(self, stream: net.TcpStream) -> None:
        self.stream = stream
        self.buf = bytearray()

    async def post_json(self, path: str, payload: dict) -> dict:
        body = json.dumps(payload).encode()
        await self.stream.write_all(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        while b"\r\n\r\n" not in self.buf:
            chunk = await self.stream.read(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk
        head, _, rest = bytes(self.buf).partition(b"\r\n\r\n")
        length = 0
        for line in head.decode("latin-1").split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        self.buf[:] = rest
        if len(self.buf) < length:
            self.buf += await self.stream.read_exact(length - len(self.buf))
        answer = json.loads(bytes(self.buf[:length]))
        del self.buf[:length]
        return answer


async def main(host: str, port: int, requests: int, connections: int) -> None:
    # A pool of open connections, handed out through a channel; the channel's
    # capacity is the pool size, so a request waits for a free connection.
    pool_tx, pool_rx = sync.channel(connections)
    for _ in range(connections):
        pool_tx.try_send(Connection(await net.TcpStream.connect(host, port)))

    async def add(a: int, b: int) -> int:
        conn = await pool_rx.recv()
        try:
            return (await conn.post_json("/add", {"a": a, "b": b}))["sum"]
        finally:
            pool_tx.try_send(conn)

    js = task.JoinSet[int]()
    async with js:
        for i in range(requests):
            js.spawn(add(i, i))
        total = 0
        async for result in js:
            total += result
    print(f"{requests} requests over {connections} connections; sum of answers {total}, "
          f"expected {sum(2 * i for i in range(requests))}")
    pool_tx.close()
    while True:
        try:
            conn = pool_rx.try_recv()
        except (sync.Empty, sync.Closed):
            break
        conn.stream.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    pyloop.run(main(args.host, args.port, args.requests, args.connections))
