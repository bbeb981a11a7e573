"""Helpers for the connection/server tests: bounded runs, socket helpers, TLS
material, small protocols.

Fixtures defined here are used by importing them into a test module
(``from ._netutil import sock_path, tls``): pytest finds fixtures in a
module's globals.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile

import pytest

#: Bound for anything that should take milliseconds; only ever signals a hang.
TIMEOUT = 30.0

PY312 = sys.version_info >= (3, 12)
PY313 = sys.version_info >= (3, 13)


def run(loop, aw, timeout: float = TIMEOUT):
    """run_until_complete(aw), failing with TimeoutError instead of hanging."""
    return loop.run_until_complete(asyncio.wait_for(aw, timeout))


def ipv6_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not ipv6_available(), reason="no IPv6 loopback here")
needs_unix = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no AF_UNIX")
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")


def refusing_address():
    """(socket, address): a bound, non-listening TCP socket -- connecting to the
    address is refused, and holding the socket keeps the port from being reused."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    return s, s.getsockname()


@pytest.fixture
def sock_path():
    """A fresh filesystem path for a Unix socket (short: sun_path is ~108 bytes)."""
    directory = tempfile.mkdtemp(prefix="pyl-", dir="/tmp" if os.path.isdir("/tmp") else None)
    try:
        yield os.path.join(directory, "s.sock")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# ------------------------------------------------------------------------ TLS


class TLSMaterial:
    def __init__(self, certfile: str, keyfile: str):
        self.certfile = certfile
        self.keyfile = keyfile

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.certfile, self.keyfile)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(self.certfile)
        return ctx


def _generate_with_openssl(directory) -> TLSMaterial | None:
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    cmd = [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
           "-subj", "/CN=localhost", "-keyout", key, "-out", cert,
           "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1"]
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return TLSMaterial(cert, key)


def _cpython_test_certs() -> TLSMaterial | None:
    """keycert.pem (CN=localhost, its own CA) from CPython's test package."""
    import test  # the stdlib's test package; absent on some distributions

    base = os.path.dirname(test.__file__)
    for sub in ("certdata", ""):
        path = os.path.join(base, sub, "keycert.pem")
        if os.path.exists(path):
            return TLSMaterial(path, path)
    return None


@pytest.fixture(scope="session")
def tls(tmp_path_factory) -> TLSMaterial:
    """A self-signed certificate for 'localhost' / 127.0.0.1, made for this run
    (openssl), else CPython's test certificate; the test is skipped without both."""
    material = _generate_with_openssl(str(tmp_path_factory.mktemp("tls")))
    if material is None:
        try:
            material = _cpython_test_certs()
        except ImportError:
            material = None
    if material is None:
        pytest.skip("no way to get a TLS certificate here (no openssl, no test certs)")
    # Make sure the pair works before blaming a loop for a handshake failure.
    material.server_context()
    return material


# ------------------------------------------------------------------ protocols


class EchoProtocol(asyncio.Protocol):
    """Echo everything back; close on EOF."""

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)

    def eof_received(self):
        return False


class Collect(asyncio.Protocol):
    """Collect what arrives; futures for made/lost."""

    def __init__(self, loop):
        self.made = loop.create_future()
        self.lost = loop.create_future()
        self.eof = loop.create_future()
        self.data = bytearray()
        self.transport = None
        self._want = None

    def connection_made(self, transport):
        self.transport = transport
        self.made.set_result(transport)

    def data_received(self, data):
        self.data += data
        if self._want is not None and len(self.data) >= self._want[0]:
            fut = self._want[1]
            self._want = None
            if not fut.done():
                fut.set_result(bytes(self.data))

    def eof_received(self):
        if not self.eof.done():
            self.eof.set_result(bytes(self.data))

    def connection_lost(self, exc):
        if not self.eof.done():
            self.eof.set_result(bytes(self.data))
        if not self.lost.done():
            self.lost.set_result(exc)

    def wait_for_bytes(self, n):
        fut = asyncio.get_running_loop().create_future()
        if len(self.data) >= n:
            fut.set_result(bytes(self.data))
        else:
            self._want = (n, fut)
        return fut


async def echo_roundtrip(reader, writer, payload: bytes) -> bytes:
    writer.write(payload)
    await writer.drain()
    return await reader.readexactly(len(payload))


async def stream_echo_handler(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()
