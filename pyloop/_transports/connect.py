"""Stream connections: ``create_connection``, ``create_unix_connection``,
``connect_accepted_socket``.

Everything here runs once per connection, never per byte, so it is plain
Python; the per-byte work is in the Cython transport that
``_make_socket_transport`` builds.  ``create_connection`` resolves
(``_ensure_resolved``: numeric hosts without a thread hop), orders the
candidate addresses (``interleave`` alternates address families), then tries
them one after the other, or staggered (Happy Eyeballs, RFC 8305, with
``asyncio.staggered.staggered_race``).  Each attempt is ``_connect_sock``: a
fresh non-blocking socket, bound to a ``local_addr`` of the same family,
connected with ``sock_connect``.  When every attempt fails the errors are
reported as asyncio does: the error itself when there is one (or when they
all read the same), else one ``OSError('Multiple exceptions: ...')``, or all
of them in an ``ExceptionGroup`` with ``all_errors=True``.  With ``ssl`` the
transport is TLS over the plain one (``tls.TLSMixin``).

Where asyncio's behaviour changed between Python versions (error text) pyloop
does what the running Python's asyncio does.
"""

import functools
import itertools
import logging
import os
import socket
from asyncio import staggered as _staggered

from .sockets import os_error_text
from .tls import _check_ssl_socket, _check_ssl_timeouts, _default_server_hostname

logger = logging.getLogger("asyncio")

def _interleave_addrinfos(infos, first_family_count=1):
    """Reorder ``infos`` so that address families alternate (RFC 8305 §4),
    starting with ``first_family_count`` addresses of the first family."""
    by_family = {}
    for info in infos:
        by_family.setdefault(info[0], []).append(info)
    groups = list(by_family.values())
    ordered = []
    if first_family_count > 1:
        head = first_family_count - 1
        ordered.extend(groups[0][:head])
        del groups[0][:head]
    for row in itertools.zip_longest(*groups):
        ordered.extend(info for info in row if info is not None)
    return ordered


def _connect_error(errors, all_errors):
    """The exception create_connection raises when every attempt failed."""
    if all_errors:
        return ExceptionGroup("create_connection failed", errors)
    if len(errors) == 1:
        return errors[0]
    first = str(errors[0])
    if all(str(exc) == first for exc in errors):
        return errors[0]
    return OSError("Multiple exceptions: {}".format(
        ", ".join(str(exc) for exc in errors)))


