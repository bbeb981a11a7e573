"""The contextvars.Context of a TLS connection's callbacks (uvloop's rule, issue 15 item 2).

Every callback of a protocol -- connection_made, data_received (or get_buffer/buffer_updated),
eof_received, pause_writing/resume_writing, connection_lost -- runs in one context: the one the
connection was set up in (a server's: where its protocol factory ran).  So a context variable that
connection_made sets is what every later callback sees, whichever task's write, resume_reading or
close() triggered the callback.  uvloop does this; asyncio runs pause_writing in the writer's context
and connection_lost in the context of whoever closed.  Run with PYLOOP_TEST_LOOPS=asyncio,pyloop,uvloop
to check uvloop too.
"""

import asyncio
import contextvars

import pytest

from ._netutil import run, tls

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skip_loops("asyncio", reason="asyncio runs pause_writing/resume_writing in the context of the "
                                             "task that wrote and connection_lost in the context of the "
                                             "one that closed"),
]

__all__ = ["tls"]  # fixture, used by name

who = contextvars.ContextVar("who", default="nobody")


class Recorder(asyncio.Protocol):
    """Records who.get() in every callback; its first callback sets who to ``mark``."""

    def __init__(self, loop, mark, *, pause_reading_at_start=False):
        self.mark = mark
        self.seen = []
        self.pause_at_start = pause_reading_at_start
        self.transport = None
        self.data = bytearray()
        self.made = loop.create_future()
        self.lost = loop.create_future()
        self.paused = loop.create_future()
        self.resumed = loop.create_future()
        self._want = None

    def _record(self, name):
        if not self.seen:
            who.set(self.mark)
        self.seen.append((name, who.get()))

    def connection_made(self, transport):
        self._record("connection_made")
        self.transport = transport
        if self.pause_at_start:
            transport.pause_reading()
        self.made.set_result(transport)

    def data_received(self, data):
        self._record("data_received")
        self.data += data
        if self._want and len(self.data) >= self._want[0] and not self._want[1].done():
            self._want[1].set_result(bytes(self.data))

    def eof_received(self):
        self._record("eof_received")

    def pause_writing(self):
        self._record("pause_writing")
        if not self.paused.done():
            self.paused.set_result(None)

    def resume_writing(self):
        self._record("resume_writing")
        if not self.resumed.done():
            self.resumed.set_result(None)

    def connection_lost(self, exc):
        self._record("connection_lost")
        self.lost.set_result(exc)

    def wait_for_bytes(self, n):
        fut = asyncio.get_running_loop().create_future()
        if len(self.data) >= n:
            fut.set_result(bytes(self.data))
        else:
            self._want = (n, fut)
        return fut

    def names(self):
        return {name for name, _ in self.seen}

    def contexts(self):
        return {value for _, value in self.seen}


def in_context(value, coro_fn, *args):
    """Run coro_fn(*args) as a task whose context has who = value."""
    ctx = contextvars.copy_context()
    ctx.run(who.set, value)
    return asyncio.get_running_loop().create_task(coro_fn(*args), context=ctx)


async def _fill_until_paused(tr, proto):
    chunk = b"x" * (256 * 1024)
    sent = 0
    while not proto.paused.done():
        tr.write(chunk)
        sent += len(chunk)
        assert sent < 512 * 1024 * 1024, "pause_writing never came"
        await asyncio.sleep(0)
    return sent


async def _talk(loop, tls):
    """One TLS connection through every callback: the client's writes fill the paused server
    (pause_writing), the server reads (resume_writing), data comes back while the client pauses
    and resumes reading, the client closes.  Each step runs in a task of its own context.
    Returns the (client, server) recorders."""
    who.set("server-setup")
    server_proto = Recorder(loop, "server-conn", pause_reading_at_start=True)
    server = await loop.create_server(lambda: server_proto, "127.0.0.1", 0, ssl=tls.server_context())
    port = server.sockets[0].getsockname()[1]

    who.set("client-setup")
    client = Recorder(loop, "client-conn")
    tr, _ = await loop.create_connection(lambda: client, "127.0.0.1", port,
                                         ssl=tls.client_context(), server_hostname="localhost")
    str_ = await server_proto.made
    who.set("main")

    async def writer():
        return await _fill_until_paused(tr, client)

    sent = await in_context("writer", writer)

    async def reader():
        str_.resume_reading()
        await server_proto.wait_for_bytes(sent)
        await client.resumed

    await in_context("reader", reader)

    async def answer():
        tr.pause_reading()
        str_.write(b"reply")
        await asyncio.sleep(0)
        tr.resume_reading()
        await client.wait_for_bytes(5)

    await in_context("answer", answer)

    async def closer():
        tr.close()
        await client.lost
        await server_proto.lost

    await in_context("closer", closer)
    server.close()
    await server.wait_closed()
    return client, server_proto


def test_client_callbacks_run_in_the_connection_context(loop, tls):
    async def main():
        client, _ = await _talk(loop, tls)
        assert {"connection_made", "data_received", "pause_writing", "resume_writing",
                "connection_lost"} <= client.names()
        assert client.contexts() == {"client-conn"}, client.seen

    run(loop, main())


