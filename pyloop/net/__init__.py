"""TCP and Unix-socket networking as async streams, on any asyncio loop.

Listeners are async iterators of connections; connections are byte streams
with ``read``/``write_all`` and flow control both ways (see
:mod:`pyloop.net._stream` for the stream's rules).

    listener = await TcpListener.bind("127.0.0.1", 8000)
    async with listener:
        async for conn in listener:
            pyloop.task.spawn(handle(conn))   # held and reported, unlike create_task

Why a listener accepts only when asked
--------------------------------------
``loop.create_server`` accepts every connection the kernel offers and calls a
protocol at once, so a server that is slower than its clients would pile up
accepted connections in user space.  A listener here instead watches its
sockets only while some task waits in :meth:`Listener.accept` (or ``async
for``), and accepts one connection per call.  Connections nobody asked for wait
in the kernel's backlog (``backlog=``); when that is full the kernel stops
completing handshakes, which is the backpressure TCP clients understand.
Closing the listener closes its sockets, and the kernel resets every connection
still in the backlog, so no connection is left accepted but unowned.

Accepting also wraps the socket in a transport of the running loop
(``loop.connect_accepted_socket``), so TLS (``ssl=``) works: the handshake
happens inside ``accept()``, and a client whose handshake fails is dropped
without ending the ``async for``.

Errors
------
This module defines no exception of its own; it raises what the socket layer
and asyncio's streams would.  Bad arguments: ``TypeError`` for a host that is
not a string or a port that is not an int, ``OverflowError`` for a port
outside 0-65535; binding and connecting raise ``OSError``.  ``accept()`` on a
closed listener raises ``ConnectionAbortedError``.  On a stream:
``asyncio.IncompleteReadError`` when EOF comes before ``read_exact``'s bytes or
``read_until``'s separator, ``asyncio.LimitOverrunError`` when the separator is
not within ``max_size``, the connection's own error (``ConnectionResetError``
...) once it was lost, and ``RuntimeError`` for a write after ``close()`` or
``shutdown()`` and for two tasks reading at once.  All of the toolbox's errors
are listed together in docs/ARCHITECTURE.md, "Errors".
"""

from __future__ import annotations

import asyncio
import collections
import collections.abc
import functools
import os
import socket
import ssl as _ssl
import stat
from typing import Any, AsyncIterator, Callable, TypeVar

from ._stream import DEFAULT_LIMIT, Stream

__all__ = ["Stream", "TcpStream", "UnixStream", "Listener", "TcpListener", "UnixListener",
           "DEFAULT_LIMIT"]


def _check_host(host: Any) -> None:
    if host is not None and not isinstance(host, str):
        raise TypeError(f"host must be a str or None, not {type(host).__name__}")


def _check_port(port: Any) -> int:
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"port must be an int, not {type(port).__name__}")
    if not 0 <= port <= 65535:
        raise OverflowError(f"port must be 0-65535, got {port}")
    return port


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return value


def _check_ssl(ssl: Any, *, client: bool) -> None:
    if ssl is None or isinstance(ssl, _ssl.SSLContext):
        return
    if client and ssl is True:
        return
    raise TypeError(f"ssl must be an ssl.SSLContext or None, not {type(ssl).__name__}")


class _Pending(collections.abc.Coroutine):
    """The coroutine of ``bind()`` or ``connect()``, wrapped so that using it
    without ``await`` (``async with TcpListener.bind(...)``, ``async for conn in
    TcpListener.bind(...)``, ``TcpStream.connect(...).read()``) raises an error
    that names the call and the fix instead of "'coroutine' object does not
    support the asynchronous context manager protocol".  It is a
    ``collections.abc.Coroutine``, so ``await``, ``asyncio.create_task`` and
    ``TaskGroup.create_task`` take it as they take the coroutine itself."""

    __slots__ = ("_coro", "_what")

    def __init__(self, coro: Any, what: str) -> None:
        self._coro = coro
        self._what = what

    def _misuse(self, how: str, *, close: bool = True) -> str:
        if close:   # the statement failed, nothing will await it: no "never awaited" warning
            self._coro.close()
        return (f"{self._what} is a coroutine: await it first, as in "
                f"`{how.replace('CALL', 'await ' + self._what)}`")

    def send(self, value: Any) -> Any:
        return self._coro.send(value)

    def throw(self, *args: Any) -> Any:
        return self._coro.throw(*args)

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Any:
        return self._coro.__await__()

    def __getattr__(self, name: str) -> Any:
        if name.startswith(("cr_", "gi_", "__")):
            return getattr(self._coro, name)    # cr_frame, __qualname__... for asyncio's reprs
        raise AttributeError(self._misuse(f"x = CALL; x.{name}", close=False))

    def __aenter__(self) -> Any:
        raise TypeError(self._misuse("async with CALL as x:"))

    async def __aexit__(self, *exc: Any) -> None:
        pass

    def __aiter__(self) -> Any:
        raise TypeError(self._misuse("async for conn in CALL:"))

    def __repr__(self) -> str:
        return f"<{self._what} coroutine, not awaited>"


