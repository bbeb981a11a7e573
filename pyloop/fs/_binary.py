"""The binary file of :mod:`pyloop.fs`: block-buffered, with every system call on the pool.

Why buffering lives here, in the loop thread
-------------------------------------------
A hop to the blocking pool costs tens of microseconds (far more on a loaded
machine), so a file that made one per ``readline`` would be a thousand times
slower than ``open()``.  :class:`AsyncFile` reads ahead ``block_size`` bytes per
hop and serves reads, lines and ``async for`` from that buffer without leaving
the loop thread; writes gather in a buffer that goes to the pool when it
reaches ``block_size`` and on ``flush``/``seek``/``truncate``/``close``.  At most
one of the two buffers holds data: a write after a read first moves the OS
offset back to the logical position, a read after a write flushes first, so
``tell`` is always "OS offset - unread read-ahead + pending writes".

Text mode (:class:`~pyloop.fs._text.AsyncTextFile`, in ``_text.py``) is a
subclass: it decodes the same blocks and encodes into the same write buffer.

Cancellation: a call handed to a thread cannot be stopped, so :func:`_hop`
lets it finish and records its result before ``CancelledError`` propagates
(bytes read stay buffered for the next read).
"""

from __future__ import annotations

import asyncio
import io
import os
import warnings
from typing import Any, Iterable

from .. import _blocking

__all__ = ["AsyncFile", "BLOCK_SIZE"]

#: Default read-ahead and write-buffer size.  64 KiB amortises a ~20-50 us thread
#: hop over hundreds of typical lines while staying small next to the page cache.
BLOCK_SIZE = 64 * 1024


def _read_some(raw: io.FileIO, need: int, size: int) -> bytes:
    """Read up to ``size`` bytes, returning once ``need`` have come or at EOF."""
    first = raw.read(size)
    if not first or len(first) >= need:
        return first or b""
    chunks = [first]
    got = len(first)
    while got < need:
        more = raw.read(size - got)
        if not more:
            break
        chunks.append(more)
        got += len(more)
    return b"".join(chunks)


def _write_all(raw: io.FileIO, data: Any, seekable: bool) -> int:
    view = memoryview(data)
    while view:
        n = raw.write(view)
        view = view[n:]
    return raw.tell() if seekable else 0


def _seek_then_truncate(raw: io.FileIO, pos: int, size: int) -> int:
    raw.seek(pos)
    return raw.truncate(size)


async def _hop(fn: Any, *args: Any, apply: Any = None) -> Any:
    """``apply(run_blocking(fn, *args))``, where a cancellation cannot drop the result.

    A thread cannot be stopped, so a read, write or seek handed to the pool
    happens even if the caller stops waiting; if its result were dropped, the
    file's buffers and position would no longer match the OS.  So, as trio does
    for files, a cancelled call is allowed to finish, ``apply`` records its
    result in the file's state (bytes read stay in the read-ahead buffer for
    the next read), and only then does ``CancelledError`` propagate, unchanged,
    so ``asyncio.timeout()`` still reports ``TimeoutError``.
    """
    inner = asyncio.ensure_future(_blocking.run_blocking(fn, *args))
    try:
        result = await asyncio.shield(inner)
    except asyncio.CancelledError:
        if inner.cancelled():
            raise
        while not inner.done():
            try:
                await asyncio.wait([inner])
            except asyncio.CancelledError:
                pass
        if apply is not None and not inner.cancelled() and inner.exception() is None:
            try:
                apply(inner.result())
            except Exception:
                pass  # e.g. a decoding error: the cancellation is what the caller sees
        raise
    return result if apply is None else apply(result)


