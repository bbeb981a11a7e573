"""A host program that owns the main loop and drives a pyloop loop from it: no second thread.

The host here is a plain ``selectors`` loop standing in for any event loop that is not
asyncio's -- a GUI toolkit's, a C server's epoll loop (see ``embed_c_host/`` for that one).
It watches its own sockets and, beside them, pyloop's reactor fd:

    sel.register(loop.backend_fd(), selectors.EVENT_READ)    # readable: pyloop has I/O ready
    while ...:
        sel.select(loop.backend_timeout())    # wait no longer than pyloop's next timer
        ...                                   # the host's own events
        loop.run_nowait()                     # run what is ready in pyloop, never blocking

pyloop runs an uppercasing echo server (asyncio streams) and a client of its own; the host
is a second client, on a non-blocking socket of its own.  Both clients talk to the server in
the same thread, so neither side may block: the program finishes only if the host and pyloop
really share the thread.

    $ python examples/embed_selectors_host.py
    host got: b'HELLO FROM THE HOST'
    pyloop: served 2 clients on Loop
"""

from __future__ import annotations

import asyncio
import selectors
import socket

import pyloop


async def serve(port: asyncio.Future[int], clients: int) -> str:
    """pyloop's side: an echo server that stops after ``clients`` connections."""
    served = 0
    done = asyncio.Event()

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        writer.write((await reader.read()).upper())     # everything, up to the client's EOF
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        served += 1
        if served == clients:
            done.set()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port.set_result(server.sockets[0].getsockname()[1])
    # pyloop's own client, to show that tasks, timers and streams all run in the steps.
    await asyncio.sleep(0.01)
    reader, writer = await asyncio.open_connection("127.0.0.1", port.result())
    writer.write(b"hello from pyloop")
    writer.write_eof()
    assert await reader.read() == b"HELLO FROM PYLOOP"
    writer.close()
    await done.wait()
    server.close()
    await server.wait_closed()
    return f"served {served} clients on {type(asyncio.get_running_loop()).__name__}"


class HostClient:
    """The host's own business: a non-blocking client socket in the host's selector."""

    def __init__(self, sel: selectors.BaseSelector, port: int, message: bytes) -> None:
        self.sock = socket.socket()
        self.sock.setblocking(False)
        self.sock.connect_ex(("127.0.0.1", port))
        self.outgoing = message
        self.reply = b""
        self.finished = False
        self.sel = sel
        sel.register(self.sock, selectors.EVENT_WRITE, self)

    def on_event(self, events: int) -> None:
        if events & selectors.EVENT_WRITE:
            sent = self.sock.send(self.outgoing)
            self.outgoing = self.outgoing[sent:]
            if not self.outgoing:
                self.sock.shutdown(socket.SHUT_WR)
                self.sel.modify(self.sock, selectors.EVENT_READ, self)
        elif events & selectors.EVENT_READ:
            chunk = self.sock.recv(65536)
            if chunk:
                self.reply += chunk
            else:
                self.sel.unregister(self.sock)
                self.sock.close()
                self.finished = True


def main() -> None:
    loop = pyloop.new_event_loop()
    sel = selectors.DefaultSelector()
    sel.register(loop.backend_fd(), selectors.EVENT_READ, None)
    port = loop.create_future()
    app = loop.create_task(serve(port, clients=2))
    client = None
    try:
        while not (app.done() and client is not None and client.finished):
            for key, events in sel.select(loop.backend_timeout()):
                if key.data is not None:
                    key.data.on_event(events)
            loop.run_nowait()
            if client is None and port.done():
                client = HostClient(sel, port.result(), b"hello from the host")
        # Let pyloop finish what the last step scheduled (transport close callbacks).
        while loop.backend_timeout() == 0:
            loop.run_nowait()
        print("host got:", client.reply)
        print("pyloop:", app.result())
    finally:
        sel.close()
        loop.close()


if __name__ == "__main__":
    main()
