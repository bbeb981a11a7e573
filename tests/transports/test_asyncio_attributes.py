"""What code written against asyncio's transports relies on beyond their documented methods.

Each case comes from a real suite (aiohttp's own tests run on pyloop): instance attributes on a transport
(``unittest.mock.patch.object(transport, "write", ...)``), the TLS layer's ``_ssl_protocol._sslcontext``,
and ``start_tls`` on a transport closed just before the call, which asyncio answers with None; from
uvloop's tests, a stream transport's ``_paused``.  Every test runs on stock asyncio (the reference) and on
pyloop.
"""

import asyncio
import socket
from unittest import mock

import pytest

from ._netutil import Collect, EchoProtocol, run, tls

pytestmark = pytest.mark.timeout(120)

__all__ = ["tls"]  # fixture, used by name


async def _connected_pair(loop, ssl_server=None, ssl_client=None):
    server_side = Collect(loop)
    server = await loop.create_server(lambda: server_side, "127.0.0.1", 0, ssl=ssl_server)
    port = server.sockets[0].getsockname()[1]
    client = Collect(loop)
    kwargs = {"ssl": ssl_client, "server_hostname": "localhost"} if ssl_client else {}
    transport, _ = await loop.create_connection(lambda: client, "127.0.0.1", port, **kwargs)
    await server_side.made
    return server, server_side, transport, client


async def _close(server, transport, client):
    transport.close()
    await client.lost
    server.close()
    await server.wait_closed()


@pytest.mark.parametrize("use_tls", [False, True], ids=["tcp", "tls"])
def test_a_transport_method_can_be_patched_on_the_instance(loop, tls, use_tls):
    async def main():
        server_ctx, client_ctx = (tls.server_context(), tls.client_context()) if use_tls else (None, None)
        server, server_side, transport, client = await _connected_pair(loop, server_ctx, client_ctx)
        with mock.patch.object(transport, "write", side_effect=ConnectionResetError) as write:
            with pytest.raises(ConnectionResetError):
                transport.write(b"never sent")
            assert write.call_args == mock.call(b"never sent")
        # The class's method is back, and works.
        assert "write" not in vars(transport)
        transport.write(b"sent")
        server_side.transport.write(b"reply")
        assert await client.wait_for_bytes(5) == b"reply"
        assert await server_side.wait_for_bytes(4) == b"sent"
        transport.note = "kept"
        assert transport.note == "kept"
        await _close(server, transport, client)

    run(loop, main())


def test_tls_transport_shows_its_ssl_context(loop, tls):
    async def main():
        client_ctx = tls.client_context()
        server, _, transport, client = await _connected_pair(loop, tls.server_context(), client_ctx)
        assert transport._ssl_protocol._sslcontext is client_ctx
        assert transport.get_extra_info("sslcontext") is client_ctx
        await _close(server, transport, client)

    run(loop, main())


def test_stream_transport_shows_whether_reading_is_paused(loop):
    async def main():
        server, _, transport, client = await _connected_pair(loop)
        assert transport._paused is False
        transport.pause_reading()
        assert transport._paused is True
        assert not transport.is_reading()
        transport.resume_reading()
        assert transport._paused is False
        assert transport.is_reading()
        await _close(server, transport, client)

    run(loop, main())


@pytest.mark.parametrize("how", ["close", "abort"])
def test_stream_transport_shows_whether_it_is_closing(loop, how):
    # asyncio's socket transport keeps it in ``_closing`` (uvloop's tests read it too).
    async def main():
        server, _, transport, client = await _connected_pair(loop)
        assert transport._closing is False
        getattr(transport, how)()
        assert transport._closing is True
        assert transport.is_closing()
        await client.lost
        assert transport._closing is True
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_start_tls_on_a_transport_closed_just_before_returns_none(loop, tls):
    async def main():
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            transport, _ = await loop.create_connection(asyncio.Protocol, *listener.getsockname())
        transport.close()
        # No await between close() and start_tls(): the connection is lost
        # while start_tls waits for the handshake.
        assert await loop.start_tls(transport, EchoProtocol(), tls.client_context(),
                                    server_hostname="localhost") is None

    run(loop, main())
