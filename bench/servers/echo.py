"""Echo server for the echo benchmark, on any of the compared loops, in three flavours.

    python bench/servers/echo.py --loop asyncio|uvloop|rloop|pyloop --flavour protocol|streams|sock --port 0

Prints the bound port on stdout, then echoes every connection until SIGTERM/SIGINT.  If the loop cannot
run the flavour (a NotImplementedError from create_server), it prints ``unsupported: <why>`` and exits 3.

* ``protocol``: ``loop.create_server`` with an ``asyncio.Protocol`` whose ``data_received`` writes the data
  back -- the loop's transport fast path and nothing else.
* ``streams``: ``asyncio.start_server``; the handler loops ``read`` / ``write`` / ``await drain()``, the way
  the asyncio documentation writes an echo server.
* ``sock``: a listening socket served with ``loop.sock_accept`` and, per connection, a task looping
  ``sock_recv`` / ``sock_sendall``.

The same server code runs on every loop, so differences between loops are the loops' own.  Every accepted
socket gets TCP_NODELAY (the transports of asyncio and uvloop set it already; the sock flavour and rloop
need it said), and reads ask for up to 256 KiB, the size asyncio's and uvloop's transports read with.
"""
from __future__ import annotations

import asyncio
import os
import socket
import sys

# Run as a script: replace this folder with bench/ on sys.path (see servers/http.py for why it matters).
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]
sys.path.insert(0, os.path.dirname(_here))

import netlib  # noqa: E402

READ_SIZE = 256 * 1024


def _nodelay(sock) -> None:
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):  # not a TCP socket, or a loop that exposes no socket
        pass


class EchoProtocol(asyncio.Protocol):
    __slots__ = ("transport",)

    def connection_made(self, transport):
        self.transport = transport
        _nodelay(transport.get_extra_info("socket"))

    def data_received(self, data):
        self.transport.write(data)


async def start_protocol(loop, host, port):
    server = await loop.create_server(EchoProtocol, host, port, backlog=128)
    return server.sockets[0].getsockname()[1]


async def _echo_stream(reader, writer):
    _nodelay(writer.get_extra_info("socket"))
    try:
        while True:
            data = await reader.read(READ_SIZE)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def start_streams(loop, host, port):
    server = await asyncio.start_server(_echo_stream, host, port, backlog=128)
    return server.sockets[0].getsockname()[1]


async def _echo_sock(loop, conn):
    with conn:
        try:
            while True:
                data = await loop.sock_recv(conn, READ_SIZE)
                if not data:
                    break
                await loop.sock_sendall(conn, data)
        except ConnectionError:
            pass


async def _accept_forever(loop, listener, tasks):
    while True:
        conn, _ = await loop.sock_accept(listener)
        conn.setblocking(False)
        _nodelay(conn)
        task = loop.create_task(_echo_sock(loop, conn))
        tasks.add(task)  # a task nobody references may be garbage-collected mid-flight
        task.add_done_callback(tasks.discard)


async def start_sock(loop, host, port):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(128)
    listener.setblocking(False)
    tasks: set = set()
    tasks.add(loop.create_task(_accept_forever(loop, listener, tasks)))
    _KEEP.append((listener, tasks))  # the loop holds the tasks only weakly
    return listener.getsockname()[1]


_KEEP: list = []


FLAVOURS = {"protocol": start_protocol, "streams": start_streams, "sock": start_sock}

if __name__ == "__main__":
    sys.exit(netlib.serve(__doc__.split("\n\n")[0], FLAVOURS))
