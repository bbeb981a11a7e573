"""The transports' own system calls (``pyloop._transports._syscalls``) and the set-up they serve:
``create_unix_server`` over a stale socket file, a half-built server socket that must never
leak, ``sendfile`` made from C.

Where asyncio is the reference the tests run on both loops; the tests that reach into pyloop's
internals (a fault injected into its stale-socket check) run on pyloop only.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import os
import socket
import sys
import warnings

import pytest

from ._netutil import TIMEOUT, Collect, EchoProtocol, needs_unix, run, sock_path

pytestmark = pytest.mark.timeout(120)

__all__ = ["sock_path"]  # fixtures, used by name

_syscalls = pytest.importorskip("pyloop._transports._syscalls", reason="pyloop is not built")


def _open_fds() -> set[int]:
    return {int(n) for n in os.listdir("/proc/self/fd")}


class _Interrupted(Exception):
    """Not an OSError: what a signal handler, a bug or a mock might raise mid set-up."""


# ---- the calls themselves ---------------------------------------------------


def test_inode_and_unlink_behave_like_os(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x")
    assert _syscalls.inode(path) == os.stat(path).st_ino
    assert _syscalls.inode(os.fsencode(path)) == os.stat(path).st_ino
    _syscalls.unlink(str(path))
    with pytest.raises(FileNotFoundError) as info:
        _syscalls.inode(path)
    assert info.value.filename == path
    with pytest.raises(FileNotFoundError):
        _syscalls.unlink(path)
    with pytest.raises(ValueError, match="embedded null byte"):
        _syscalls.inode("a\0b")
    with pytest.raises(TypeError):
        _syscalls.inode(42)


@needs_unix
def test_remove_stale_unix_socket_touches_sockets_only(tmp_path):
    sock_file = str(tmp_path / "s")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(sock_file)
    assert _syscalls.remove_stale_unix_socket(sock_file) is True
    assert not os.path.exists(sock_file)
    assert _syscalls.remove_stale_unix_socket(sock_file) is False      # missing: fine
    regular = tmp_path / "regular"
    regular.write_bytes(b"keep me")
    assert _syscalls.remove_stale_unix_socket(str(regular)) is False   # not a socket: left alone
    assert regular.read_bytes() == b"keep me"
    assert _syscalls.remove_stale_unix_socket("\0abstract") is False
    assert _syscalls.remove_stale_unix_socket(b"\0abstract") is False
    assert _syscalls.remove_stale_unix_socket("") is False


@pytest.mark.skipif(not _syscalls.HAVE_SENDFILE, reason="no sendfile from C on this system")
def test_sendfile_call(tmp_path):
    path = tmp_path / "data"
    path.write_bytes(b"0123456789")
    a, b = socket.socketpair()
    with a, b, open(path, "rb") as f:
        a.setblocking(False)
        assert _syscalls.sendfile(a.fileno(), f.fileno(), 2, 5) == 5
        assert _syscalls.sendfile(a.fileno(), f.fileno(), 10, 5) == 0     # end of file
        assert b.recv(100) == b"23456"
        assert f.tell() == 0    # an explicit offset leaves the file position alone
        with pytest.raises(BlockingIOError):
            while True:     # fill the socket buffer
                _syscalls.sendfile(a.fileno(), f.fileno(), 0, 10)
        with pytest.raises(ValueError):
            _syscalls.sendfile(a.fileno(), f.fileno(), -1, 5)
        with pytest.raises(OSError) as info:
            _syscalls.sendfile(a.fileno(), a.fileno(), 0, 5)
        assert info.value.errno in (errno.EINVAL, errno.ESPIPE)


def test_loop_sendfile_uses_the_c_call(loop_name, monkeypatch):
    """pyloop's sendfile path does not go through os.sendfile where the C call exists."""
    if loop_name != "pyloop" or not _syscalls.HAVE_SENDFILE:
        pytest.skip("pyloop with sendfile from C only")
    from pyloop._transports import sendfile as sendfile_mod

    assert sendfile_mod._sendfile is _syscalls.sendfile


# ---- create_unix_server ---------------------------------------------------


