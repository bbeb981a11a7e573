"""Stream connections and servers: the orchestration above the transports.

Everything here runs once per connection (or once per server), never per
byte, so it is plain Python; the per-byte work is in the Cython transport that
``_make_socket_transport`` builds.  The pieces:

* **Connecting** (``create_connection``, ``create_unix_connection``):
  resolve (``_ensure_resolved``: numeric hosts without a thread hop), order
  the candidate addresses (``interleave`` alternates address families), then
  try them one after the other, or staggered (Happy Eyeballs, RFC 8305, with
  ``asyncio.staggered.staggered_race``).  Each attempt is ``_connect_sock``:
  a fresh non-blocking socket, bound to a ``local_addr`` of the same family,
  connected with ``sock_connect``.  When every attempt fails the errors are
  reported as asyncio does: the error itself when there is one (or when they
  all read the same), else one ``OSError('Multiple exceptions: ...')``, or all
  of them in an ``ExceptionGroup`` with ``all_errors=True``.
* **Serving** (``create_server``, ``create_unix_server``): bind every address
  of every host (IPv6 sockets get ``IPV6_V6ONLY`` so that an IPv4 socket can
  share the port), wrap them in a ``Server``; ``Server._start_serving`` asks
  the loop to watch each listening socket (``_start_serving``).
* **Accepting** (``_accept_connection``): one readiness event accepts up to
  ``backlog`` connections.  A plain connection gets its protocol and
  transport right away, inside a copy of the server's context (asyncio runs
  each accept in a task; a context copy gives the same isolation without a
  task per connection).  A TLS connection needs to wait for its handshake,
  so it gets a task.  Running out of file descriptors or memory (EMFILE,
  ENFILE, ENOBUFS, ENOMEM) is reported to the exception handler and the
  socket is left alone for ``ACCEPT_RETRY_DELAY`` (1 s): the kernel keeps
  reporting it readable, and retrying at once would spin.
* **TLS** (``_tls.TLSMixin``): asyncio's ``SSLProtocol`` over the plain
  transport.
* **sendfile**: ``os.sendfile`` on the transport's socket once its write
  buffer is empty (transports that offer it), else chunks read in the
  executor and written through the transport with its flow control.

Where asyncio's behaviour changed between Python versions (bind error text,
EADDRNOTAVAIL on one of several addresses, Unix socket file cleanup) pyloop
does what the running Python's asyncio does.
"""

import asyncio
import collections.abc
import contextvars
import errno
import functools
import itertools
import logging
import os
import socket
import sys
from asyncio import constants as _constants
from asyncio import exceptions as _aio_exceptions
from asyncio import protocols as _protocols
from asyncio import staggered as _staggered
from asyncio import trsock as _trsock

from .server import Server
from .sockets import is_abstract_or_unnamed, os_error_text, remove_stale_unix_socket, set_reuse_port
from .tls import TLSMixin, _check_ssl_socket, _check_ssl_timeouts, _default_server_hostname

logger = logging.getLogger("asyncio")

_PY313 = sys.version_info >= (3, 13)
_HAS_IPV6 = hasattr(socket, "AF_INET6")
_HAS_UNIX = hasattr(socket, "AF_UNIX")

# accept() errors that mean "out of resources": retrying at once would spin.
_ACCEPT_RESOURCE_ERRNOS = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

# Read size of the sendfile fallback: big enough that the executor round trip
# (~tens of us) is small next to the copy, small enough to respect the
# transport's default 64 KiB high-water mark.
_SENDFILE_FALLBACK_CHUNK = 64 * 1024

_SendfileMode = _constants._SendfileMode


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


