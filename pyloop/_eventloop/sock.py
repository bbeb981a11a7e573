"""Low-level socket operations: ``loop.sock_*`` on non-blocking sockets.

Every operation first tries the system call at once -- on a busy socket the
data is usually there -- and only when it would block registers a reader or
writer that retries it.  The watcher is removed when the future completes,
including by cancellation, so a cancelled ``sock_recv`` leaves the socket
usable and unwatched.  A watcher callback settles the operation's future
through ``_settle``: the result, or the error, or nothing yet when the
system call would block again.

Name resolution is in ``dns.py``, ``sock_sendfile`` in
``pyloop/_transports/sendfile.py``.
"""

import functools
import socket

from .dns import INET_FAMILIES

try:
    import ssl as _ssl
except ImportError:  # pragma: no cover - Python built without ssl
    _ssl = None

# What an attempt returns when it made progress but is not finished.
_NOT_YET = object()


class SockMixin:
    """``sock_*`` coroutines of ``AbstractEventLoop`` (``sock_sendfile`` is
    ``SendfileMixin``'s).

    Service of ``Loop``, no state of its own.  Needs from the loop:
    ``add_reader``/``add_writer``/``remove_reader``/``remove_writer``,
    ``_fd_watched`` (BaseLoop: the handles watching an fd), ``create_future``,
    ``get_debug``, ``is_closed`` and ``_ensure_resolved`` (DNSMixin).
    """

    # ---- helpers --------------------------------------------------------

    def _check_sock(self, sock):
        if _ssl is not None and isinstance(sock, _ssl.SSLSocket):
            raise TypeError("Socket cannot be of type SSLSocket")
        if self.get_debug() and sock.gettimeout() != 0:
            raise ValueError("the socket must be non-blocking")

    def _wait_fd(self, fd, writer, callback, *args):
        """Watch fd until the future (args[0]) is done, then unwatch it."""
        fut = args[0]
        if writer:
            self.add_writer(fd, callback, *args)
            handle = self._fd_watched(fd)[1]
        else:
            self.add_reader(fd, callback, *args)
            handle = self._fd_watched(fd)[0]
        fut.add_done_callback(
            functools.partial(self._unwatch_fd, fd, writer, handle))
        return fut

    def _unwatch_fd(self, fd, writer, handle, fut):
        # Only remove our own watcher: the socket may be watched by someone
        # else by now.
        if self.is_closed():
            return
        if self._fd_watched(fd)[1 if writer else 0] is handle:
            if writer:
                self.remove_writer(fd)
            else:
                self.remove_reader(fd)

    def _settle(self, fut, after, attempt, *args):
        """A watcher callback: call ``attempt(*args)`` and settle ``fut`` with
        its result (through ``after``) or its error; nothing while it would
        block or returns ``_NOT_YET``."""
        if fut.done():
            return
        try:
            result = attempt(*args)
        except (BlockingIOError, InterruptedError):
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            fut.set_exception(exc)
        else:
            if result is not _NOT_YET:
                fut.set_result(after(result) if after is not None else result)

    async def _sock_io(self, sock, writer, method, *args, after=None):
        try:
            result = getattr(sock, method)(*args)
        except (BlockingIOError, InterruptedError):
            pass
        else:
            return after(result) if after is not None else result
        fut = self.create_future()
        self._wait_fd(sock.fileno(), writer, self._settle, fut, after,
                      _call_sock_method, sock, method, args)
        return await fut

    # ---- receiving ------------------------------------------------------

    async def sock_recv(self, sock, n):
        """Receive up to ``n`` bytes from ``sock``."""
        self._check_sock(sock)
        return await self._sock_io(sock, False, "recv", n)

    async def sock_recv_into(self, sock, buf):
        """Receive into ``buf``; return the number of bytes received."""
        self._check_sock(sock)
        return await self._sock_io(sock, False, "recv_into", buf)

    async def sock_recvfrom(self, sock, bufsize):
        """Receive a datagram of up to ``bufsize`` bytes: ``(data, address)``."""
        self._check_sock(sock)
        return await self._sock_io(sock, False, "recvfrom", bufsize)

    async def sock_recvfrom_into(self, sock, buf, nbytes=0):
        """Receive a datagram into ``buf``: ``(nbytes, address)``."""
        self._check_sock(sock)
        if not nbytes:
            nbytes = len(buf)
        return await self._sock_io(sock, False, "recvfrom_into", buf, nbytes)

    async def sock_accept(self, sock):
        """Accept a connection: ``(conn, address)``, ``conn`` non-blocking."""
        self._check_sock(sock)
        return await self._sock_io(sock, False, "accept",
                                   after=_make_nonblocking)

    # ---- sending --------------------------------------------------------

    async def sock_sendall(self, sock, data):
        """Send all of ``data``, waiting for buffer space as needed."""
        self._check_sock(sock)
        try:
            sent = sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        view = memoryview(data)
        if sent == len(view):
            return
        fut = self.create_future()
        self._wait_fd(sock.fileno(), True, self._settle, fut, None,
                      _send_more, sock, view, [sent])
        return await fut

    async def sock_sendto(self, sock, data, address):
        """Send a datagram to ``address``; return the number of bytes sent."""
        self._check_sock(sock)
        return await self._sock_io(sock, True, "sendto", data, address)

    # ---- connecting -----------------------------------------------------

    async def sock_connect(self, sock, address):
        """Connect ``sock`` to ``address`` (resolved first for IP sockets)."""
        self._check_sock(sock)
        if sock.family in INET_FAMILIES:
            resolved = await self._ensure_resolved(
                address, family=sock.family, type=sock.type, proto=sock.proto)
            address = resolved[0][4]
        try:
            sock.connect(address)
            return
        except (BlockingIOError, InterruptedError):
            pass
        fut = self.create_future()
        self._wait_fd(sock.fileno(), True, self._settle, fut, None,
                      _connect_result, sock, address)
        return await fut


def _call_sock_method(sock, method, args):
    # The method is looked up on every try, as asyncio does: tests and
    # wrappers swap a socket's methods while an operation waits.
    return getattr(sock, method)(*args)


def _send_more(sock, view, progress):
    """One more send of what ``sock_sendall`` has left; ``progress[0]`` is
    how much went out so far."""
    start = progress[0] + sock.send(view[progress[0]:])
    if start == len(view):
        return None
    progress[0] = start
    return _NOT_YET


def _connect_result(sock, address):
    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err != 0:
        raise OSError(err, f"Connect call failed {address}")
    return None


def _make_nonblocking(accepted):
    conn, address = accepted
    conn.setblocking(False)
    return conn, address
