"""Socket set-up shared by servers and datagram endpoints (pyloop/_transports/sockets.py).

The Linux abstract namespace (an address with a leading NUL) has no file: neither
create_unix_server nor create_datagram_endpoint may stat or unlink anything for it.
"""

import asyncio
import os
import socket
import uuid

import pytest

from pyloop._transports import sockets

from ._netutil import EchoProtocol, linux_only, run

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def file_calls(monkeypatch):
    """Every path handed to os.stat / os.remove / os.unlink while the test runs."""
    calls = []
    for name in ("stat", "remove", "unlink"):
        real = getattr(os, name)

        def spy(path, *args, _real=real, _name=name, **kwargs):
            calls.append((_name, path))
            return _real(path, *args, **kwargs)

        monkeypatch.setattr(os, name, spy)
    return calls


def _abstract_name():
    return f"\0pyloop-test-{uuid.uuid4().hex}"


def _touched(calls, name):
    return [(op, path) for op, path in calls
            if isinstance(path, (str, bytes)) and path in (name, name.encode())]


@linux_only
@pytest.mark.parametrize("kind", ["str", "bytes"])
def test_unix_server_leaves_abstract_address_alone(loop, file_calls, kind):
    name = _abstract_name()
    path = name if kind == "str" else name.encode()

    async def main():
        server = await loop.create_unix_server(EchoProtocol, path)
        server.close()
        await server.wait_closed()

    run(loop, main())
    assert _touched(file_calls, name) == []


@linux_only
def test_unix_datagram_leaves_abstract_address_alone(loop, file_calls):
    name = _abstract_name()

    async def main():
        tr, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=name, family=socket.AF_UNIX)
        tr.close()
        await asyncio.sleep(0)

    run(loop, main())
    assert _touched(file_calls, name) == []


@pytest.mark.parametrize("path", ["", b"", "\0abstract", b"\0abstract"])
def test_remove_stale_unix_socket_skips_fileless_addresses(file_calls, path):
    sockets.remove_stale_unix_socket(path)
    assert file_calls == []


def test_remove_stale_unix_socket_removes_only_sockets(tmp_path):
    stale = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(stale))
    plain = tmp_path / "plain"
    plain.write_text("keep")
    sockets.remove_stale_unix_socket(str(stale))
    sockets.remove_stale_unix_socket(str(plain))
    sockets.remove_stale_unix_socket(str(tmp_path / "missing"))
    assert not stale.exists()
    assert plain.read_text() == "keep"