class NetworkMixin(TLSMixin):
    """Stream connections, servers, ``start_tls`` and ``sendfile``.

    Needs from the loop: ``_make_socket_transport``, ``_ensure_resolved``,
    ``sock_connect``, ``sock_sendfile``, ``add_reader``/``remove_reader``,
    ``call_later``, ``create_task``, ``run_in_executor``.
    """

    # Created on first use (the loop's __init__ does not chain to mixins).
    _unix_server_sockets = None     # listening AF_UNIX socket -> inode of its file
    _accept_retry_handles = None    # listening socket -> TimerHandle

    # ---- connecting ------------------------------------------------------

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
            # The errors' tracebacks reference this frame: break the cycle.
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

    # ---- serving ---------------------------------------------------------

    async def create_server(
            self, protocol_factory, host=None, port=None, *,
            family=socket.AF_UNSPEC, flags=socket.AI_PASSIVE, sock=None,
            backlog=100, ssl=None, reuse_address=None, reuse_port=None,
            keep_alive=None, ssl_handshake_timeout=None,
            ssl_shutdown_timeout=None, start_serving=True):
        """Listen on ``host`` (a name, an address, a sequence of them, or
        None/'' for all interfaces) and ``port``, or on the bound ``sock``;
        return a ``Server``."""
        if isinstance(ssl, bool):
            raise TypeError("ssl argument must be an SSLContext or None")
        if ssl_handshake_timeout is not None and ssl is None:
            raise ValueError(
                "ssl_handshake_timeout is only meaningful with ssl")
        if ssl_shutdown_timeout is not None and ssl is None:
            raise ValueError(
                "ssl_shutdown_timeout is only meaningful with ssl")
        if sock is not None:
            _check_ssl_socket(sock)

        if host is not None or port is not None:
            if sock is not None:
                raise ValueError(
                    "host/port and sock can not be specified at the same time")
            if reuse_address is None:
                reuse_address = (os.name == "posix"
                                 and sys.platform != "cygwin")
            if host == "":
                hosts = [None]
            elif (isinstance(host, str)
                  or not isinstance(host, collections.abc.Iterable)):
                hosts = [host]
            else:
                hosts = host
            infos = await self._resolve_server_hosts(hosts, port, family,
                                                     flags)
            sockets = self._bind_server_sockets(
                infos, reuse_address, reuse_port, keep_alive)
        else:
            if sock is None:
                raise ValueError("Neither host/port nor sock were specified")
            if sock.type != socket.SOCK_STREAM:
                raise ValueError(f"A Stream Socket was expected, got {sock!r}")
            sockets = [sock]

        for s in sockets:
            s.setblocking(False)
        server = Server(self, sockets, protocol_factory, ssl, backlog,
                        ssl_handshake_timeout, ssl_shutdown_timeout)
        if start_serving:
            server._start_serving()
            # One iteration, as asyncio: code may rely on the yield.
            await asyncio.sleep(0)
        if self.get_debug():
            logger.info("%r is serving", server)
        return server

    async def _create_server_getaddrinfo(self, host, port, family, flags):
        infos = await self._ensure_resolved(
            (host, port), family=family, type=socket.SOCK_STREAM, flags=flags)
        if not infos:
            raise OSError(f"getaddrinfo({host!r}) returned empty list")
        return infos

    async def _resolve_server_hosts(self, hosts, port, family, flags):
        """Every address of every host, each once, in resolution order."""
        lookups = [self._create_server_getaddrinfo(h, port, family, flags)
                   for h in hosts]
        if len(lookups) == 1:
            results = [await lookups[0]]
        else:
            results = await asyncio.gather(*lookups)
        # A host named twice, or two names for one address, binds once.
        return list(dict.fromkeys(itertools.chain.from_iterable(results)))

    def _bind_server_sockets(self, infos, reuse_address, reuse_port,
                             keep_alive):
        sockets = []
        completed = False
        try:
            for af, socktype, proto, _canonname, sa in infos:
                try:
                    sock = socket.socket(af, socktype, proto)
                except OSError:
                    # A family/type/protocol this host cannot do: skip it.
                    if self.get_debug():
                        logger.warning("create_server() failed to create "
                                       "socket.socket(%r, %r, %r)",
                                       af, socktype, proto, exc_info=True)
                    continue
                sockets.append(sock)
                if reuse_address:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR,
                                    True)
                if reuse_port:
                    set_reuse_port(sock)
                if keep_alive:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE,
                                    True)
                # Linux makes an IPv6 socket accept IPv4 too by default; the
                # IPv4 address gets a socket of its own, so turn that off.
                if (_HAS_IPV6 and af == socket.AF_INET6
                        and hasattr(socket, "IPPROTO_IPV6")):
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY,
                                    True)
                try:
                    sock.bind(sa)
                except OSError as err:
                    msg = ("error while attempting to bind on address %r: %s"
                           % (sa, os_error_text(err)))
                    if _PY313 and err.errno == errno.EADDRNOTAVAIL:
                        # That family is not configured here (bpo-30945):
                        # serve on the other addresses, as asyncio 3.13.
                        sockets.pop()
                        sock.close()
                        if self.get_debug():
                            logger.warning(msg)
                        continue
                    raise OSError(err.errno, msg) from None
            if _PY313 and not sockets:
                raise OSError("could not bind on any address out of %r"
                              % ([info[4] for info in infos],))
            completed = True
        finally:
            if not completed:
                for sock in sockets:
                    sock.close()
        return sockets

    async def create_unix_server(
            self, protocol_factory, path=None, *, sock=None, backlog=100,
            ssl=None, ssl_handshake_timeout=None, ssl_shutdown_timeout=None,
            start_serving=True, cleanup_socket=_PY313):
        """Listen on the Unix-domain ``path`` (a filesystem path, os.PathLike,
        or an abstract name starting with NUL) or on the bound ``sock``;
        return a ``Server``.

        A stale socket file at ``path`` is removed first.  With
        ``cleanup_socket`` (the default from Python 3.13 on, as asyncio) the
        socket file is removed when the server closes, unless it was
        replaced in the meantime."""
        if isinstance(ssl, bool):
            raise TypeError("ssl argument must be an SSLContext or None")
        _check_ssl_timeouts(ssl, ssl_handshake_timeout, ssl_shutdown_timeout)

        if path is not None:
            if sock is not None:
                raise ValueError(
                    "path and sock can not be specified at the same time")
            path = os.fspath(path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            remove_stale_unix_socket(path)
            try:
                sock.bind(path)
            except OSError as exc:
                sock.close()
                if exc.errno == errno.EADDRINUSE:
                    raise OSError(errno.EADDRINUSE,
                                  f"Address {path!r} is already in use"
                                  ) from None
                raise
            except BaseException:
                sock.close()
                raise
        else:
            if sock is None:
                raise ValueError(
                    "path was not specified, and no sock specified")
            if (sock.family != socket.AF_UNIX
                    or sock.type != socket.SOCK_STREAM):
                raise ValueError(
                    f"A UNIX Domain Stream Socket was expected, got {sock!r}")

        if cleanup_socket:
            self._note_unix_socket_file(sock)

        sock.setblocking(False)
        server = Server(self, [sock], protocol_factory, ssl, backlog,
                        ssl_handshake_timeout, ssl_shutdown_timeout)
        if start_serving:
            server._start_serving()
            await asyncio.sleep(0)
        return server

    def _note_unix_socket_file(self, sock):
        """Remember the inode of sock's file, to remove it on close only if
        it is still ours."""
        path = sock.getsockname()
        if is_abstract_or_unnamed(path):
            return
        try:
            inode = os.stat(path).st_ino
        except FileNotFoundError:
            return
        if self._unix_server_sockets is None:
            self._unix_server_sockets = {}
        self._unix_server_sockets[sock] = inode

    def _forget_unix_socket_file(self, sock):
        """Before closing a listening socket: (path, inode) to clean up."""
        registry = self._unix_server_sockets
        if not registry or sock not in registry:
            return None
        inode = registry.pop(sock)
        try:
            return sock.getsockname(), inode
        except OSError:
            return None

    @staticmethod
    def _cleanup_unix_socket_file(path, inode):
        try:
            if os.stat(path).st_ino == inode:
                os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as err:
            logger.error("Unable to clean up listening UNIX socket %r: %r",
                         path, err)

    # ---- accepting -------------------------------------------------------

    def _start_serving(self, protocol_factory, sock, sslcontext=None,
                       server=None, backlog=100,
                       ssl_handshake_timeout=_constants.SSL_HANDSHAKE_TIMEOUT,
                       ssl_shutdown_timeout=_constants.SSL_SHUTDOWN_TIMEOUT):
        """Accept connections on the listening ``sock`` from now on."""
        self.add_reader(sock.fileno(), self._accept_connection,
                        protocol_factory, sock, sslcontext, server, backlog,
                        ssl_handshake_timeout, ssl_shutdown_timeout)

    def _stop_serving(self, sock):
        """Stop accepting on ``sock`` and close it (and remove its Unix
        socket file when that was asked for)."""
        retries = self._accept_retry_handles
        if retries:
            handle = retries.pop(sock, None)
            if handle is not None:
                handle.cancel()
        cleanup = self._forget_unix_socket_file(sock)
        fd = sock.fileno()
        if fd >= 0:
            self.remove_reader(fd)
        sock.close()
        if cleanup is not None:
            self._cleanup_unix_socket_file(*cleanup)

    def _accept_connection(
            self, protocol_factory, sock, sslcontext=None, server=None,
            backlog=100,
            ssl_handshake_timeout=_constants.SSL_HANDSHAKE_TIMEOUT,
            ssl_shutdown_timeout=_constants.SSL_SHUTDOWN_TIMEOUT):
        """Reader callback of a listening socket: accept what is waiting,
        up to ``backlog`` connections (the rest wait for the next
        iteration, so that one busy listener cannot starve the loop)."""
        debug = self.get_debug()
        for _ in range(backlog):
            if sock.fileno() < 0:
                return   # closed by a callback of the previous connection
            try:
                conn, addr = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue  # the peer gave up while queued: take the next one
            except OSError as exc:
                if exc.errno not in _ACCEPT_RESOURCE_ERRNOS:
                    raise  # the loop reports it; the listener stays
                self.call_exception_handler({
                    "message": "socket.accept() out of system resource",
                    "exception": exc,
                    "socket": _trsock.TransportSocket(sock),
                })
                self._pause_accepting(
                    protocol_factory, sock, sslcontext, server, backlog,
                    ssl_handshake_timeout, ssl_shutdown_timeout)
                return
            if debug:
                logger.debug("%r got a new connection from %r: %r",
                             server, addr, conn)
            try:
                conn.setblocking(False)
            except OSError:
                conn.close()
                continue
            extra = {"peername": addr}
            if sslcontext:
                self.create_task(self._accept_connection2(
                    protocol_factory, conn, extra, sslcontext, server,
                    ssl_handshake_timeout, ssl_shutdown_timeout))
            else:
                contextvars.copy_context().run(
                    self._accept_plain, protocol_factory, conn, extra, server)

    def _pause_accepting(self, protocol_factory, sock, *args):
        # Linux keeps reporting the socket readable while the process is out
        # of descriptors: unwatch it, and look again after a while.
        self.remove_reader(sock.fileno())
        if self._accept_retry_handles is None:
            self._accept_retry_handles = {}
        self._accept_retry_handles[sock] = self.call_later(
            _constants.ACCEPT_RETRY_DELAY, self._resume_accepting,
            protocol_factory, sock, *args)

    def _resume_accepting(self, protocol_factory, sock, *args):
        if self._accept_retry_handles:
            self._accept_retry_handles.pop(sock, None)
        if sock.fileno() < 0:
            return
        self._start_serving(protocol_factory, sock, *args)

    def _accept_plain(self, protocol_factory, conn, extra, server):
        protocol = transport = None
        try:
            protocol = protocol_factory()
            transport = self._make_socket_transport(
                conn, protocol, extra=extra, server=server)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            if transport is None:
                conn.close()
            self._report_accept_error(exc, protocol, transport)

    async def _accept_connection2(
            self, protocol_factory, conn, extra, sslcontext=None, server=None,
            ssl_handshake_timeout=_constants.SSL_HANDSHAKE_TIMEOUT,
            ssl_shutdown_timeout=_constants.SSL_SHUTDOWN_TIMEOUT):
        """Set up one accepted connection and wait until it is established
        (for TLS: until the handshake is done)."""
        protocol = transport = None
        try:
            protocol = protocol_factory()
            waiter = self.create_future()
            if sslcontext:
                transport = self._make_ssl_transport(
                    conn, protocol, sslcontext, waiter=waiter,
                    server_side=True, extra=extra, server=server,
                    ssl_handshake_timeout=ssl_handshake_timeout,
                    ssl_shutdown_timeout=ssl_shutdown_timeout)
            else:
                transport = self._make_socket_transport(
                    conn, protocol, waiter=waiter, extra=extra, server=server)
            try:
                await waiter
            except BaseException:
                transport.close()
                raise
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            if transport is None:
                conn.close()
            self._report_accept_error(exc, protocol, transport)

    def _report_accept_error(self, exc, protocol, transport):
        # As asyncio: there is nobody to tell but the log, and only in debug
        # mode (a failed handshake is the peer's problem, reported by the
        # TLS layer itself).
        if not self.get_debug():
            return
        context = {
            "message": "Error on transport creation for incoming connection",
            "exception": exc,
        }
        if protocol is not None:
            context["protocol"] = protocol
        if transport is not None:
            context["transport"] = transport
        self.call_exception_handler(context)

    # ---- sendfile --------------------------------------------------------

    async def sendfile(self, transport, file, offset=0, count=None, *,
                       fallback=True):
        """Send ``file`` over ``transport``; return the number of bytes sent.

        Zero-copy ``os.sendfile`` where the transport allows it, else (with
        ``fallback``) chunks read in the executor and written through the
        transport.  The file position ends after the last byte sent."""
        if transport.is_closing():
            raise RuntimeError("Transport is closing")
        mode = getattr(transport, "_sendfile_compatible",
                       _SendfileMode.UNSUPPORTED)
        if mode == _SendfileMode.UNSUPPORTED:
            raise RuntimeError(
                f"sendfile is not supported for transport {transport!r}")
        if mode == _SendfileMode.TRY_NATIVE:
            try:
                return await self._sendfile_native(transport, file, offset,
                                                   count)
            except _aio_exceptions.SendfileNotAvailableError:
                if not fallback:
                    raise
        if not fallback:
            raise RuntimeError(
                f"fallback is disabled and native sendfile is not "
                f"supported for transport {transport!r}")
        return await self._sendfile_fallback(transport, file, offset, count)

    async def _sendfile_native(self, transp, file, offset, count):
        sock = transp.get_extra_info("socket")
        if sock is None:
            raise _aio_exceptions.SendfileNotAvailableError(
                "the transport has no socket")
        # While sendfile runs, sock_sendfile watches the transport's fd
        # itself: take the transport out of the loop's fd -> transport
        # registry (when the loop keeps one), as asyncio does, so that the
        # loop does not refuse the fd as owned by a transport.
        registry = getattr(self, "_transports", None)
        fd = sock.fileno()
        owner = registry.pop(fd, None) if registry is not None else None
        resume_reading = transp.is_reading()
        transp.pause_reading()
        try:
            # Whatever the transport still buffers goes out first; while the
            # empty-waiter is set the transport refuses write().
            await transp._make_empty_waiter()
            return await self.sock_sendfile(sock, file, offset, count,
                                            fallback=False)
        finally:
            transp._reset_empty_waiter()
            if resume_reading:
                transp.resume_reading()
            if owner is not None:
                registry[fd] = owner

    async def _sendfile_fallback(self, transp, file, offset, count):
        if offset:
            file.seek(offset)
        blocksize = (min(count, _SENDFILE_FALLBACK_CHUNK) if count
                     else _SENDFILE_FALLBACK_CHUNK)
        total_sent = 0
        proto = _SendfileFallbackProtocol(self, transp)
        try:
            while True:
                if count:
                    blocksize = min(count - total_sent, blocksize)
                    if blocksize <= 0:
                        return total_sent
                # A fresh bytes object per chunk: the transport may keep a
                # reference to what it could not send yet.
                data = await self.run_in_executor(None, file.read, blocksize)
                if not data:
                    return total_sent
                await proto.drain()
                transp.write(data)
                total_sent += len(data)
        finally:
            if total_sent > 0 and hasattr(file, "seek"):
                file.seek(offset + total_sent)
            proto.restore()


class _SendfileFallbackProtocol(_protocols.Protocol):
    """Stands in for the application's protocol while ``loop.sendfile``
    writes chunks itself: it turns the transport's pause/resume_writing into
    something to await, keeps what arrives for the application, and hands
    the transport back in a consistent state."""

    def __init__(self, loop, transport):
        self._loop = loop
        self._transport = transport
        self._app_protocol = transport.get_protocol()
        self._resume_reading = transport.is_reading()
        paused = getattr(transport, "_protocol_paused", None)
        if paused is None:
            # Only "over the high-water mark" is sure to mean paused.
            paused = (transport.get_write_buffer_size()
                      > transport.get_write_buffer_limits()[1])
        self._app_paused = bool(paused)   # app protocol saw pause_writing
        self._paused = self._app_paused   # transport's state, as we know it
        self._writable = loop.create_future() if paused else None
        self._received = []
        self._eof = False
        transport.pause_reading()
        transport.set_protocol(self)

    async def drain(self):
        if self._transport.is_closing():
            raise ConnectionError("Connection closed by peer")
        fut = self._writable
        if fut is not None:
            await fut

    def connection_made(self, transport):
        raise RuntimeError("Invalid state: "
                           "connection should have been established already.")

    def connection_lost(self, exc):
        fut = self._writable
        if fut is not None and not fut.done():
            fut.set_exception(
                exc if exc is not None
                else ConnectionError("Connection is closed by peer"))
            # drain() may never run again: do not log it as unretrieved.
            fut.exception()
        self._writable = None
        self._deliver_received(self._app_protocol)
        self._app_protocol.connection_lost(exc)

    def pause_writing(self):
        self._paused = True
        if self._writable is None:
            self._writable = self._loop.create_future()

    def resume_writing(self):
        if not self._paused:
            # The transport was paused before we took over after all.
            self._app_paused = True
        self._paused = False
        fut = self._writable
        self._writable = None
        if fut is not None and not fut.done():
            fut.set_result(None)

    def data_received(self, data):
        # Reading is paused, but a transport may deliver what it had read.
        self._received.append(bytes(data))

    def eof_received(self):
        self._eof = True
        return True   # the application decides, on restore()

    def _deliver_received(self, app):
        received, self._received = self._received, []
        for data in received:
            if isinstance(app, _protocols.BufferedProtocol):
                _protocols._feed_data_to_buffered_proto(app, data)
            else:
                app.data_received(data)

    def restore(self):
        transport = self._transport
        app = self._app_protocol
        transport.set_protocol(app)
        fut = self._writable
        self._writable = None
        if fut is not None and not fut.done():
            fut.cancel()
        if self._app_paused and not self._paused:
            app.resume_writing()
        elif self._paused and not self._app_paused:
            app.pause_writing()
        self._deliver_received(app)
        if self._eof and not transport.is_closing():
            if not app.eof_received():
                transport.close()
        elif self._resume_reading:
            transport.resume_reading()