_F = TypeVar("_F", bound=Callable[..., Any])


def _await_first(what: str) -> Callable[[_F], _F]:
    def decorate(fn: _F) -> _F:
        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> _Pending:
            return _Pending(fn(*args, **kwargs), what)
        return call  # type: ignore[return-value]
    return decorate


class TcpStream(Stream):
    """A TCP connection (see :class:`Stream` for reading and writing).

    >>> s = await TcpStream.connect("127.0.0.1", 6379, timeout=5)
    >>> await s.write_all(b"PING\\r\\n")
    >>> await s.read_until(b"\\r\\n")
    b'+PONG\\r\\n'
    """

    @classmethod
    @_await_first("TcpStream.connect(...)")
    async def connect(cls, host: str, port: int, *, ssl: Any = None,
                      server_hostname: str | None = None, local_addr: Any = None,
                      timeout: float | None = None, limit: int = DEFAULT_LIMIT,
                      happy_eyeballs_delay: float | None = None) -> "TcpStream":
        """Connect to ``host:port`` (``ssl=True`` or a context for TLS).

        ``timeout`` bounds name resolution, connecting and the TLS handshake;
        past it, ``TimeoutError``.
        """
        if not isinstance(host, str):
            raise TypeError(f"host must be a str, not {type(host).__name__}")
        _check_port(port)
        _check_ssl(ssl, client=True)
        _check_int(limit, "limit", 1)
        loop = asyncio.get_running_loop()
        stream = cls(loop, limit)
        extra: dict[str, Any] = {}
        if happy_eyeballs_delay is not None:  # uvloop does not take the argument
            extra["happy_eyeballs_delay"] = happy_eyeballs_delay
        coro = loop.create_connection(
            stream._protocol, host, port, ssl=ssl, server_hostname=server_hostname,
            local_addr=local_addr, **extra)
        if timeout is None:
            await coro
        else:
            await asyncio.wait_for(coro, timeout)
        return stream


class UnixStream(Stream):
    """A Unix-domain socket connection (see :class:`Stream`).

    >>> s = await UnixStream.connect("/run/app.sock")
    """

    @classmethod
    @_await_first("UnixStream.connect(...)")
    async def connect(cls, path: Any, *, ssl: Any = None, server_hostname: str | None = None,
                      timeout: float | None = None,
                      limit: int = DEFAULT_LIMIT) -> "UnixStream":
        """Connect to the socket at ``path``."""
        path = os.fspath(path)
        _check_ssl(ssl, client=True)
        _check_int(limit, "limit", 1)
        loop = asyncio.get_running_loop()
        stream = cls(loop, limit)
        coro = loop.create_unix_connection(stream._protocol, path, ssl=ssl,
                                           server_hostname=server_hostname)
        if timeout is None:
            await coro
        else:
            await asyncio.wait_for(coro, timeout)
        return stream


