"""TLS for stream transports: ``ssl=`` connections and servers, ``loop.start_tls``.

pyloop's own TLS layer (``tls_protocol.pyx``: ``SSLProtocol``, the state
machine over ``ssl.MemoryBIO``, and ``SSLTransport``, what the application
talks to) is stacked on the socket transport::

    application protocol  <->  SSLTransport
                               SSLProtocol    (TLS over MemoryBIO)
    socket transport      <->  socket

This module wires it into the loop: ``_make_ssl_transport`` for
``create_connection``/``create_server``/``connect_accepted_socket``, and
``start_tls`` for a connection that is already up.  The application's
callbacks run in one ``contextvars.Context``: a copy of the context current
when the connection is set up, or for ``start_tls`` the context the
transport's own callbacks run in.
"""

import contextvars
from asyncio import constants as _constants

from .tls_protocol import SSLProtocol

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


def _check_server_ssl_timeouts(ssl_handshake_timeout, ssl_shutdown_timeout):
    """A server's TLS timeouts must be positive: the ValueError asyncio raises
    for them in create_connection and start_tls.  (asyncio accepts them in
    create_server and then fails every connection, silently.)"""
    for name, value in (("ssl_handshake_timeout", ssl_handshake_timeout),
                        ("ssl_shutdown_timeout", ssl_shutdown_timeout)):
        if value is not None and value <= 0:
            raise ValueError(f"{name} should be a positive number, got {value}")


class TLSMixin:
    """``_make_ssl_transport`` (for connect and serve) and ``start_tls``.

    Service of ``Loop``, no state of its own.  Needs from the loop:
    ``_make_socket_transport``, ``create_future``, ``call_soon``.
    """

    def _make_ssl_transport(
            self, rawsock, protocol, sslcontext, waiter=None, *,
            server_side=False, server_hostname=None, extra=None, server=None,
            ssl_handshake_timeout=_constants.SSL_HANDSHAKE_TIMEOUT,
            ssl_shutdown_timeout=_constants.SSL_SHUTDOWN_TIMEOUT,
            context=None):
        """Wrap the connected socket ``rawsock`` in TLS; return the transport
        the application protocol talks to.  ``waiter`` completes once the
        handshake is done (or failed).  ``context``: where the protocol's
        callbacks run (default: a copy of the current context)."""
        tls = SSLProtocol(
            self, protocol, sslcontext, waiter, server_side, server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout, context=context)
        app_transport = tls._get_app_transport()
        try:
            transport = self._make_socket_transport(rawsock, tls, extra=extra, server=server)
        except BaseException:
            app_transport.abort()   # never connected: no "unclosed transport" warning
            raise
        if context is None:
            # The socket transport copied the same current context a moment
            # later: one context for both layers, entered once per event.
            tls._share_context(getattr(transport, "_context", None))
        return app_transport

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

        context = _transport_context(transport)
        waiter = self.create_future()
        tls = SSLProtocol(
            self, protocol, sslcontext, waiter, server_side, server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
            call_connection_made=False, context=context)
        app_transport = tls._get_app_transport()

        # Stop reading before swapping protocols: bytes that arrive now are
        # the peer's handshake and must reach the SSLProtocol only after its
        # connection_made() ran.
        transport.pause_reading()
        transport.set_protocol(tls)
        made = self.call_soon(tls.connection_made, transport, context=context)
        resumed = self.call_soon(transport.resume_reading, context=context)
        try:
            await waiter
        except BaseException:
            made.cancel()
            resumed.cancel()
            app_transport.abort()
            transport.close()
            raise
        # A connection lost before this point (a transport closed just before
        # the call: its connection_lost reached the TLS layer) wakes the
        # waiter with no error; asyncio then returns None, and callers
        # (aiohttp) test for it.
        return tls._get_app_transport()


def _transport_context(transport):
    """The context a transport's protocol callbacks run in, for the TLS layer
    that start_tls puts on it (uvloop's rule): the transport's ``_context``
    (pyloop's transports and SSLTransport have one), else a copy of the
    current context."""
    context = getattr(transport, "_context", None)
    if context is None:
        context = contextvars.copy_context()
    return context


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

