"""Write flow control, the same on every transport kind (pyloop/_transports/flow.py).

asyncio accepts float water marks (``high=1e6`` is common); pyloop keeps them as byte
counts (ints) on the stream, datagram and pipe transports alike.
"""

import asyncio
import os
import socket

import pytest

from pyloop._transports import flow

from ._netutil import run

pytestmark = pytest.mark.timeout(60)


async def _stream(loop):
    server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    tr, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)

    async def cleanup():
        tr.close()
        server.close()
        await server.wait_closed()

    return tr, cleanup


async def _datagram(loop):
    tr, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0), family=socket.AF_INET)

    async def cleanup():
        tr.close()

    return tr, cleanup


async def _write_pipe(loop):
    r, w = os.pipe()
    tr, _ = await loop.connect_write_pipe(asyncio.BaseProtocol, os.fdopen(w, "wb", 0))

    async def cleanup():
        tr.close()
        os.close(r)

    return tr, cleanup


@pytest.mark.parametrize("make", [_stream, _datagram, _write_pipe], ids=["stream", "datagram", "pipe"])
def test_float_water_marks(loop, make):
    pyloop_loop = not isinstance(loop, asyncio.BaseEventLoop)

    async def main():
        tr, cleanup = await make(loop)
        try:
            assert tr.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
            tr.set_write_buffer_limits(high=1.5e4)
            low, high = tr.get_write_buffer_limits()
            assert (low, high) == (3750, 15000)
            tr.set_write_buffer_limits(high=1e4, low=2.5e3)
            assert tr.get_write_buffer_limits() == (2500, 10000)
            if pyloop_loop:
                assert all(type(mark) is int for mark in tr.get_write_buffer_limits())
            with pytest.raises(ValueError):
                tr.set_write_buffer_limits(high=1.0, low=2.0)
        finally:
            await cleanup()
        await asyncio.sleep(0)

    run(loop, main())


def test_water_marks_defaults_and_coercion():
    assert flow.water_marks() == (flow.DEFAULT_HIGH_WATER, flow.DEFAULT_HIGH_WATER // 4)
    assert flow.water_marks(low=100) == (400, 100)
    assert flow.water_marks(high=1.5e4) == (15000, 3750)
    assert all(type(m) is int for m in flow.water_marks(high=1.5e4))
    with pytest.raises(ValueError):
        flow.water_marks(high=-1)