class Listener:
    """Listening sockets that hand out connections on demand.  Use a subclass's ``bind``.

    ``accept()`` raises ``ConnectionAbortedError`` once the listener is closed;
    ``async for`` simply ends then.
    """

    _stream_class: type[Stream] = Stream

    def __init__(self, loop: asyncio.AbstractEventLoop, socks: list[socket.socket], *,
                 ssl: _ssl.SSLContext | None, ssl_handshake_timeout: float | None,
                 limit: int) -> None:
        self._loop = loop
        self._socks = socks
        self._ssl = ssl
        self._hs_timeout = ssl_handshake_timeout
        self._limit = limit
        self._waiters: collections.deque[asyncio.Future] = collections.deque()
        self._watching = False
        self._next = 0
        self._closed = False
        self._closed_fut: asyncio.Future = loop.create_future()

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        """The listening sockets."""
        return tuple(self._socks)

    @property
    def local_addr(self) -> Any:
        """The first listening socket's address (``getsockname()``)."""
        if not self._socks:
            raise ValueError("listener is closed")
        return self._socks[0].getsockname()

    sockname = local_addr

    def is_closed(self) -> bool:
        """True once ``close()`` was called: no more connections will be accepted."""
        return self._closed

    def __repr__(self) -> str:
        where = "closed" if self._closed else repr(self.local_addr)
        return f"<{type(self).__name__} {where}>"

    # -- watching the sockets only while someone waits
    def _on_readable(self) -> None:
        waiters = self._waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        self._unwatch()

    def _watch(self) -> None:
        if not self._watching:
            self._watching = True
            for s in self._socks:
                self._loop.add_reader(s.fileno(), self._on_readable)

    def _unwatch(self) -> None:
        if self._watching:
            self._watching = False
            for s in self._socks:
                self._loop.remove_reader(s.fileno())

    def _try_accept(self) -> tuple[socket.socket, Any] | None:
        socks = self._socks
        n = len(socks)
        for i in range(n):
            # Round-robin, so a busy IPv4 socket cannot starve the IPv6 one.
            sock = socks[(self._next + i) % n]
            try:
                conn, addr = sock.accept()
            except (BlockingIOError, InterruptedError):
                continue
            except ConnectionAbortedError:
                continue  # the client gave up before we got to it
            self._next = (self._next + i + 1) % n
            return conn, addr
        return None

    async def accept(self) -> tuple[Stream, Any]:
        """Wait for the next connection; returns ``(stream, peer_address)``."""
        while True:
            if self._closed:
                raise ConnectionAbortedError("listener is closed")
            got = self._try_accept()
            if got is None:
                fut = self._loop.create_future()
                self._waiters.append(fut)
                self._watch()
                try:
                    await fut
                finally:
                    try:
                        self._waiters.remove(fut)
                    except ValueError:
                        pass
                continue
            conn, addr = got
            try:
                conn.setblocking(False)
                stream = self._stream_class(self._loop, self._limit)
                await self._loop.connect_accepted_socket(
                    stream._protocol, conn, ssl=self._ssl,
                    ssl_handshake_timeout=self._hs_timeout)
            except (OSError, asyncio.TimeoutError):
                # A client that vanished or failed its TLS handshake must not
                # end the listener: drop it and accept the next one.
                conn.close()
                continue
            except BaseException:
                conn.close()
                raise
            return stream, addr

    def __aiter__(self) -> AsyncIterator[Stream]:
        return self

    async def __anext__(self) -> Stream:
        try:
            stream, _ = await self.accept()
        except ConnectionAbortedError:
            if self._closed:
                raise StopAsyncIteration from None
            raise
        return stream

    # -- closing
    def _cleanup(self) -> None:
        """Subclass hook run after the sockets are closed."""

    def close(self) -> None:
        """Stop listening: close the sockets (the kernel resets connections still in the
        backlog) and make waiting ``accept()`` calls raise, ending ``async for``."""
        if self._closed:
            return
        self._closed = True
        self._unwatch()
        for s in self._socks:
            s.close()
        self._socks = []
        self._cleanup()
        for fut in self._waiters:
            if not fut.done():
                fut.set_result(None)  # the woken accept() sees _closed and raises
        self._waiters.clear()
        self._closed_fut.set_result(None)

    async def wait_closed(self) -> None:
        """Wait until :meth:`close` has been called (by any task)."""
        await asyncio.shield(self._closed_fut)

    async def __aenter__(self) -> "Listener":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()
        await self.wait_closed()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True) and self._socks:
            import warnings
            warnings.warn(f"unclosed listener {self!r}", ResourceWarning, source=self)
            for s in self._socks:
                s.close()


