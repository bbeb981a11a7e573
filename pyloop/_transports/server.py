"""Serving: ``create_server``, ``create_unix_server``, the accept loop, and
``pyloop.Server``, what the first two return.

* **Listening** (``ServeMixin.create_server``, ``create_unix_server``): bind
  every address of every host (IPv6 sockets get ``IPV6_V6ONLY`` so that an
  IPv4 socket can share the port), wrap them in a ``Server``;
  ``Server._start_serving`` asks the loop to watch each listening socket
  (``_start_serving``).  A stale Unix socket file is removed before bind;
  with ``cleanup_socket`` the file is removed again on close if it is still
  the server's (same inode).  These file calls are made from C
  (``_syscalls``), invisible to blocking-call detectors; a socket whose
  set-up is interrupted, by any exception, is closed before it propagates.
* **Accepting** (``_accept_connection``): one readiness event accepts up to
  ``backlog`` connections.  A plain connection gets its protocol and
  transport right away, inside a copy of the server's context -- the one
  current when the server started serving, as uvloop's -- and every callback
  of its protocol then runs in a copy of that copy made by the transport
  (``stream``), after the protocol factory ran: what the factory sets is seen
  by the connection's callbacks.  uvloop runs all the connections of a
  listening socket in one shared context; pyloop gives each its own, as
  asyncio's task per connection does, so that what one connection's
  callbacks set is never seen by another's.  A TLS connection needs to wait
  for its handshake, so it gets a task.  Running out of file descriptors or
  memory (EMFILE, ENFILE, ENOBUFS, ENOMEM) is reported to the exception
  handler and the socket is left alone for ``ACCEPT_RETRY_DELAY`` (1 s): the
  kernel keeps reporting it readable, and retrying at once would spin.
* **Unusable protocols**: a connection is never dropped silently.  When the
  protocol factory raises, returns None or returns an object the transport
  cannot serve (``stream`` refuses it with TypeError), the error goes to the
  loop's exception handler and the accepted socket is closed.

``Server`` owns its listening sockets and keeps track of the connections
accepted through it, so that ``wait_closed`` can wait for them; the accept
loop itself lives in the event loop (``ServeMixin``): the Server only tells
the loop which sockets to watch and when to stop.

Lifecycle, which follows ``asyncio.base_events.Server`` of the running Python:

* created with listening sockets, serving or not (``start_serving=False``);
* ``close()`` stops accepting and closes the listening sockets; connections
  already accepted stay open (``close_clients``/``abort_clients`` end them on
  Pythons whose asyncio has them, 3.13+);
* ``wait_closed()`` returns once the server is closed *and* every accepted
  connection is gone.  Python 3.11's asyncio returned at once when the server
  was already closed, even with connections left; pyloop does what the
  running Python does.

Connections are tracked through ``_attach(transport)``/``_detach(transport)``,
which transports call when they are created and after ``connection_lost``.
Transports are held weakly, as asyncio 3.13 does, so that a transport the
application dropped can still be collected (and warn about being unclosed);
a transport that cannot be weakly referenced, or a caller that passes no
transport (asyncio's own transports before 3.13), is counted instead.

Where asyncio's behaviour changed between Python versions (bind error text,
EADDRNOTAVAIL on one of several addresses, Unix socket file cleanup) pyloop
does what the running Python's asyncio does.
"""

import asyncio
import collections.abc
import contextvars
import errno
import itertools
import logging
import os
import socket
import sys
import weakref
from asyncio import constants as _constants
from asyncio import trsock as _trsock

from . import _syscalls
from .sockets import is_abstract_or_unnamed, os_error_text, set_reuse_port
from .tls import _check_server_ssl_timeouts, _check_ssl_socket, _check_ssl_timeouts

logger = logging.getLogger("asyncio")

_PY313 = sys.version_info >= (3, 13)
_HAS_IPV6 = hasattr(socket, "AF_INET6")

# accept() errors that mean "out of resources": retrying at once would spin.
_ACCEPT_RESOURCE_ERRNOS = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

# asyncio 3.12.1 fixed wait_closed() to wait for connections even when the
# server is already closed; earlier it returned at once.
_WAIT_CLOSED_WAITS_FOR_CLIENTS = sys.version_info >= (3, 12)
_HAS_CLOSE_CLIENTS = hasattr(asyncio.base_events.Server, "close_clients")


