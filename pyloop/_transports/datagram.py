"""Datagram endpoints: ``loop.create_datagram_endpoint`` and its transport.

Plain Python on the loop's fd API: datagram traffic is rarely the hot path of
an asyncio program, and every datagram costs a system call anyway.

How the transport behaves (asyncio's documented semantics):

* ``sendto`` tries the system call at once when nothing is queued -- the usual
  case -- and queues a copy of the datagram only when the socket would block;
  the queue is flushed, in order, when the socket becomes writable.  Queued
  bytes count towards write flow control (``pause_writing`` above the high
  water mark, ``resume_writing`` at or below the low one).
* ``sendto`` takes IP addresses, not host names: resolving one is a DNS
  lookup, which the socket module would make right there, blocking the loop.
  A host name is refused with ``ValueError`` (as uvloop does; asyncio blocks),
  the transport staying open; resolve it first with ``loop.getaddrinfo``.  So
  is an IP literal of the wrong family for the socket (``"::1"`` on an
  ``AF_INET`` endpoint, ``"127.0.0.1"`` on an ``AF_INET6`` one): "socket family
  mismatch", as uvloop; asyncio hands ``error_received`` the ``socket.gaierror``
  the socket module raises.
* An ``OSError`` while sending or receiving (say ``ECONNREFUSED`` after an ICMP
  port-unreachable on a connected socket) is news for the protocol, not the end
  of the endpoint: it goes to ``protocol.error_received`` and the transport
  stays open.  Anything else (a ``TypeError`` for a malformed address, ...) is
  reported to the loop's exception handler and closes the transport with that
  exception.
* ``close`` stops reading at once and calls ``connection_lost(None)`` once the
  queue is flushed; ``abort`` drops the queue.  ``connection_lost`` runs exactly
  once, from the loop, never from inside the call that caused it; the socket is
  closed right after it.
* A transport that is garbage collected while still open warns with
  ``ResourceWarning`` and closes its socket.
* Every protocol callback runs in the protocol's context (``fd_transport``):
  ``datagram_received``, and ``error_received`` for a failed receive or a
  queued datagram, in it; ``error_received`` for a ``sendto`` that fails at
  once in a copy of it, as uvloop does (``sendto`` may be called from inside
  one of the protocol's callbacks, where the context is entered already).
"""

import collections
import contextvars
import logging
import socket
import sys
from asyncio import transports as _aio_transports
from asyncio import trsock as _aio_trsock

from .fd_transport import (
    FdTransport,
    ReadingControl,
    call_in_context,
    fd_ops,
    register_transport,
    wake_waiter,
    watch_write,
)
from .flow import WRITES_AFTER_LOSS_BEFORE_WARNING, WriteFlowControl
from .sockets import remove_stale_unix_socket, set_reuse_port

logger = logging.getLogger("asyncio")

# Python 3.13 made sendto(b'') send an empty datagram; before, it was ignored.
_SENDS_EMPTY_DATAGRAMS = sys.version_info >= (3, 13)
# ... and says "datagram" where it said "UDP" when sock= is not SOCK_DGRAM (Unix ones count too).
_NOT_DATAGRAM = "A datagram socket" if sys.version_info >= (3, 13) else "A UDP Socket"

_IP_FAMILIES = (socket.AF_INET, getattr(socket, "AF_INET6", socket.AF_INET))
_MAX_UDP_PAYLOAD = 65536     # an IPv4/IPv6 length field caps it below this