def _bind_all(infos: list, port: int, backlog: int, reuse_address: bool,
              reuse_port: bool) -> list[socket.socket]:
    socks: list[socket.socket] = []
    seen = set()
    try:
        for af, kind, proto, _, addr in infos:
            if (af, addr) in seen:
                continue
            seen.add((af, addr))
            if port == 0 and socks:
                # Port 0 on several addresses: use the port the first one got, so
                # the listener has one port, not one per address family.
                addr = (addr[0], socks[0].getsockname()[1]) + tuple(addr[2:])
            sock = socket.socket(af, kind, proto)
            socks.append(sock)
            if reuse_address:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                if not hasattr(socket, "SO_REUSEPORT"):
                    raise ValueError("reuse_port not supported by socket module")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if af == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                # One socket per family, as asyncio does, so both can bind the port.
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(addr)
            except OSError as err:
                raise OSError(err.errno, f"error while attempting to bind on address "
                                         f"{addr!r}: {(err.strerror or str(err)).lower()}") from None
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for s in socks:
            s.close()
        raise
    return socks


class TcpListener(Listener):
    """A TCP listener: ``async for conn in listener`` yields :class:`TcpStream` objects.

    >>> listener = await TcpListener.bind("127.0.0.1", 0)
    >>> host, port = listener.local_addr
    >>> async for conn in listener:
    ...     pyloop.task.spawn(serve(conn))
    """

    _stream_class = TcpStream

    @classmethod
    @_await_first("TcpListener.bind(...)")
    async def bind(cls, host: str | None = None, port: int = 0, *, backlog: int = 128,
                   reuse_port: bool = False, reuse_address: bool | None = None,
                   family: int = socket.AF_UNSPEC, ssl: _ssl.SSLContext | None = None,
                   ssl_handshake_timeout: float | None = None,
                   limit: int = DEFAULT_LIMIT) -> "TcpListener":
        """Listen on ``host:port``; ``host=None`` or ``''`` means every interface (IPv4 and IPv6).

        ``port=0`` lets the OS pick a free port (read it from ``local_addr``).
        """
        _check_host(host)
        _check_port(port)
        _check_int(backlog, "backlog", 0)
        _check_int(limit, "limit", 1)
        _check_ssl(ssl, client=False)
        if ssl_handshake_timeout is not None and ssl is None:
            raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
        loop = asyncio.get_running_loop()
        if host == "":
            host = None
        infos = await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
        if not infos:
            raise OSError(f"getaddrinfo({host!r}) returned empty list")
        if reuse_address is None:
            reuse_address = os.name == "posix"
        socks = _bind_all(infos, port, backlog, reuse_address, reuse_port)
        return cls(loop, socks, ssl=ssl, ssl_handshake_timeout=ssl_handshake_timeout,
                   limit=limit)


class UnixListener(Listener):
    """A Unix-domain socket listener yielding :class:`UnixStream` objects.

    A stale socket file at ``path`` is replaced; closing the listener removes
    the file (unless something else has replaced it meanwhile).

    >>> async with await UnixListener.bind("/tmp/app.sock") as listener:
    ...     conn, _ = await listener.accept()
    """

    _stream_class = UnixStream

    def __init__(self, *args: Any, path: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._path = path
        self._ino: tuple[int, int] | None = None
        if path is not None:
            try:
                st = os.stat(path)
                self._ino = (st.st_dev, st.st_ino)
            except OSError:
                pass

    @property
    def path(self) -> Any:
        """The socket's filesystem path."""
        return self._path

    @classmethod
    @_await_first("UnixListener.bind(...)")
    async def bind(cls, path: Any, *, backlog: int = 128, ssl: _ssl.SSLContext | None = None,
                   ssl_handshake_timeout: float | None = None,
                   limit: int = DEFAULT_LIMIT) -> "UnixListener":
        """Listen on the Unix socket ``path`` (``str``, ``bytes`` or path-like; a leading
        NUL byte selects Linux's abstract namespace)."""
        path = os.fspath(path)
        _check_int(backlog, "backlog", 0)
        _check_int(limit, "limit", 1)
        _check_ssl(ssl, client=False)
        loop = asyncio.get_running_loop()
        abstract = path[:1] in ("\0", b"\0")
        if not abstract:
            try:
                if stat.S_ISSOCK(os.stat(path).st_mode):
                    os.remove(path)
            except FileNotFoundError:
                pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
            sock.listen(backlog)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return cls(loop, [sock], ssl=ssl, ssl_handshake_timeout=ssl_handshake_timeout,
                   limit=limit, path=None if abstract else path)

    def _cleanup(self) -> None:
        if self._path is None or self._ino is None:
            return
        try:
            st = os.stat(self._path)
            if (st.st_dev, st.st_ino) == self._ino:
                os.remove(self._path)
        except OSError:
            pass
