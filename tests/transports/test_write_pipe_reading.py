"""A write pipe transport answers the reading methods as asyncio's does.

asyncio's write pipe transport is an ``asyncio.Transport``: ``pause_reading``
and ``resume_reading`` (and ``is_reading``) raise NotImplementedError, and it
is an ``asyncio.ReadTransport`` for ``isinstance``.  uvloop raises the same
NotImplementedError for the first two.
"""

import asyncio
import os

import pytest

from ._netutil import run

pytestmark = pytest.mark.timeout(60)


async def _write_pipe(loop):
    rfd, wfd = os.pipe()
    transport, _ = await loop.connect_write_pipe(asyncio.Protocol, os.fdopen(wfd, "wb", 0))
    return transport, rfd


async def _close(loop, transport, rfd):
    transport.close()
    os.close(rfd)
    await asyncio.sleep(0)


@pytest.mark.parametrize("method", ["pause_reading", "resume_reading"])
def test_reading_methods_raise_not_implemented(loop, method):
    async def main():
        transport, rfd = await _write_pipe(loop)
        try:
            with pytest.raises(NotImplementedError):
                getattr(transport, method)()
            # The transport still writes.
            transport.write(b"ok")
            assert os.read(rfd, 2) == b"ok"
        finally:
            await _close(loop, transport, rfd)

    run(loop, main())


@pytest.mark.skip_loops("uvloop", reason="uvloop's write pipe transport is not an asyncio.Transport")
def test_write_pipe_transport_is_an_asyncio_transport(loop):
    async def main():
        transport, rfd = await _write_pipe(loop)
        try:
            assert isinstance(transport, asyncio.Transport)
            assert isinstance(transport, asyncio.ReadTransport)
            with pytest.raises(NotImplementedError):
                transport.is_reading()
        finally:
            await _close(loop, transport, rfd)

    run(loop, main())
