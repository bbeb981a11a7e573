"""Minimal HTTP/1.1 keep-alive server on httptools, for the HTTP benchmark (driven by wrk).

    python bench/servers/http.py --loop asyncio|uvloop|rloop|pyloop [--flavour protocol] --port 0

Prints the bound port on stdout, then serves until SIGTERM/SIGINT; prints ``unsupported: <why>`` and exits 3
when the loop has no create_server yet.  Every request gets the same 200 response with a 13-byte body; the
connection is kept open unless the request asks otherwise (HTTP/1.0 without keep-alive, or
``Connection: close``).  Pipelined requests are answered in order, since httptools calls
``on_message_complete`` once per request in the order they arrive.  A request the parser rejects gets a 400
and the connection is closed.

This is the smallest server that is still a correct HTTP/1.1 server: the per-request work in Python is the
parser callbacks and one ``transport.write`` of a prebuilt response, so what differs between loops is the
loop's own cost (reading, dispatch to ``data_received``, the write path).  It runs as a protocol (the
only flavour): streams would add the same StreamReader overhead on every loop.

(The file is called http.py as the benchmark brief asks; since a script's folder comes first on sys.path,
it takes that folder off the path before importing anything, or this file would stand in for the standard
library's ``http`` package.)
"""
from __future__ import annotations

import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]
sys.path.insert(0, os.path.dirname(_here))

import asyncio  # noqa: E402
import socket  # noqa: E402

import httptools  # noqa: E402
import netlib  # noqa: E402

BODY = b"Hello, World!"
KEEP = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % len(BODY)) + BODY
CLOSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
         % len(BODY)) + BODY
BAD = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class HttpProtocol(asyncio.Protocol):
    __slots__ = ("transport", "parser", "url")

    def connection_made(self, transport):
        self.transport = transport
        self.parser = httptools.HttpRequestParser(self)
        self.url = None
        sock = transport.get_extra_info("socket")
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass

    def data_received(self, data):
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.write(BAD)
            self.transport.close()

    # httptools callbacks
    def on_url(self, url):
        self.url = url

    def on_message_complete(self):
        if self.parser.should_keep_alive():
            self.transport.write(KEEP)
        else:
            self.transport.write(CLOSE)
            self.transport.close()

    def connection_lost(self, exc):
        self.transport = None


async def start_protocol(loop, host, port):
    server = await loop.create_server(HttpProtocol, host, port, backlog=1024)
    return server.sockets[0].getsockname()[1]


FLAVOURS = {"protocol": start_protocol}

if __name__ == "__main__":
    sys.exit(netlib.serve(__doc__.split("\n\n")[0], FLAVOURS))
