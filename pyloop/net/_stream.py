"""The connection half of :mod:`pyloop.net`: a byte stream over a loop transport.

:class:`Stream` owns the state; :class:`_StreamProtocol` is the object the
transport calls, and only forwards to it (keeping ``data_received`` and friends
off the public class).  Incoming data is kept as a queue of the ``bytes``
objects the transport delivered plus an offset into the first one, so
``read()`` of a whole chunk hands that very object back with no copy, and
``read_exact`` of small headers out of a large chunk never re-copies the rest.

Flow control, both ways:

* reading: when more than ``limit`` bytes wait unread, the transport is told to
  ``pause_reading()``; the kernel's socket buffer then fills and TCP slows the
  peer.  Reading resumes once the buffer is down to half the limit (hysteresis,
  so a reader taking small pieces does not toggle it per call), or at once when
  a reader waits for more than is buffered (``read_exact(n)`` with ``n`` above
  the limit must not deadlock).
* writing: ``write()`` queues into the transport and never waits;
  ``drain()``/``write_all()`` wait while the transport is above its high-water
  mark (between ``pause_writing`` and ``resume_writing``).

Endings: the peer's EOF makes reads return ``b''`` once the buffer is empty,
while writing stays possible (half-close).  A connection lost with an error
(``ConnectionResetError``...) raises that error from reads once buffered data is
consumed, and from writes at once.  After the stream's own ``close()``, reads
return what was buffered and then ``b''``; writes raise ``RuntimeError``.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any, AsyncIterator

__all__ = ["Stream", "DEFAULT_LIMIT"]

#: Unread bytes kept before the transport is paused.  256 KiB holds several
#: socket-buffer's worth, so a steady reader never pauses the transport.
DEFAULT_LIMIT = 256 * 1024


class _StreamProtocol(asyncio.Protocol):
    __slots__ = ("_s",)

    def __init__(self, stream: "Stream") -> None:
        self._s = stream

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        s = self._s
        s._transport = transport  # type: ignore[assignment]
        s._tls = transport.get_extra_info("sslcontext") is not None

    def data_received(self, data: bytes) -> None:
        s = self._s
        s._chunks.append(data)
        s._size += len(data)
        if s._size > s._limit and not s._read_paused:
            s._pause_reading()
        w = s._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def eof_received(self) -> bool:
        self._s._set_eof()
        # True keeps the transport open for writing: the peer only half-closed.
        # TLS has no half-close (asyncio warns if asked), so there it closes.
        return not self._s._tls

    def connection_lost(self, exc: BaseException | None) -> None:
        self._s._on_lost(exc)

    def pause_writing(self) -> None:
        self._s._write_paused = True

    def resume_writing(self) -> None:
        s = self._s
        s._write_paused = False
        for fut in s._drainers:
            if not fut.done():
                fut.set_result(None)
        s._drainers.clear()


def _check_size(n: Any, name: str = "n") -> int:
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"{name} must be an int, not {type(n).__name__}")
    return n


class Stream:
    """A connected byte stream; made by ``TcpStream.connect``, ``UnixStream.connect`` or a listener.

    One task may read while another writes; two tasks waiting to read at once
    is an error (``RuntimeError``), as with asyncio streams.

    >>> async with await TcpStream.connect("example.org", 80) as s:
    ...     await s.write_all(b"HEAD / HTTP/1.0\\r\\n\\r\\n")
    ...     async for chunk in s:
    ...         print(chunk)
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int = DEFAULT_LIMIT) -> None:
        self._loop = loop
        self._limit = limit
        self._transport: asyncio.Transport | None = None
        self._tls = False
        self._chunks: collections.deque[bytes] = collections.deque()
        self._off = 0            # bytes of _chunks[0] already read
        self._size = 0           # unread bytes in _chunks
        self._eof = False
        self._exc: BaseException | None = None
        self._lost = False
        self._closing = False
        self._shut = False
        self._read_paused = False
        self._write_paused = False
        self._waiter: asyncio.Future | None = None
        self._drainers: list[asyncio.Future] = []
        self._closed_fut: asyncio.Future = loop.create_future()

    def _protocol(self) -> _StreamProtocol:
        return _StreamProtocol(self)

    # -- transport events
    def _pause_reading(self) -> None:
        self._read_paused = True
        try:
            self._transport.pause_reading()  # type: ignore[union-attr]
        except (AttributeError, NotImplementedError, RuntimeError):
            self._read_paused = False

    def _resume_reading(self) -> None:
        self._read_paused = False
        t = self._transport
        if t is not None and not self._lost:
            try:
                t.resume_reading()
            except (NotImplementedError, RuntimeError):
                pass

    def _wake_reader(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _set_eof(self) -> None:
        self._eof = True
        self._wake_reader()

    def _on_lost(self, exc: BaseException | None) -> None:
        self._lost = True
        self._eof = True
        if exc is not None and not self._closing:
            self._exc = exc
        self._wake_reader()
        err = self._exc or ConnectionResetError("connection lost")
        for fut in self._drainers:
            if not fut.done():
                fut.set_exception(err)
        self._drainers.clear()
        if not self._closed_fut.done():
            self._closed_fut.set_result(None)

    # -- addresses and state
    @property
    def peer_addr(self) -> Any:
        """The remote address (``getpeername()``)."""
        return self.get_extra_info("peername")

    @property
    def local_addr(self) -> Any:
        """The local address (``getsockname()``)."""
        return self.get_extra_info("sockname")

    @property
    def transport(self) -> asyncio.Transport | None:
        """The underlying transport."""
        return self._transport

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """Transport information, as :meth:`asyncio.BaseTransport.get_extra_info`."""
        t = self._transport
        return default if t is None else t.get_extra_info(name, default)

    def is_closing(self) -> bool:
        """Whether ``close()`` was called or the connection is gone."""
        return self._closing or self._lost

    @property
    def buffered(self) -> int:
        """Bytes received and not yet read."""
        return self._size

    def at_eof(self) -> bool:
        """True once the peer's EOF was seen and every buffered byte was read."""
        return self._eof and not self._size

    def __repr__(self) -> str:
        state = "closed" if self.is_closing() else "open"
        return f"<{type(self).__name__} {state} peer={self.peer_addr!r} buffered={self._size}>"

    # -- reading
    def _take(self, n: int) -> bytes:
        """Remove and return up to n buffered bytes (n > 0, buffer non-empty)."""
        chunks = self._chunks
        first = chunks[0]
        off = self._off
        avail = len(first) - off
        if avail > n:
            self._off = off + n
            out = first[off:off + n]
        elif len(chunks) == 1 or avail == n:
            chunks.popleft()
            self._off = 0
            out = first if off == 0 else first[off:]
        else:
            parts = [first[off:]]
            chunks.popleft()
            got = avail
            while chunks and got < n:
                c = chunks[0]
                if len(c) <= n - got:
                    parts.append(chunks.popleft())
                    got += len(c)
                else:
                    parts.append(c[:n - got])
                    self._off = n - got
                    got = n
                    break
            else:
                self._off = 0
            out = b"".join(parts)
        self._size -= len(out)
        if self._read_paused and self._size <= self._limit // 2:
            self._resume_reading()
        return out

    def _coalesce(self) -> bytes:
        """Make the buffer one chunk and return it."""
        chunks = self._chunks
        if len(chunks) != 1 or self._off:
            joined = b"".join(chunks)[self._off:] if len(chunks) != 1 else chunks[0][self._off:]
            chunks.clear()
            chunks.append(joined)
            self._off = 0
        return chunks[0]

    async def _wait_data(self, what: str) -> None:
        if self._waiter is not None:
            raise RuntimeError(
                f"{what}() called while another task is already waiting for incoming data")
        if self._read_paused:
            self._resume_reading()
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _ended(self) -> bool:
        """At end of buffered data with no more to come; raises a connection error."""
        if self._exc is not None:
            raise self._exc
        return self._eof

    async def read(self, n: int = 65536) -> bytes:
        """Read up to ``n`` bytes (as soon as any are available); ``b''`` at EOF.

        ``n < 0`` reads everything until EOF.
        """
        _check_size(n)
        if n < 0:
            return await self.read_to_end()
        if n == 0:
            return b""
        while not self._size:
            if self._eof and self._ended():
                return b""
            await self._wait_data("read")
        return self._take(n)

    async def read_exact(self, n: int) -> bytes:
        """Read exactly ``n`` bytes; ``asyncio.IncompleteReadError`` if EOF comes first."""
        _check_size(n)
        if n < 0:
            raise ValueError("read_exact size can not be less than zero")
        while self._size < n:
            if self._eof:
                self._ended()
                partial = self._take(self._size) if self._size else b""
                raise asyncio.IncompleteReadError(partial, n)
            await self._wait_data("read_exact")
        return self._take(n) if n else b""

    async def read_until(self, separator: bytes = b"\n", *, max_size: int | None = None) -> bytes:
        """Read up to and including ``separator``.

        At EOF without it: ``asyncio.IncompleteReadError`` (``.partial`` holds the
        data).  More than ``max_size`` bytes (default: the stream's limit) without
        it: ``asyncio.LimitOverrunError``, and the data stays buffered.
        """
        if not isinstance(separator, (bytes, bytearray, memoryview)):
            raise TypeError(f"separator must be bytes, not {type(separator).__name__}")
        separator = bytes(separator)
        if not separator:
            raise ValueError("separator should be at least one-byte string")
        limit = self._limit if max_size is None else _check_size(max_size, "max_size")
        scanned = 0
        while True:
            if self._size:
                buf = self._coalesce()
                i = buf.find(separator, scanned)
                if i >= 0:
                    end = i + len(separator)
                    if end > limit:
                        raise asyncio.LimitOverrunError(
                            "separator is found, but chunk is longer than limit", i)
                    return self._take(end)
                if len(buf) > limit:
                    raise asyncio.LimitOverrunError(
                        "separator is not found, and chunk exceeds the limit", len(buf))
                scanned = max(0, len(buf) - len(separator) + 1)
            if self._eof:
                self._ended()
                partial = self._take(self._size) if self._size else b""
                raise asyncio.IncompleteReadError(partial, None)
            await self._wait_data("read_until")

    async def read_to_end(self) -> bytes:
        """Read everything until EOF."""
        parts: list[bytes] = []
        while True:
            while not self._size:
                if self._eof and self._ended():
                    return b"".join(parts)
                await self._wait_data("read_to_end")
            parts.append(self._take(self._size))

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        data = await self.read()
        if not data:
            raise StopAsyncIteration
        return data

    # -- writing
    def _check_writable(self) -> None:
        if self._exc is not None:
            raise self._exc
        if self._closing:
            raise RuntimeError("stream is closed")
        if self._lost:
            raise ConnectionResetError("connection lost")
        if self._shut:
            raise RuntimeError("cannot write after shutdown()")

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data`` for sending without waiting; pair with :meth:`drain`."""
        self._check_writable()
        self._transport.write(data)  # type: ignore[union-attr]

    async def drain(self) -> None:
        """Wait until the transport's write buffer is below its high-water mark."""
        if self._write_paused:
            self._check_writable()
            fut = self._loop.create_future()
            self._drainers.append(fut)
            await fut
        elif self._exc is not None:
            raise self._exc

    async def write_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data``, waiting while the transport's buffer is above its high-water mark."""
        self._check_writable()
        self._transport.write(data)  # type: ignore[union-attr]
        if self._write_paused:
            await self.drain()

    async def shutdown(self) -> None:
        """Half-close: send EOF once buffered data is out; reading goes on.

        TLS connections cannot half-close: ``NotImplementedError`` (use ``close``).
        """
        if self._shut or self._closing or self._lost:
            return
        if not self._transport.can_write_eof():  # type: ignore[union-attr]
            raise NotImplementedError("this transport cannot half-close (TLS has no "
                                      "half-close); use close()")
        await self.drain()
        if not (self._shut or self._closing or self._lost):
            self._shut = True
            self._transport.write_eof()  # type: ignore[union-attr]

    # -- closing
    def close(self) -> None:
        """Close the connection; data already written is still sent first."""
        if not self._closing:
            self._closing = True
            if self._transport is not None:
                self._transport.close()

    def abort(self) -> None:
        """Close at once, discarding unsent data (the peer may see a reset)."""
        self._closing = True
        if self._transport is not None:
            self._transport.abort()

    async def wait_closed(self) -> None:
        """Wait until the connection is fully closed."""
        await asyncio.shield(self._closed_fut)

    async def __aenter__(self) -> "Stream":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()
        await self.wait_closed()