@pytest.mark.skip_loops("uvloop", reason="uvloop delivers what waited for a server connection's "
                                         "resume_reading() in a copy of the server's context taken "
                                         "before connection_made ran")
def test_server_callbacks_run_in_the_connection_context(loop, tls):
    async def main():
        _, server_proto = await _talk(loop, tls)
        assert {"connection_made", "data_received", "eof_received",
                "connection_lost"} <= server_proto.names()
        assert server_proto.contexts() == {"server-conn"}, server_proto.seen

    run(loop, main())


def test_server_protocol_factory_runs_in_the_servers_context(loop, tls):
    """The factory sees the context create_server was called in; connection_made the same."""
    async def main():
        seen = []
        made = loop.create_future()

        class Proto(asyncio.Protocol):
            def __init__(self):
                seen.append(("factory", who.get()))

            def connection_made(self, transport):
                seen.append(("connection_made", who.get()))
                made.set_result(transport)

        who.set("serving")
        server = await loop.create_server(Proto, "127.0.0.1", 0, ssl=tls.server_context())
        port = server.sockets[0].getsockname()[1]
        who.set("client")
        tr, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port,
                                             ssl=tls.client_context(), server_hostname="localhost")
        await made
        assert seen == [("factory", "serving"), ("connection_made", "serving")]
        tr.close()
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_start_tls_callbacks_run_in_one_context(loop, tls):
    """After start_tls() the new protocol's callbacks all run in one context, whichever task
    writes, resumes or closes."""
    async def main():
        server_proto = Recorder(loop, "server")
        server = await loop.create_server(lambda: server_proto, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        plain, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
        str_ = await server_proto.made
        server_up = asyncio.ensure_future(loop.start_tls(
            str_, server_proto, tls.server_context(), server_side=True))
        who.set("start_tls caller")
        client = Recorder(loop, "tls-proto")
        tr = await loop.start_tls(plain, client, tls.client_context(), server_hostname="localhost")
        server_tls = await server_up

        async def talk():
            server_tls.write(b"first")
            await client.wait_for_bytes(5)
            tr.pause_reading()
            server_tls.write(b"second")
            await asyncio.sleep(0)
            tr.resume_reading()
            await client.wait_for_bytes(11)

        await in_context("talker", talk)

        async def closer():
            server_tls.close()  # close_notify from the server: eof_received, then lost
            await client.lost

        await in_context("closer", closer)
        tr.close()
        server.close()
        await server.wait_closed()
        assert {"data_received", "eof_received", "connection_lost"} <= client.names()
        assert client.contexts() == {"tls-proto"}, client.seen

    run(loop, main())


def test_buffered_protocol_callbacks_run_in_the_connection_context(loop, tls):
    async def main():
        seen = []
        got = loop.create_future()
        lost = loop.create_future()

        class Buffered(asyncio.BufferedProtocol):
            def __init__(self):
                self.buf = bytearray(16)
                self.total = 0

            def connection_made(self, transport):
                who.set("buffered")
                seen.append(who.get())

            def get_buffer(self, sizehint):
                seen.append(who.get())
                return self.buf

            def buffer_updated(self, nbytes):
                seen.append(who.get())
                self.total += nbytes
                if self.total >= 100 and not got.done():
                    got.set_result(None)

            def connection_lost(self, exc):
                seen.append(who.get())
                lost.set_result(exc)

        async def echo(reader, writer):
            writer.write(b"z" * 100)
            await writer.drain()
            await reader.read()
            writer.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=tls.server_context())
        port = server.sockets[0].getsockname()[1]
        who.set("setup")
        tr, _ = await loop.create_connection(Buffered, "127.0.0.1", port, ssl=tls.client_context(),
                                             server_hostname="localhost")
        await got
        tr.close()
        await lost
        server.close()
        await server.wait_closed()
        assert len(seen) > 3 and set(seen) == {"buffered"}, seen

    run(loop, main())


@pytest.mark.skip_loops("uvloop", reason="uvloop keeps the client's handshake Finished message until its first "
                                         "read, which pause_reading() in connection_made stops: the "
                                         "server's handshake never completes")
def test_eof_found_by_close_runs_in_the_connection_context(loop, tls):
    """The peer's close_notify waits unread (reading paused); close() from another task finds it:
    eof_received still runs in the connection's context."""
    async def main():
        class Closer(asyncio.Protocol):
            def connection_made(self, transport):
                transport.close()  # close_notify right after the handshake

        server = await loop.create_server(Closer, "127.0.0.1", 0, ssl=tls.server_context())
        port = server.sockets[0].getsockname()[1]
        who.set("client-setup")
        client = Recorder(loop, "client-conn", pause_reading_at_start=True)
        tr, _ = await loop.create_connection(lambda: client, "127.0.0.1", port,
                                             ssl=tls.client_context(), server_hostname="localhost")
        deadline = loop.time() + 30
        while tr.get_read_buffer_size() == 0:  # the close_notify is at the client, unread
            assert loop.time() < deadline, "the close_notify never came"
            await asyncio.sleep(0.01)

        async def closer():
            tr.close()
            await client.lost

        await in_context("closer", closer)
        server.close()
        await server.wait_closed()
        assert "eof_received" in client.names()
        assert client.contexts() == {"client-conn"}, client.seen

    run(loop, main())