class AsyncFile:
    """A file opened in binary mode by :func:`open`; methods mirror :class:`io.BufferedRandom`.

    >>> f = await pyloop.fs.open("blob", "rb")
    >>> header = await f.read(16)
    >>> await f.close()
    """

    def __init__(self, raw: io.FileIO, name: Any, mode: str, seekable: bool, pos: int,
                 block_size: int) -> None:
        self._raw = raw
        self._name = name
        self._mode = mode
        self._seekable = seekable
        self._readable = raw.readable()
        self._writable = raw.writable()
        self._block = block_size
        self._raw_pos = pos          # the OS file offset
        self._rbuf = b""             # read-ahead; bytes before raw_pos
        self._rpos = 0               # next unread byte in _rbuf
        self._wbuf = bytearray()     # bytes to write at raw_pos
        self._lock = asyncio.Lock()
        self._closed = False

    # -- properties and checks
    @property
    def name(self) -> Any:
        """The path (or fd) the file was opened with, as ``io`` files report it."""
        return self._name

    @property
    def mode(self) -> str:
        """The mode string given to ``fs.open``."""
        return self._mode

    @property
    def closed(self) -> bool:
        """True once ``close()`` has been awaited (or the open failed)."""
        return self._closed

    def fileno(self) -> int:
        """The OS file descriptor; ValueError on a closed file."""
        self._check_open()
        return self._raw.fileno()

    def readable(self) -> bool:
        """Whether the file was opened for reading; ValueError on a closed file."""
        self._check_open()
        return self._readable

    def writable(self) -> bool:
        """Whether the file was opened for writing; ValueError on a closed file."""
        self._check_open()
        return self._writable

    def seekable(self) -> bool:
        """Whether seek/tell work (False for pipes and terminals); ValueError on a closed file."""
        self._check_open()
        return self._seekable

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"mode={self._mode!r}"
        return f"<{type(self).__name__} name={self._name!r} {state}>"

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("I/O operation on closed file.")

    def _check_readable(self) -> None:
        if self._closed:
            raise ValueError("I/O operation on closed file.")
        if not self._readable:
            raise io.UnsupportedOperation("File not open for reading")

    def _check_writable(self) -> None:
        if self._closed:
            raise ValueError("I/O operation on closed file.")
        if not self._writable:
            raise io.UnsupportedOperation("File not open for writing")

    def _check_seekable(self) -> None:
        if self._closed:
            raise ValueError("I/O operation on closed file.")
        if not self._seekable:
            raise io.UnsupportedOperation("File or stream is not seekable.")

    # -- buffer management (callers hold the lock)
    def _logical_pos(self) -> int:
        return self._raw_pos - (len(self._rbuf) - self._rpos) + len(self._wbuf)

    async def _flush_locked(self) -> None:
        if self._wbuf:
            data, self._wbuf = self._wbuf, bytearray()
            try:
                await _hop(_write_all, self._raw, data, self._seekable, apply=self._set_raw_pos)
            except asyncio.CancelledError:
                raise  # the write was completed before the cancellation went on
            except BaseException:
                # Keep what was not written so a later flush or close retries it.
                data.extend(self._wbuf)
                self._wbuf = data
                raise

    def _set_raw_pos(self, pos: int) -> int:
        self._raw_pos = pos
        return pos

    def _append_read(self, data: bytes) -> bytes:
        """Record bytes read from the OS: they join the unread read-ahead."""
        self._raw_pos += len(data)
        if data:
            if self._rpos:
                self._rbuf = self._rbuf[self._rpos:] + data
                self._rpos = 0
            elif self._rbuf:
                self._rbuf += data
            else:
                self._rbuf = data
        return data

    def _take(self, n: int) -> bytes:
        start = self._rpos
        end = min(start + n, len(self._rbuf))
        buf = self._rbuf
        if start == 0 and end == len(buf):
            self._rbuf, self._rpos = b"", 0
            return buf
        self._rpos = end
        return buf[start:end]

    async def _drop_read_ahead(self) -> None:
        """Move the OS offset back to the logical position before a write."""
        unread = len(self._rbuf) - self._rpos
        self._rbuf, self._rpos = b"", 0
        if unread and self._seekable:
            target = self._raw_pos - unread
            await _hop(self._raw.seek, target, 0, apply=self._set_raw_pos)

    async def _fill(self, need: int) -> int:
        """Read at least ``need`` more bytes (fewer at EOF) into the read-ahead; returns how many."""
        # Growing with what is already buffered keeps a very long line linear.
        size = max(self._block, need, len(self._rbuf) - self._rpos)
        return len(await _hop(_read_some, self._raw, need, size, apply=self._append_read))

    # -- reading
    async def read(self, size: int | None = -1) -> bytes:
        """Read up to ``size`` bytes (all that is left if ``size`` is negative or None).

        Fewer bytes than asked means end of file; ``b''`` at end of file.
        """
        self._check_readable()
        if size is None:
            size = -1
        elif not isinstance(size, int) or isinstance(size, bool):
            raise TypeError(f"argument should be integer or None, not {type(size).__name__!r}")
        if 0 <= size <= len(self._rbuf) - self._rpos and not self._lock.locked():
            start = self._rpos
            self._rpos = start + size
            return self._rbuf[start:start + size]
        async with self._lock:
            self._check_readable()
            await self._flush_locked()
            if size < 0:
                await _hop(self._raw.readall, apply=self._append_read)
                return self._take(len(self._rbuf))
            unread = len(self._rbuf) - self._rpos
            if unread < size:
                await self._fill(size - unread)
            return self._take(size)

    async def readline(self, size: int | None = -1) -> bytes:
        """Read one line, up to and including ``b'\\n'``; ``b''`` at end of file."""
        self._check_readable()
        if size is None:
            size = -1
        if not self._lock.locked():
            buf, start = self._rbuf, self._rpos
            end = buf.find(b"\n", start) + 1
            if end and (size < 0 or end - start <= size):
                self._rpos = end
                return buf[start:end]
        async with self._lock:
            self._check_readable()
            await self._flush_locked()
            scan_off = 0  # bytes after _rpos already searched
            while True:
                buf, start = self._rbuf, self._rpos
                end = buf.find(b"\n", start + scan_off)
                if end >= 0:
                    end += 1
                if 0 <= size and (end < 0 or end - start > size) and len(buf) - start >= size:
                    end = start + size
                if end >= 0:
                    return self._take(end - start)
                scan_off = len(buf) - start
                if not await self._fill(1):
                    return self._take(len(self._rbuf))

    async def readlines(self, hint: int = -1) -> list:
        """Read the remaining lines (stopping once ``hint`` bytes or characters were read)."""
        lines: list[Any] = []
        total = 0
        while True:
            line = await self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                return lines

    def __aiter__(self) -> "AsyncFile":
        return self

    async def __anext__(self) -> Any:
        # The readline fast path inlined: one coroutine per line, not two.
        if not self._closed and self._readable and not self._lock.locked():
            buf, start = self._rbuf, self._rpos
            end = buf.find(b"\n", start) + 1
            if end:
                self._rpos = end
                return buf[start:end]
        line = await self.readline()
        if not line:
            raise StopAsyncIteration
        return line

    # -- writing
    async def write(self, data: Any) -> int:
        """Buffer ``data`` (bytes-like) for writing; returns its length.

        The buffer goes to the OS when it passes ``block_size``, and on
        ``flush``, ``seek``, ``truncate`` and ``close``.
        """
        self._check_writable()
        if isinstance(data, str):
            raise TypeError("a bytes-like object is required, not 'str'")
        view = memoryview(data)
        n = view.nbytes
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B")
        if (not self._lock.locked() and self._rpos == len(self._rbuf)
                and len(self._wbuf) + n < self._block):
            self._rbuf, self._rpos = b"", 0
            self._wbuf += view
            return n
        async with self._lock:
            self._check_writable()
            await self._write_locked(view)
        return n

    async def _write_locked(self, view: memoryview) -> None:
        await self._drop_read_ahead()
        if len(self._wbuf) + view.nbytes < self._block:
            self._wbuf += view
            return
        if self._wbuf:
            self._wbuf += view
            await self._flush_locked()
        else:
            # Copy: the caller may reuse its buffer once write() returns.
            await _hop(_write_all, self._raw, bytes(view), self._seekable, apply=self._set_raw_pos)

    async def writelines(self, lines: Iterable[Any]) -> None:
        """Write each item of ``lines`` (no separators are added)."""
        for line in lines:
            await self.write(line)

    async def flush(self) -> None:
        """Hand buffered writes to the OS (not ``fsync``)."""
        self._check_open()
        async with self._lock:
            self._check_open()
            await self._flush_locked()

    # -- positioning
    async def tell(self) -> int:
        """The current position in bytes, counting buffered reads and writes."""
        self._check_seekable()
        return self._logical_pos()

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move to ``offset`` relative to ``whence`` (0 start, 1 current, 2 end); returns the new position.

        A target inside the read-ahead block moves there without a thread hop.
        """
        self._check_seekable()
        offset = _as_index(offset)
        if whence not in (0, 1, 2):
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        if whence == 0 and offset < 0:
            raise ValueError(f"negative seek position {offset}")
        async with self._lock:
            self._check_seekable()
            if whence != 2 and not self._wbuf and self._rbuf:
                target = offset if whence == 0 else self._logical_pos() + offset
                base = self._raw_pos - len(self._rbuf)
                if base <= target <= self._raw_pos:
                    self._rpos = target - base
                    return target
            await self._flush_locked()
            if whence == 1:
                offset, whence = self._logical_pos() + offset, 0
            self._rbuf, self._rpos = b"", 0
            return await _hop(self._raw.seek, offset, whence, apply=self._set_raw_pos)

    async def truncate(self, size: int | None = None) -> int:
        """Resize the file to ``size`` bytes (default: the current position); the position is unchanged."""
        self._check_writable()
        if size is not None:
            size = _as_index(size)
            if size < 0:
                raise ValueError(f"negative size value {size}")
        async with self._lock:
            self._check_writable()
            await self._flush_locked()
            pos = self._logical_pos()
            self._rbuf, self._rpos = b"", 0
            if size is None:
                size = pos

            def done(result: int) -> int:
                self._raw_pos = pos
                return result

            return await _hop(_seek_then_truncate, self._raw, pos, size, apply=done)

    # -- closing
    async def close(self) -> None:
        """Flush pending writes and close the file; closing twice is allowed.

        The file is closed even if the flush fails; the flush's error is raised.
        """
        if self._closed:
            return
        async with self._lock:
            if self._closed:
                return
            try:
                await self._flush_locked()
            finally:
                self._closed = True
                self._wbuf = bytearray()
                self._rbuf, self._rpos = b"", 0
                await _hop(self._raw.close)

    async def __aenter__(self) -> "AsyncFile":
        self._check_open()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def __del__(self) -> None:
        if getattr(self, "_closed", True):
            return
        self._closed = True
        try:
            warnings.warn(f"unclosed file {self!r}", ResourceWarning, source=self, stacklevel=2)
        finally:
            raw = getattr(self, "_raw", None)
            if raw is not None and not raw.closed:
                # Like io's buffered files, pending writes reach the OS (the loop
                # may be gone; this blocks, but losing the data would be worse).
                try:
                    if self._wbuf:
                        _write_all(raw, self._wbuf, False)
                finally:
                    raw.close()


def _as_index(value: Any) -> int:
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"an integer is required, not {type(value).__name__!r}")
    return value.__index__()