class Server(asyncio.AbstractServer):
    """A listening server created by ``loop.create_server`` and friends."""

    def __init__(self, loop, sockets, protocol_factory, ssl_context, backlog,
                 ssl_handshake_timeout, ssl_shutdown_timeout=None):
        self._loop = loop
        self._sockets = sockets          # list of sockets; None once closed
        self._clients = weakref.WeakSet()
        self._pinned_clients = set()     # transports without weakref support
        self._counted_clients = 0        # _attach() calls without a transport
        self._waiters = []               # None once wait_closed() may return
        self._protocol_factory = protocol_factory
        self._backlog = backlog
        self._ssl_context = ssl_context
        self._ssl_handshake_timeout = ssl_handshake_timeout
        self._ssl_shutdown_timeout = ssl_shutdown_timeout
        self._serving = False
        self._serving_forever_fut = None

    def __repr__(self):
        return f"<{type(self).__name__} sockets={self.sockets!r}>"

    # ---- connection tracking (called by transports) ---------------------

    @property
    def _active_count(self):
        """How many accepted connections are still alive."""
        return (len(self._clients) + len(self._pinned_clients)
                + self._counted_clients)

    def _attach(self, transport=None):
        if transport is None:
            self._counted_clients += 1
            return
        try:
            self._clients.add(transport)
        except TypeError:
            self._pinned_clients.add(transport)

    def _detach(self, transport=None):
        if transport is None:
            if self._counted_clients > 0:
                self._counted_clients -= 1
        else:
            self._clients.discard(transport)
            self._pinned_clients.discard(transport)
        if self._sockets is None and self._active_count == 0:
            self._wakeup()

    def _wakeup(self):
        waiters = self._waiters
        self._waiters = None
        if waiters is None:
            return
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _live_clients(self):
        return list(self._clients) + list(self._pinned_clients)

    # ---- serving --------------------------------------------------------

    def _start_serving(self):
        if self._serving:
            return
        if self._sockets is None:
            raise RuntimeError(f"server {self!r} is closed")
        self._serving = True
        for sock in self._sockets:
            sock.listen(self._backlog)
            self._loop._start_serving(
                self._protocol_factory, sock, self._ssl_context, self,
                self._backlog, self._ssl_handshake_timeout,
                self._ssl_shutdown_timeout)

    def get_loop(self):
        """Return the event loop the server belongs to."""
        return self._loop

    def is_serving(self):
        """Return True while the server accepts new connections."""
        return self._serving

    @property
    def sockets(self):
        """The listening sockets, as ``asyncio.trsock.TransportSocket``s
        (empty once the server is closed)."""
        if self._sockets is None:
            return ()
        return tuple(_trsock.TransportSocket(s) for s in self._sockets)

    def close(self):
        """Stop accepting and close the listening sockets.  Connections
        already accepted stay open.  Idempotent."""
        sockets = self._sockets
        if sockets is None:
            return
        self._sockets = None
        for sock in sockets:
            self._loop._stop_serving(sock)
        self._serving = False
        fut = self._serving_forever_fut
        if fut is not None and not fut.done():
            fut.cancel()
            self._serving_forever_fut = None
        if self._active_count == 0:
            self._wakeup()

    if _HAS_CLOSE_CLIENTS:
        def close_clients(self):
            """Close every accepted connection (``transport.close()``)."""
            for transport in self._live_clients():
                transport.close()

        def abort_clients(self):
            """Abort every accepted connection (``transport.abort()``)."""
            for transport in self._live_clients():
                transport.abort()

    async def start_serving(self):
        """Start accepting connections; does nothing if already serving."""
        self._start_serving()
        # One loop iteration, as asyncio: callers may rely on the yield.
        await asyncio.sleep(0)

    async def serve_forever(self):
        """Accept connections until cancelled; cancelling closes the server
        and waits for it to be closed."""
        if self._serving_forever_fut is not None:
            raise RuntimeError(
                f"server {self!r} is already being awaited on serve_forever()")
        if self._sockets is None:
            raise RuntimeError(f"server {self!r} is closed")
        self._start_serving()
        self._serving_forever_fut = self._loop.create_future()
        try:
            await self._serving_forever_fut
        except asyncio.CancelledError:
            try:
                self.close()
                await self.wait_closed()
            finally:
                raise
        finally:
            self._serving_forever_fut = None

    async def wait_closed(self):
        """Wait until the server is closed and its connections are gone.

        On Python 3.11 this returns at once if the server is already closed,
        as asyncio 3.11 does."""
        if self._waiters is None:
            return
        if not _WAIT_CLOSED_WAITS_FOR_CLIENTS and self._sockets is None:
            return
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        await waiter