@needs_unix
def test_unix_server_replaces_a_stale_socket_file(loop, sock_path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stale:
        stale.bind(sock_path)

    async def main():
        server = await loop.create_unix_server(EchoProtocol, sock_path)
        try:
            client = Collect(loop)
            tr, _ = await loop.create_unix_connection(lambda: client, sock_path)
            tr.write(b"fresh")
            assert await client.wait_for_bytes(5) == b"fresh"
            tr.close()
        finally:
            server.close()
            await server.wait_closed()

    run(loop, main())


@needs_unix
def test_unix_server_leaves_a_regular_file_alone(loop, sock_path):
    with open(sock_path, "wb") as f:
        f.write(b"not a socket")
    with pytest.raises(OSError) as info:
        run(loop, loop.create_unix_server(EchoProtocol, sock_path))
    assert info.value.errno == errno.EADDRINUSE
    with open(sock_path, "rb") as f:
        assert f.read() == b"not a socket"


def _assert_no_leak(before, caught):
    gc.collect()
    leaked = _open_fds() - before
    assert not leaked, f"fds left open: {sorted(leaked)}"
    unclosed = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert not unclosed, [str(w.message) for w in unclosed]


@needs_unix
def test_unix_server_bind_interrupted_by_a_non_oserror(loop, sock_path, monkeypatch):
    made = []

    def bind(self, address):
        made.append(self)
        raise _Interrupted("bind interrupted")

    monkeypatch.setattr(socket.socket, "bind", bind)
    before = _open_fds()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(_Interrupted):
            run(loop, loop.create_unix_server(EchoProtocol, sock_path))
        assert made and all(s.fileno() == -1 for s in made)
        del made[:]
        _assert_no_leak(before, caught)


@needs_unix
@pytest.mark.parametrize("where", ["stale-check", "inode"])
def test_unix_server_setup_interrupted_inside_pyloop(loop_name, loop, sock_path, monkeypatch, where):
    """The stale-socket check (and, with cleanup_socket, the inode note) raising something
    other than OSError: the socket made for the server is closed, nothing leaks.  (asyncio
    3.11-3.13 leaks it when its os.stat raises so: pyloop only.)"""
    if loop_name != "pyloop":
        pytest.skip("injects the fault into pyloop's own stale-socket check")

    def interrupted(path):
        raise _Interrupted(f"{where} interrupted")

    name = "remove_stale_unix_socket" if where == "stale-check" else "inode"
    monkeypatch.setattr(_syscalls, name, interrupted)
    before = _open_fds()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(_Interrupted):
            run(loop, loop.create_unix_server(EchoProtocol, sock_path, cleanup_socket=True))
        assert not loop._unix_server_sockets
        _assert_no_leak(before, caught)


@needs_unix
def test_unix_server_cancelled_while_starting_is_closed(loop_name, loop, sock_path):
    """Cancelled in its last step (after it started serving), create_unix_server closes the
    server it will never return: nobody could close it otherwise."""
    if loop_name != "pyloop":
        pytest.skip("asyncio returns nothing and leaves that server serving")
    before = _open_fds()

    async def main():
        task = loop.create_task(loop.create_unix_server(EchoProtocol, sock_path))
        await asyncio.sleep(0)      # the task runs up to its last sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(loop, main())
        _assert_no_leak(before, caught)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        with pytest.raises(OSError):
            probe.connect(sock_path)   # nobody listens there any more


@needs_unix
@pytest.mark.skipif(sys.version_info < (3, 13), reason="asyncio's cleanup_socket is new in 3.13")
def test_unix_server_cleanup_socket_reference(loop, sock_path):
    _unix_server_cleanup(loop, sock_path)


@needs_unix
def test_unix_server_cleanup_socket(loop_name, loop, sock_path):
    if loop_name != "pyloop" and sys.version_info < (3, 13):
        pytest.skip("asyncio's cleanup_socket is new in 3.13")
    _unix_server_cleanup(loop, sock_path)


def _unix_server_cleanup(loop, sock_path):
    async def main():
        server = await loop.create_unix_server(EchoProtocol, sock_path, cleanup_socket=True)
        assert os.path.exists(sock_path)
        server.close()
        await server.wait_closed()
        assert not os.path.exists(sock_path)

    run(loop, main(), TIMEOUT)
