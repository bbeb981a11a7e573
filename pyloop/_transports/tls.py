"""TLS for stream transports: ``ssl=`` connections and ``loop.start_tls``.

pyloop does not reimplement the TLS state machine: it stacks asyncio's own
``asyncio.sslproto.SSLProtocol`` (an ``ssl.MemoryBIO`` engine, a
``BufferedProtocol``) on top of pyloop's plain socket transport::

    application protocol  <->  SSLProtocol._app_transport   (what users see)
                               SSLProtocol                  (TLS over MemoryBIO)
    plain socket transport <->  socket

so the handshake and shutdown timeouts, renegotiation refusal, close_notify
handling and the ``SSLError``s surfaced are exactly those of the running
Python's asyncio.  The socket transport does the I/O; the TLS layer costs
what it costs in asyncio.
"""

from asyncio import constants as _constants
from asyncio import sslproto as _sslproto

try:
    import ssl as _ssl
except ImportError:  # pragma: no cover - Python built without ssl
    _ssl = None


def _check_ssl_socket(sock):
    if _ssl is not None and isinstance(sock, _ssl.SSLSocket):
        raise TypeError("Socket cannot be of type SSLSocket")


def _check_ssl_timeouts(ssl, ssl_handshake_timeout, ssl_shutdown_timeout):
    """The ValueErrors asyncio raises for TLS-only arguments without TLS."""
    if ssl_handshake_timeout is not None and not ssl:
        raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
    if ssl_shutdown_timeout is not None and not ssl:
        raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")


class TLSMixin:
    """``_make_ssl_transport`` (for connect and serve) and ``start_tls``.

    Service of ``Loop``, no state of its own.  Needs from the loop:
    ``_make_socket_transport``, ``create_future``, ``call_soon``.
    """

    def _make_ssl_transport(
            self, rawsock, protocol, sslcontext, waiter=None, *,
            server_side=False, server_hostname=None, extra=None, server=None,
            ssl_handshake_timeout=_constants.SSL_HANDSHAKE_TIMEOUT,
            ssl_shutdown_timeout=_constants.SSL_SHUTDOWN_TIMEOUT):
        """Wrap the connected socket ``rawsock`` in TLS; return the transport
        the application protocol talks to.  ``waiter`` completes once the
        handshake is done (or failed)."""
        ssl_protocol = _sslproto.SSLProtocol(
            self, protocol, sslcontext, waiter, server_side, server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout)
        self._make_socket_transport(rawsock, ssl_protocol, extra=extra,
                                    server=server)
        return ssl_protocol._app_transport

    async def start_tls(self, transport, protocol, sslcontext, *,
                        server_side=False, server_hostname=None,
                        ssl_handshake_timeout=None,
                        ssl_shutdown_timeout=None):
        """Upgrade the established connection ``transport`` to TLS; return
        the new transport ``protocol`` must use from now on."""
        if _ssl is None:
            raise RuntimeError("Python ssl module is not available")
        if not isinstance(sslcontext, _ssl.SSLContext):
            raise TypeError(
                f"sslcontext is expected to be an instance of "
                f"ssl.SSLContext, got {sslcontext!r}")
        if not getattr(transport, "_start_tls_compatible", False):
            raise TypeError(
                f"transport {transport!r} is not supported by start_tls()")

        waiter = self.create_future()
        ssl_protocol = _sslproto.SSLProtocol(
            self, protocol, sslcontext, waiter, server_side, server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
            call_connection_made=False)

        # Stop reading before swapping protocols: bytes that arrive now are
        # the peer's handshake and must reach the SSLProtocol only after its
        # connection_made() ran.
        transport.pause_reading()
        transport.set_protocol(ssl_protocol)
        made = self.call_soon(ssl_protocol.connection_made, transport)
        resumed = self.call_soon(transport.resume_reading)
        try:
            await waiter
        except BaseException:
            transport.close()
            made.cancel()
            resumed.cancel()
            raise
        return ssl_protocol._app_transport


def _default_server_hostname(ssl, server_hostname, host):
    """asyncio's rules for ``server_hostname`` in create_connection."""
    if server_hostname is not None and not ssl:
        raise ValueError("server_hostname is only meaningful with ssl")
    if server_hostname is None and ssl:
        # The host is the name to check, so without one the caller must say
        # which name (or '' to skip the check).
        if not host:
            raise ValueError("You must set server_hostname "
                             "when using ssl without a host")
        server_hostname = host
    return server_hostname