class ConnectMixin:
    """``create_connection``, ``create_unix_connection`` and
    ``connect_accepted_socket`` of ``AbstractEventLoop``.

    Service of ``Loop``, no state of its own.  Needs from the loop:
    ``_ensure_resolved`` (DNSMixin), ``sock_connect`` (SockMixin),
    ``_make_socket_transport``, ``_make_ssl_transport`` (TLSMixin),
    ``create_future``, ``get_debug``.
    """

    async def create_connection(
            self, protocol_factory, host=None, port=None, *, ssl=None,
            family=0, proto=0, flags=0, sock=None, local_addr=None,
            server_hostname=None, ssl_handshake_timeout=None,
            ssl_shutdown_timeout=None, happy_eyeballs_delay=None,
            interleave=None, all_errors=False):
        """Open a stream connection to ``host``:``port`` (or over the
        connected ``sock``); return ``(transport, protocol)``."""
        server_hostname = _default_server_hostname(ssl, server_hostname, host)
        _check_ssl_timeouts(ssl, ssl_handshake_timeout, ssl_shutdown_timeout)
        if sock is not None:
            _check_ssl_socket(sock)
        if happy_eyeballs_delay is not None and interleave is None:
            # Happy Eyeballs alternates families unless told otherwise.
            interleave = 1

        own_sock = False
        if host is not None or port is not None:
            if sock is not None:
                raise ValueError(
                    "host/port and sock can not be specified at the same time")
            sock = await self._open_connection_socket(
                host, port, family, proto, flags, local_addr,
                happy_eyeballs_delay, interleave, all_errors)
            own_sock = True
        else:
            if sock is None:
                raise ValueError(
                    "host and port was not specified and no sock specified")
            if sock.type != socket.SOCK_STREAM:
                # AF_UNIX stream sockets are accepted too, as in asyncio.
                raise ValueError(
                    f"A Stream Socket was expected, got {sock!r}")

        transport, protocol = await self._create_connection_transport(
            sock, protocol_factory, ssl, server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout, own_sock=own_sock)
        if self.get_debug():
            logger.debug("%r connected to %s:%r: (%r, %r)",
                         transport.get_extra_info("socket"), host, port,
                         transport, protocol)
        return transport, protocol

    async def _open_connection_socket(self, host, port, family, proto, flags,
                                      local_addr, happy_eyeballs_delay,
                                      interleave, all_errors):
        """Resolve, then connect to the first address that answers."""
        infos = await self._ensure_resolved(
            (host, port), family=family, type=socket.SOCK_STREAM,
            proto=proto, flags=flags)
        if not infos:
            raise OSError("getaddrinfo() returned empty list")
        laddr_infos = None
        if local_addr is not None:
            laddr_infos = await self._ensure_resolved(
                local_addr, family=family, type=socket.SOCK_STREAM,
                proto=proto, flags=flags)
            if not laddr_infos:
                raise OSError("getaddrinfo() returned empty list")
        if interleave:
            infos = _interleave_addrinfos(infos, interleave)

        attempts = []   # one list of errors per attempt, in start order
        others = ()
        try:
            sock = None
            if happy_eyeballs_delay is None:
                for info in infos:
                    try:
                        sock = await self._connect_sock(attempts, info,
                                                        laddr_infos)
                        break
                    except OSError:
                        continue
            else:
                sock, _, others = await _staggered.staggered_race(
                    (functools.partial(self._connect_sock, attempts, info,
                                       laddr_infos) for info in infos),
                    happy_eyeballs_delay, loop=self)
            if sock is not None:
                return sock
            errors = [exc for sub in attempts for exc in sub]
            if not errors:
                # Only non-OSErrors, caught by staggered_race: re-raise one.
                errors = [exc for exc in others if exc is not None]
                if errors and not all_errors:
                    raise errors[0]
                if not errors:
                    raise OSError("create_connection failed")
            raise _connect_error(errors, all_errors)
        finally:
            # The errors' tracebacks reference this frame, and with Happy
            # Eyeballs the frames of asyncio.staggered_race too, whose locals
            # (its `exceptions` list, our partials holding `attempts`) hold
            # the errors again: empty those lists (their content was copied
            # into `errors` above) and drop ours, so that a refused
            # connection's errors are freed without the cycle collector.
            attempts.clear()
            if isinstance(others, list):
                others.clear()
            attempts = errors = others = None

    async def _connect_sock(self, exceptions, addr_info, local_addr_infos=None):
        """One connection attempt: returns the connected socket or raises.
        Every OSError on the way is appended to a list of its own in
        ``exceptions``."""
        my_errors = []
        exceptions.append(my_errors)
        family, type_, proto, _, address = addr_info
        sock = None
        try:
            sock = socket.socket(family=family, type=type_, proto=proto)
            sock.setblocking(False)
            if local_addr_infos is not None:
                self._bind_local(sock, family, local_addr_infos, my_errors)
            await self.sock_connect(sock, address)
            return sock
        except OSError as exc:
            my_errors.append(exc)
            if sock is not None:
                sock.close()
            raise
        except BaseException:
            if sock is not None:
                sock.close()
            raise
        finally:
            exceptions = my_errors = None

    @staticmethod
    def _bind_local(sock, family, local_addr_infos, my_errors):
        for lfamily, _, _, _, laddr in local_addr_infos:
            if lfamily != family:
                continue
            try:
                sock.bind(laddr)
                return
            except OSError as exc:
                my_errors.append(OSError(
                    exc.errno, f"error while attempting to bind on address "
                               f"{laddr!r}: {os_error_text(exc)}"))
        if my_errors:
            raise my_errors.pop()
        raise OSError(f"no matching local address with {family=} found")

    async def _create_connection_transport(
            self, sock, protocol_factory, ssl, server_hostname,
            server_side=False, ssl_handshake_timeout=None,
            ssl_shutdown_timeout=None, own_sock=False):
        sock.setblocking(False)
        transport = None
        try:
            protocol = protocol_factory()
            waiter = self.create_future()
            if ssl:
                sslcontext = None if isinstance(ssl, bool) else ssl
                transport = self._make_ssl_transport(
                    sock, protocol, sslcontext, waiter,
                    server_side=server_side, server_hostname=server_hostname,
                    ssl_handshake_timeout=ssl_handshake_timeout,
                    ssl_shutdown_timeout=ssl_shutdown_timeout)
            else:
                transport = self._make_socket_transport(sock, protocol, waiter)
        except BaseException:
            # No transport owns the socket: close it if we opened it.
            if own_sock:
                sock.close()
            raise
        try:
            await waiter
        except BaseException:
            transport.close()
            raise
        return transport, protocol

    async def create_unix_connection(
            self, protocol_factory, path=None, *, ssl=None, sock=None,
            server_hostname=None, ssl_handshake_timeout=None,
            ssl_shutdown_timeout=None):
        """Open a Unix-domain stream connection to ``path`` (or over the
        connected ``sock``); return ``(transport, protocol)``."""
        assert server_hostname is None or isinstance(server_hostname, str)
        if ssl:
            if server_hostname is None:
                raise ValueError(
                    "you have to pass server_hostname when using ssl")
        else:
            if server_hostname is not None:
                raise ValueError("server_hostname is only meaningful with ssl")
            _check_ssl_timeouts(ssl, ssl_handshake_timeout,
                                ssl_shutdown_timeout)

        own_sock = False
        if path is not None:
            if sock is not None:
                raise ValueError(
                    "path and sock can not be specified at the same time")
            path = os.fspath(path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0)
            try:
                sock.setblocking(False)
                await self.sock_connect(sock, path)
            except BaseException:
                sock.close()
                raise
            own_sock = True
        else:
            if sock is None:
                raise ValueError("no path and sock were specified")
            if (sock.family != socket.AF_UNIX
                    or sock.type != socket.SOCK_STREAM):
                raise ValueError(
                    f"A UNIX Domain Stream Socket was expected, got {sock!r}")
            sock.setblocking(False)

        return await self._create_connection_transport(
            sock, protocol_factory, ssl, server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout, own_sock=own_sock)

    async def connect_accepted_socket(
            self, protocol_factory, sock, *, ssl=None,
            ssl_handshake_timeout=None, ssl_shutdown_timeout=None):
        """Wrap a connection accepted outside the loop (server side);
        return ``(transport, protocol)``."""
        if sock.type != socket.SOCK_STREAM:
            raise ValueError(f"A Stream Socket was expected, got {sock!r}")
        _check_ssl_timeouts(ssl, ssl_handshake_timeout, ssl_shutdown_timeout)
        _check_ssl_socket(sock)
        transport, protocol = await self._create_connection_transport(
            sock, protocol_factory, ssl, "", server_side=True,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout)
        if self.get_debug():
            logger.debug("%r handled: (%r, %r)",
                         transport.get_extra_info("socket"), transport,
                         protocol)
        return transport, protocol
