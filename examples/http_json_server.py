"""A small HTTP/1.1 JSON server on pyloop.net: keep-alive, Content-Length bodies.

    python examples/http_json_server.py --port 8080
    # then:  curl -s localhost:8080/add -d '{"a": 2, "b": 3}'

Routes: ``GET /hello`` -> {"hello": "world"}; ``POST /add`` with {"a": .., "b": ..}
-> {"sum": a + b}; anything else -> 404.  The parser is deliberately minimal
(no chunked requests): it shows the stream API, not a production HTTP stack.
"""

from __future__ import annotations

import argparse
import json

import pyloop
from pyloop import net, task

MAX_HEADER = 64 * 1024


async def read_request(conn: net.Stream, buf: bytearray) -> tuple[str, str, dict, bytes] | None:
    """One request from the connection, or None at a clean EOF between requests."""
    while b"\r\n\r\n" not in buf:
        if len(buf) > MAX_HEADER:
            raise ValueError("header too large")
        chunk = await conn.read(65536)
        if not chunk:
            if buf:
                raise ValueError("connection closed mid-request")
            return None
        buf += chunk
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _version = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    buf[:] = rest
    if len(buf) < length:
        buf += await conn.read_exact(length - len(buf))
    body = bytes(buf[:length])
    del buf[:length]
    return method, path, headers, body


def route(method: str, path: str, body: bytes) -> tuple[int, dict]:
    if method == "GET" and path == "/hello":
        return 200, {"hello": "world"}
    if method == "POST" and path == "/add":
        try:
            data = json.loads(body)
            return 200, {"sum": data["a"] + data["b"]}
        except (ValueError, KeyError, TypeError) as exc:
            return 400, {"error": str(exc)}
    return 404, {"error": f"no route for {method} {path}"}


async def serve_connection(conn: net.Stream) -> None:
    buf = bytearray()
    async with conn:
        while True:
            try:
                request = await read_request(conn, buf)
            except (ValueError, ConnectionError):
                return
            if request is None:
                return
            method, path, headers, body = request
            status, payload = route(method, path, body)
            data = json.dumps(payload).encode()
            reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}[status]
            await conn.write_all(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
            if headers.get("connection", "").lower() == "close":
                return


async def main(host: str, port: int) -> None:
    async with await net.TcpListener.bind(host, port) as listener:
        host, port = listener.local_addr[:2]
        print(f"serving on http://{host}:{port}", flush=True)
        async for conn in listener:
            task.spawn(serve_connection(conn))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    try:
        pyloop.run(main(args.host, args.port))
    except KeyboardInterrupt:
        pass
