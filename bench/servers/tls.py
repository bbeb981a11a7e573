"""TLS servers for the TLS benchmark group, on any of the compared loops.

    PYLOOP_BENCH_TLS_CERT=cert.pem PYLOOP_BENCH_TLS_KEY=key.pem \\
        python bench/servers/tls.py --loop asyncio|uvloop|rloop|pyloop --flavour echo|https --port 0

Prints the bound port on stdout, then serves until SIGTERM/SIGINT; prints ``unsupported: <why>`` and
exits 3 when the loop has no TLS (rloop raises NotImplementedError for ``ssl=``).

* ``echo``: ``loop.create_server(..., ssl=ctx)`` with the echo protocol of servers/echo.py -- each message
  is decrypted by the loop's TLS layer, handed to ``data_received`` and encrypted again by ``write``;
* ``https``: the httptools HTTP/1.1 server of servers/http.py, served over TLS (driven by wrk).

The certificate and key come from the environment (the runner makes a throw-away self-signed pair); the
server context is ``ssl.PROTOCOL_TLS_SERVER`` with OpenSSL's defaults, the same on every loop, so the
protocol version and cipher (TLS 1.3, AES-GCM) do not differ between the servers measured.
"""
from __future__ import annotations

import importlib.util
import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]
sys.path.insert(0, os.path.dirname(_here))

import ssl  # noqa: E402

import netlib  # noqa: E402


def _load_sibling(filename: str, name: str):
    # servers/http.py cannot be imported as "http" (that is the standard library's package): load it by
    # path under another name; its main is guarded, so this only defines its protocol.
    spec = importlib.util.spec_from_file_location(name, os.path.join(_here, filename))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def server_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.environ["PYLOOP_BENCH_TLS_CERT"], os.environ["PYLOOP_BENCH_TLS_KEY"])
    return ctx


async def _serve(loop, factory, host, port, backlog):
    try:
        server = await loop.create_server(factory, host, port, backlog=backlog, ssl=server_context())
    except NotImplementedError as exc:  # rloop: no TLS
        raise NotImplementedError(str(exc) or "create_server(ssl=...) raises NotImplementedError") from None
    return server.sockets[0].getsockname()[1]


async def start_echo(loop, host, port):
    echo = _load_sibling("echo.py", "bench_echo_server")
    return await _serve(loop, echo.EchoProtocol, host, port, 128)


async def start_https(loop, host, port):
    http = _load_sibling("http.py", "bench_http_server")
    return await _serve(loop, http.HttpProtocol, host, port, 1024)


FLAVOURS = {"echo": start_echo, "https": start_https}

if __name__ == "__main__":
    sys.exit(netlib.serve(__doc__.split("\n\n")[0], FLAVOURS))