class ServeMixin:
    """``create_server`` and ``create_unix_server`` of ``AbstractEventLoop``,
    and the accept loop of their ``Server``s.

    Service of ``Loop``: state created by ``_init_serving``, released by
    ``_close_serving`` (from ``close()``).  Needs from the loop:
    ``_ensure_resolved`` (DNSMixin), ``add_reader``/``remove_reader``,
    ``call_later``, ``create_task``, ``create_future``,
    ``call_exception_handler``, ``get_debug``, ``_make_socket_transport``
    and ``_make_ssl_transport`` (TLSMixin).
    """

    def _init_serving(self):
        self._unix_server_sockets = {}    # listening AF_UNIX socket -> inode of its file
        self._accept_retry_handles = {}   # listening socket -> TimerHandle

    def _close_serving(self):
        """Cancel the accept retries still pending (they hold the listening
        sockets).  Idempotent."""
        retries = self._accept_retry_handles
        while retries:
            retries.popitem()[1].cancel()

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
        _check_server_ssl_timeouts(ssl_handshake_timeout, ssl_shutdown_timeout)
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
        _check_server_ssl_timeouts(ssl_handshake_timeout, ssl_shutdown_timeout)

        if path is not None:
            if sock is not None:
                raise ValueError(
                    "path and sock can not be specified at the same time")
            path = os.fspath(path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            ours = True
        else:
            if sock is None:
                raise ValueError(
                    "path was not specified, and no sock specified")
            if (sock.family != socket.AF_UNIX
                    or sock.type != socket.SOCK_STREAM):
                raise ValueError(
                    f"A UNIX Domain Stream Socket was expected, got {sock!r}")
            ours = False

        # Whatever interrupts the set-up (an OSError, a signal handler's
        # exception, a cancellation), a socket we created is closed before the
        # exception leaves: nobody else holds it yet.
        try:
            if ours:
                self._bind_unix_server_socket(sock, path)
            if cleanup_socket:
                self._note_unix_socket_file(sock)
            sock.setblocking(False)
            server = Server(self, [sock], protocol_factory, ssl, backlog,
                            ssl_handshake_timeout, ssl_shutdown_timeout)
        except BaseException:
            self._unix_server_sockets.pop(sock, None)
            if ours:
                sock.close()
            raise
        if start_serving:
            try:
                server._start_serving()
                await asyncio.sleep(0)
            except BaseException:
                # The caller never gets the server: it must not keep serving.
                server.close()
                raise
        return server

    @staticmethod
    def _bind_unix_server_socket(sock, path):
        """Bind ``sock`` to ``path``, first removing a socket file an earlier
        server left there.  The file checks are made from C (``_syscalls``):
        made with ``os.stat``/``os.remove`` they would look like blocking calls
        to the detectors that only exempt asyncio's own frames."""
        try:
            _syscalls.remove_stale_unix_socket(path)
        except OSError as err:
            # The directory may let us create a socket without letting us stat.
            logger.error("Unable to check or remove stale UNIX socket %r: %r",
                         path, err)
        try:
            sock.bind(path)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise OSError(errno.EADDRINUSE,
                              f"Address {path!r} is already in use") from None
            raise

    def _note_unix_socket_file(self, sock):
        """Remember the inode of sock's file, to remove it on close only if
        it is still ours."""
        path = sock.getsockname()
        if is_abstract_or_unnamed(path):
            return
        try:
            inode = _syscalls.inode(path)
        except FileNotFoundError:
            return
        self._unix_server_sockets[sock] = inode

    def _forget_unix_socket_file(self, sock):
        """Before closing a listening socket: (path, inode) to clean up."""
        inode = self._unix_server_sockets.pop(sock, None)
        if inode is None:
            return None
        try:
            return sock.getsockname(), inode
        except OSError:
            return None

    @staticmethod
    def _cleanup_unix_socket_file(path, inode):
        try:
            if _syscalls.inode(path) == inode:
                _syscalls.unlink(path)
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
        handle = self._accept_retry_handles.pop(sock, None)
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
        self._accept_retry_handles[sock] = self.call_later(
            _constants.ACCEPT_RETRY_DELAY, self._resume_accepting,
            protocol_factory, sock, *args)

    def _resume_accepting(self, protocol_factory, sock, *args):
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
            self._accept_failed(exc, conn, protocol, transport)

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
            self._accept_failed(exc, conn, protocol, transport)

    def _accept_failed(self, exc, conn, protocol, transport):
        """Setting up an accepted connection failed: close ``conn`` unless a
        transport owns it already, and report."""
        if transport is None:
            # No transport could be made (the factory raised or gave an
            # unusable protocol): the application's bug, and the connection
            # is gone -- always reported, as uvloop does.
            conn.close()
        elif not self.get_debug():
            # As asyncio: a failed handshake is the peer's problem, reported
            # by the TLS layer itself; the log hears of it in debug mode only.
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