class DatagramTransport(ReadingControl, WriteFlowControl, FdTransport,
                        _aio_transports.DatagramTransport,
                        _aio_transports.Transport):
    """A datagram socket driven by the loop (what ``create_datagram_endpoint``
    returns).

    Also an ``asyncio.Transport``, as asyncio's own datagram transport is
    (code checks ``isinstance(tr, asyncio.Transport)``); its stream-only
    ``write`` raises NotImplementedError.
    """

    # Largest datagram read (larger AF_UNIX datagrams are truncated).
    max_size = 256 * 1024

    # Read by __del__ and __repr__, which may run on a half-built instance.
    _OWNED = "_sock"
    _sock = None
    _loop = None
    _closing = False

    def __init__(self, loop, sock, protocol, address=None, waiter=None,
                 extra=None):
        super().__init__(extra)
        self._loop = loop
        self._protocol = protocol
        self._context = contextvars.copy_context()
        self._fileno = sock.fileno()
        self._extra["socket"] = _aio_trsock.TransportSocket(sock)
        # recvfrom(n) mallocs n bytes before it knows the datagram's size, and
        # glibc serves 256 KiB with mmap/munmap: measured here, that made
        # each read ~50 us slower than a 64 KiB one.  No UDP payload exceeds
        # 64 KiB, so IP sockets read that much; other families (AF_UNIX can
        # carry bigger datagrams) read into one reusable buffer and copy.
        if sock.family in _IP_FAMILIES:
            self._recv_size = min(self.max_size, _MAX_UDP_PAYLOAD)
            self._recv_view = None
        else:
            self._recv_view = memoryview(bytearray(self.max_size))
        try:
            self._extra["sockname"] = sock.getsockname()
        except OSError:
            self._extra["sockname"] = None
        try:
            peer = sock.getpeername()
        except OSError:
            peer = None
            self._connected = False
        else:
            self._connected = True
        if "peername" not in self._extra:
            self._extra["peername"] = peer
        # The one destination allowed, for a transport made with remote_addr.
        self._address = address
        self._buffer = collections.deque()   # (bytes, address) pairs
        self._buffer_size = 0
        self._paused = False
        self._reader_on = False
        self._writer_on = False
        self._conn_lost = False              # connection_lost is scheduled
        self._writes_after_loss = 0
        self._init_write_flow(self._context)
        (self._add_reader, self._remove_reader,
         self._add_writer, self._remove_writer) = fd_ops(loop)
        call_in_context(self, protocol.connection_made, self)
        # Reading starts once connection_made() has run; the creator is told
        # after that.
        loop.call_soon(self._start_reading)
        if waiter is not None:
            loop.call_soon(wake_waiter, waiter)
        # Owned only now: if scheduling failed (closed loop) the socket is
        # still the creator's to close, and __del__ must not warn.
        self._sock = sock
        register_transport(loop, self._fileno, self)

    # ---- state ----------------------------------------------------------

    def __repr__(self):
        parts = [type(self).__name__]
        if self._sock is None:
            parts.append("closed")
        elif self._closing:
            parts.append("closing")
        parts.append(f'fd={getattr(self, "_fileno", None)}')
        if self._sock is not None and self._loop is not None \
                and not self._loop.is_closed():
            parts.append("read=polling" if self._reader_on else "read=idle")
            state = "polling" if self._writer_on else "idle"
            parts.append(f"write=<{state}, bufsize={self._buffer_size}>")
        return "<{}>".format(" ".join(parts))

    def get_write_buffer_size(self):
        """Bytes of datagrams queued but not yet handed to the kernel."""
        return self._buffer_size

    # ---- reading --------------------------------------------------------

    def _read_ready(self):
        if self._conn_lost:
            return
        try:
            view = self._recv_view
            if view is None:
                data, addr = self._sock.recvfrom(self._recv_size)
            else:
                nbytes, addr = self._sock.recvfrom_into(view)
                data = bytes(view[:nbytes])
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._protocol.error_received(exc)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal read error on datagram transport")
        else:
            self._protocol.datagram_received(data, addr)

    # ---- writing --------------------------------------------------------

    def sendto(self, data, addr=None):
        """Send ``data`` to ``addr`` (to the endpoint's remote address when the
        transport was made with one; ``addr`` must then be None or equal it)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data argument must be a bytes-like object, "
                            f"not {type(data).__name__!r}")
        if not data and not _SENDS_EMPTY_DATAGRAMS:
            return
        if self._address is not None:
            if addr is not None and addr != self._address:
                raise ValueError(
                    f"Invalid address: must be None or {self._address}")
            addr = self._address
        if self._conn_lost:
            if self._writes_after_loss >= WRITES_AFTER_LOSS_BEFORE_WARNING:
                logger.warning("socket.send() raised exception.")
            self._writes_after_loss += 1
            return
        if (addr is not None and not self._connected
                and self._sock.family in _IP_FAMILIES):
            _check_destination(addr, self._sock.family)

        if not self._buffer:
            if self._send_now(data, addr, queued=False) is not False:
                return
            watch_write(self, self._write_ready)
            self._writer_on = True

        # Queue a private copy: the caller may reuse a bytearray at once.
        data = bytes(data)
        self._buffer.append((data, addr))
        self._buffer_size += len(data)
        self._maybe_pause_protocol()

    def _send(self, data, addr):
        # A connected socket needs no address (and an unnamed AF_UNIX peer has
        # none to give); an unconnected one without an address fails with an
        # OSError (EDESTADDRREQ) that reaches error_received.
        if self._connected or addr is None:
            self._sock.send(data)
        else:
            self._sock.sendto(data, addr)

    def _send_now(self, data, addr, queued):
        """Try one datagram now.  True: done with it (sent, or its OSError went
        to ``error_received``); False: the socket would block; None: a fatal
        error closed the transport.  A ``queued`` datagram (the head of the
        queue) leaves the queue before ``error_received`` sees its error."""
        try:
            self._send(data, addr)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            if queued:
                # From the writer's watch: in the protocol's context already.
                self._dequeue_head(data)
                self._protocol.error_received(exc)
            else:
                self._context.copy().run(self._protocol.error_received, exc)
            return True
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal write error on datagram transport")
            return None
        if queued:
            self._dequeue_head(data)
        return True

    def _dequeue_head(self, data):
        self._buffer.popleft()
        self._buffer_size -= len(data)

    def _write_ready(self):
        buffer = self._buffer
        while buffer:
            data, addr = buffer[0]
            done = self._send_now(data, addr, queued=True)
            if done is None or self._conn_lost:   # error_received() aborted us
                return
            if not done:
                break

        self._maybe_resume_protocol()   # may queue more
        if not self._buffer and not self._conn_lost:
            self._writer_on = False
            self._remove_writer(self._fileno)
            if self._closing:
                self._conn_lost = True
                self._call_connection_lost(None)

    # ---- closing --------------------------------------------------------

    def close(self):
        """Stop reading now; ``connection_lost(None)`` follows once the queued
        datagrams are sent."""
        if self._closing:
            return
        self._closing = True
        self._stop_reading()
        if not self._buffer:
            self._conn_lost = True
            if self._writer_on:
                self._writer_on = False
                self._remove_writer(self._fileno)
            call_in_context(self, self._call_connection_lost, None)

    def abort(self):
        """Close at once, dropping queued datagrams."""
        self._close(None)

    def _close(self, exc):
        if self._conn_lost:
            return
        self._conn_lost = True
        if self._buffer:
            self._buffer.clear()
            self._buffer_size = 0
        if self._writer_on:
            self._writer_on = False
            self._remove_writer(self._fileno)
        if not self._closing:
            self._closing = True
            self._stop_reading()
        call_in_context(self, self._call_connection_lost, exc)

    def _call_connection_lost(self, exc):
        try:
            super()._call_connection_lost(exc)
        finally:
            self._recv_view = None


class DatagramMixin:
    """``create_datagram_endpoint`` of ``AbstractEventLoop``.

    Service of ``Loop``, no state of its own.  Needs from the loop:
    ``_ensure_resolved`` (DNSMixin), ``sock_connect`` (SockMixin),
    ``create_future``, ``get_debug``.
    """

    async def create_datagram_endpoint(self, protocol_factory,
                                       local_addr=None, remote_addr=None, *,
                                       family=0, proto=0, flags=0,
                                       reuse_port=None, allow_broadcast=None,
                                       sock=None):
        """Create a datagram endpoint: ``(transport, protocol)``.

        With ``sock``, use that (``SOCK_DGRAM``) socket as it is.  Otherwise
        make a socket for ``local_addr`` (bound) and/or ``remote_addr``
        (connected, or with ``allow_broadcast`` only remembered as the
        default destination), trying each address family the names resolve
        to; ``family=AF_UNIX`` takes socket paths.
        """
        if sock is not None:
            if sock.type != socket.SOCK_DGRAM:
                raise ValueError(f"{_NOT_DATAGRAM} was expected, got {sock!r}")
            given = dict(local_addr=local_addr, remote_addr=remote_addr,
                         family=family, proto=proto, flags=flags,
                         reuse_port=reuse_port, allow_broadcast=allow_broadcast)
            problems = ", ".join(f"{k}={v}" for k, v in given.items() if v)
            if problems:
                raise ValueError(
                    f"socket modifier keyword arguments can not be used "
                    f"when sock is specified. ({problems})")
            sock.setblocking(False)
            r_addr = None
        else:
            candidates = await self._datagram_candidates(
                local_addr, remote_addr, family, proto, flags)
            sock, r_addr = await self._open_datagram_socket(
                candidates, local_addr, remote_addr, reuse_port,
                allow_broadcast)

        try:
            protocol = protocol_factory()
            waiter = self.create_future()
            transport = DatagramTransport(self, sock, protocol, r_addr, waiter)
        except BaseException:
            sock.close()
            raise
        if self.get_debug():
            if local_addr:
                logger.info("Datagram endpoint local_addr=%r remote_addr=%r "
                            "created: (%r, %r)", local_addr, remote_addr,
                            transport, protocol)
            else:
                logger.debug("Datagram endpoint remote_addr=%r created: "
                             "(%r, %r)", remote_addr, transport, protocol)
        try:
            await waiter
        except BaseException:
            transport.close()
            raise
        return transport, protocol

    async def _datagram_candidates(self, local_addr, remote_addr, family,
                                   proto, flags):
        """[((family, proto), (local, remote)), ...] to try in order."""
        if not (local_addr or remote_addr):
            if family == 0:
                raise ValueError("unexpected address family")
            return [((family, proto), (None, None))]

        if family == getattr(socket, "AF_UNIX", None):
            for addr in (local_addr, remote_addr):
                if addr is not None and not isinstance(addr, str):
                    raise TypeError("string is expected")
            if local_addr:
                remove_stale_unix_socket(local_addr)
            return [((family, proto), (local_addr, remote_addr))]

        # Group the resolved addresses by (family, proto), keeping the
        # resolver's order; a group is usable only if it has an address for
        # each side that was asked for.
        groups = {}
        for side, addr in ((0, local_addr), (1, remote_addr)):
            if addr is None:
                continue
            if not (isinstance(addr, tuple) and len(addr) == 2):
                raise TypeError("2-tuple is expected")
            infos = await self._ensure_resolved(
                addr, family=family, type=socket.SOCK_DGRAM, proto=proto,
                flags=flags)
            if not infos:
                raise OSError("getaddrinfo() returned empty list")
            for fam, _type, pro, _cname, address in infos:
                pair = groups.setdefault((fam, pro), [None, None])
                if pair[side] is None:
                    pair[side] = address
        candidates = [
            (key, pair) for key, pair in groups.items()
            if not ((local_addr and pair[0] is None)
                    or (remote_addr and pair[1] is None))]
        if not candidates:
            raise ValueError("can not get address information")
        return candidates

    async def _open_datagram_socket(self, candidates, local_addr, remote_addr,
                                    reuse_port, allow_broadcast):
        """The first candidate that binds and connects: (sock, remote)."""
        errors = []
        for (fam, pro), (local, remote) in candidates:
            sock = None
            try:
                sock = socket.socket(family=fam, type=socket.SOCK_DGRAM,
                                     proto=pro)
                if reuse_port:
                    set_reuse_port(sock)
                if allow_broadcast:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
                sock.setblocking(False)
                if local_addr:
                    sock.bind(local)
                if remote_addr:
                    # A broadcasting endpoint stays unconnected, so that it
                    # can also send elsewhere (and hear replies from anyone).
                    if not allow_broadcast:
                        await self.sock_connect(sock, remote)
                    return sock, remote
                return sock, None
            except OSError as exc:
                if sock is not None:
                    sock.close()
                errors.append(exc)
            except BaseException:
                if sock is not None:
                    sock.close()
                raise
        try:
            raise errors[0]
        finally:
            errors = None


def _check_destination(addr, family):
    """Refuse, with ValueError, an ``addr`` that ``socket.sendto`` on an
    unconnected IP socket of ``family`` would have to resolve (a blocking DNS
    lookup inside the loop), or could never send to (an IP literal of the other
    family: uvloop refuses it; the socket module fails with gaierror)."""
    host_family = _host_family(addr)
    if host_family is None:
        raise ValueError(
            f"sendto(): {addr!r} names a host, whose address would take a "
            f"DNS lookup inside the event loop: resolve it first (await "
            f"loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)) and send "
            f"to the address it gives")
    if host_family and host_family != family:
        given = "IPv4" if host_family == socket.AF_INET else "IPv6"
        raise ValueError(
            f"sendto(): socket family mismatch: {addr!r} is an {given} address "
            f"and the socket is {socket.AddressFamily(family).name}")


def _host_family(addr):
    """The family of ``addr``'s host as ``socket.sendto(data, addr)`` takes it:
    AF_INET or AF_INET6 for an IP literal (an IPv6 one may carry a ``%scope``,
    an interface name looked up locally); 0 for what has no family to check:
    the two names the socket module translates itself ("" for any address,
    "<broadcast>"), and a malformed address, which is not for us to judge
    (sendto reports it as before).  None for a host name, which sendto would
    resolve by name (a blocking lookup)."""
    if type(addr) is not tuple or len(addr) < 2:
        return 0
    host = addr[0]
    if isinstance(host, (bytes, bytearray)):
        try:
            host = host.decode("ascii")
        except UnicodeDecodeError:
            return None     # an internationalised name
    elif not isinstance(host, str):
        return 0
    if host == "" or host == "<broadcast>":
        return 0
    try:
        socket.inet_pton(socket.AF_INET, host)
        return socket.AF_INET
    except (OSError, ValueError):
        pass
    try:
        socket.inet_pton(_IP_FAMILIES[1], host.partition("%")[0])
        return _IP_FAMILIES[1]
    except (OSError, ValueError):
        return None
