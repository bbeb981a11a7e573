"""The file objects of :mod:`pyloop.fs`: block-buffered, with every system call on the pool.

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

Text mode (:class:`AsyncTextFile`) feeds blocks through an incremental decoder
(wrapped in ``io.IncrementalNewlineDecoder`` for universal newlines), so a
character or a ``\r\n`` split between two blocks comes out whole.  To give
``tell()`` a meaning it keeps a *snapshot*: the decoder state and byte offset
where the buffered text began, and the bytes fed since.  ``tell`` finds the byte
offset of the reader's character position by re-decoding (a plain offset when
the decoder holds no state there, otherwise an io-style cookie carrying the
state and a character count); the snapshot moves forward as lines are
consumed, so memory stays at a couple of blocks.

Cancellation: a call handed to a thread cannot be stopped, so :func:`_hop`
lets it finish and records its result before ``CancelledError`` propagates
(bytes read stay buffered for the next read).
"""

from __future__ import annotations

import asyncio
import codecs
import io
import os
import re
import warnings
from typing import Any, Iterable

from .. import _blocking

__all__ = ["AsyncFile", "AsyncTextFile", "BLOCK_SIZE"]

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


# Text cookies pack the byte position with the decoder state needed to resume
# there, as io.TextIOWrapper's do: position | flags << 64 | chars_to_skip << 128.
def _pack_cookie(pos: int, flags: int, skip: int) -> int:
    if pos == 0 and skip == 0:
        return 0  # nothing decoded yet: the decoder's initial state
    return pos | (flags << 64) | (skip << 128)


def _unpack_cookie(cookie: int) -> tuple[int, int, int]:
    mask = (1 << 64) - 1
    return cookie & mask, (cookie >> 64) & mask, cookie >> 128


_UNIVERSAL_EOL = re.compile(r"\r\n?|\n")


class AsyncTextFile(AsyncFile):
    """A file opened in text mode by :func:`open`: ``str`` in and out, like :class:`io.TextIOWrapper`.

    >>> async with pyloop.fs.open("notes.txt", "w", encoding="utf-8") as f:
    ...     await f.write("caf\\u00e9\\n")
    """

    def __init__(self, raw: io.FileIO, name: Any, mode: str, seekable: bool, pos: int,
                 block_size: int, encoding: str, errors: str, newline: str | None) -> None:
        super().__init__(raw, name, mode, seekable, pos, block_size)
        self._encoding = encoding
        self._errors = errors
        self._newline = newline
        self._universal = newline in (None, "")
        self._translate = newline is None
        self._lf_only = newline is None or newline == "\n"  # lines end at '\n' only
        self._write_nl = os.linesep if newline is None else (newline or "\n")
        self._decoder = self._new_decoder()
        self._encoder = codecs.getincrementalencoder(encoding)(errors)
        if seekable and self._writable and pos != 0:
            self._encoder.setstate(0)  # no BOM in the middle of a file
        # Decoded text since the snapshot: the decoder's state and byte offset when
        # _text began, and the bytes fed since, so tell() can find a byte offset.
        self._snap: tuple[int, int] | None = None
        self._snap_bytes = bytearray()
        self._text = ""
        self._tpos = 0
        self._dec_eof = False
        # (text offset, snap_bytes offset, decoder flags, byte position) of a
        # later point where a snapshot may start: see _ensure_snapshot.
        self._checkpoint: tuple[int, int, int, int] | None = None

    @property
    def encoding(self) -> str:
        """The text encoding used to decode and encode."""
        return self._encoding

    @property
    def errors(self) -> str:
        """The codec error handler (``'strict'`` unless ``errors=`` said otherwise)."""
        return self._errors

    def _new_decoder(self) -> Any:
        dec: Any = codecs.getincrementaldecoder(self._encoding)(self._errors)
        if self._universal:
            dec = io.IncrementalNewlineDecoder(dec, translate=self._translate)
        return dec

    def _reset_text(self) -> None:
        self._snap = None
        self._snap_bytes = bytearray()
        self._text = ""
        self._tpos = 0
        self._dec_eof = False
        self._checkpoint = None
        self._decoder.reset()

    def _find_eol(self, text: str, start: int) -> int:
        """Index just past the first line end at or after ``start``, or -1."""
        nl = self._newline
        if nl is None or nl == "\n":
            return text.find("\n", start) + 1 or -1
        if nl == "":
            m = _UNIVERSAL_EOL.search(text, start)
            if m is None:
                return -1
            end = m.end()
            # A lone '\r' at the end may be the first half of '\r\n'.
            if end == len(text) and m.group() == "\r" and not self._dec_eof:
                return -1
            return end
        i = text.find(nl, start)
        return -1 if i < 0 else i + len(nl)

    def _ensure_snapshot(self) -> None:
        """Before decoding another block: drop consumed text so memory stays bounded.

        When everything was consumed, start afresh at the decoder's state.  When
        a partial line remains, move the snapshot up to the checkpoint taken
        before the previous block (if the reader is past it): the text kept is
        then at most about two blocks plus the current line.
        """
        if self._snap is None or self._tpos >= len(self._text):
            pending, flags = self._decoder.getstate()
            self._snap = (flags, self._raw_pos - len(pending))
            self._snap_bytes = bytearray(pending)
            self._text, self._tpos = "", 0
            return
        cp = self._checkpoint
        if cp is not None and 0 < cp[0] <= self._tpos:
            text_off, bytes_off, flags, pos = cp
            self._text = self._text[text_off:]
            self._tpos -= text_off
            del self._snap_bytes[:bytes_off]
            self._snap = (flags, pos)
            self._checkpoint = None

    def _decode(self, data: bytes, final: bool) -> bool:
        """Record bytes read from the OS: they go through the decoder into _text."""
        self._raw_pos += len(data)
        self._snap_bytes += data
        self._dec_eof = final
        new = self._decoder.decode(data, final=final)
        if new:
            self._text += new
        return bool(data) or bool(new)

    async def _feed(self) -> bool:
        """Decode one more block into _text; False at end of file."""
        self._ensure_snapshot()
        # The decoder's state here is a valid snapshot for the text that follows.
        pending, flags = self._decoder.getstate()
        self._checkpoint = (len(self._text), len(self._snap_bytes) - len(pending), flags,
                            self._raw_pos - len(pending))
        return await _hop(_read_some, self._raw, 1, self._block,
                          apply=lambda data: self._decode(data, not data))

    async def _leave_read_state(self) -> None:
        """Before a write: put the OS offset where the reader logically is."""
        if self._snap is None and not self._decoder.getstate()[0]:
            return
        pos, flags, skip = _unpack_cookie(self._text_tell())
        if skip:
            raise io.UnsupportedOperation(
                "cannot write at this text position; seek() to a known position first")
        self._reset_text()
        if self._seekable and pos != self._raw_pos:
            await _hop(self._raw.seek, pos, 0, apply=self._set_raw_pos)

    # -- reading
    async def read(self, size: int | None = -1) -> str:  # type: ignore[override]
        """Read up to ``size`` characters (all that is left if negative or None)."""
        self._check_readable()
        if size is None:
            size = -1
        elif not isinstance(size, int) or isinstance(size, bool):
            raise TypeError(f"argument should be integer or None, not {type(size).__name__!r}")
        async with self._lock:
            self._check_readable()
            await self._flush_locked()
            if size < 0:
                self._ensure_snapshot()
                await _hop(self._raw.readall, apply=lambda data: self._decode(data, True))
                start = self._tpos
                self._tpos = len(self._text)
                return self._text[start:]
            while len(self._text) - self._tpos < size:
                if not await self._feed():
                    break
            start = self._tpos
            self._tpos = min(len(self._text), start + size)
            return self._text[start:self._tpos]

    async def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
        """Read one line including its line ending (translated to ``'\\n'`` by default); ``''`` at end."""
        self._check_readable()
        if size is None:
            size = -1
        if not self._lock.locked() and self._snap is not None:
            start = self._tpos
            end = self._find_eol(self._text, start)
            if end > 0 and (size < 0 or end - start <= size):
                self._tpos = end
                return self._text[start:end]
        async with self._lock:
            self._check_readable()
            await self._flush_locked()
            scan_off = 0  # where to resume looking for a line end, from _tpos
            while True:
                start = self._tpos
                text = self._text
                end = self._find_eol(text, start + scan_off)
                if end < 0 and 0 <= size <= len(text) - start:
                    end = start + size
                if end >= 0:
                    if 0 <= size < end - start:
                        end = start + size
                    self._tpos = end
                    return text[start:end]
                # Rescan only the tail: a '\r\n' may straddle the old end.
                scan_off = max(0, len(text) - start - 1)
                if not await self._feed():
                    start = self._tpos
                    self._tpos = len(self._text)
                    return self._text[start:]

    # -- writing
    async def write(self, data: str) -> int:  # type: ignore[override]
        """Buffer a string for writing (``'\\n'`` becomes open's ``newline``); returns the length."""
        self._check_writable()
        if not isinstance(data, str):
            raise TypeError(f"write() argument must be str, not {type(data).__name__}")
        n = len(data)
        if self._write_nl != "\n":
            data = data.replace("\n", self._write_nl)
        if (not self._lock.locked() and self._snap is None
                and not self._decoder.getstate()[0]):
            encoded = self._encoder.encode(data)
            if len(self._wbuf) + len(encoded) < self._block:
                self._wbuf += encoded
                return n
            async with self._lock:
                await self._write_locked(memoryview(encoded))
            return n
        async with self._lock:
            self._check_writable()
            await self._leave_read_state()
            await self._write_locked(memoryview(self._encoder.encode(data)))
        return n

    # -- positioning
    def _text_tell(self) -> int:
        if self._wbuf:
            return self._raw_pos + len(self._wbuf)
        if self._snap is None:
            pending, flags = self._decoder.getstate()
            return _pack_cookie(self._raw_pos - len(pending), flags, 0)
        flags0, start = self._snap
        chars = self._tpos
        if chars == 0:
            return _pack_cookie(start, flags0, 0)
        consumed = self._text[:chars]
        data = bytes(self._snap_bytes)

        def probe(nbytes: int) -> tuple[str, bytes, int]:
            dec = self._new_decoder()
            dec.setstate((b"", flags0))
            out = dec.decode(data[:nbytes])
            pending, flags = dec.getstate()
            return out, pending, flags

        def exact(nbytes: int) -> int | None:
            out, pending, flags = probe(nbytes)
            if out == consumed and not pending and not (self._universal and flags & 1):
                return _pack_cookie(start + nbytes, flags, 0)
            return None

        # Usually the consumed text re-encodes to exactly the bytes it came from.
        if flags0 == 0:
            try:
                guess = len(consumed.encode(self._encoding, self._errors))
            except (UnicodeError, LookupError):
                guess = -1
            if 0 < guess <= len(data):
                found = exact(guess)
                if found is not None:
                    return found
        # Otherwise binary search: decoded length grows with the bytes fed.
        lo, hi = 0, len(data)
        while lo < hi:
            mid = (lo + hi) // 2
            if len(probe(mid)[0]) >= chars:
                hi = mid
            else:
                lo = mid + 1
        found = exact(lo)
        if found is not None:
            return found
        return _pack_cookie(start, flags0, chars)

    async def tell(self) -> int:
        """An opaque cookie for :meth:`seek` (the byte offset when no decoder state is involved)."""
        self._check_seekable()
        return self._text_tell()

    async def seek(self, cookie: int, whence: int = os.SEEK_SET) -> int:
        """Go to a cookie from :meth:`tell` (``whence=0``), or ``seek(0, 1)``/``seek(0, 2)``."""
        self._check_seekable()
        cookie = _as_index(cookie)
        if whence not in (0, 1, 2):
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        if whence == 1:
            if cookie != 0:
                raise io.UnsupportedOperation("can't do nonzero cur-relative seeks")
            return await self.tell()
        if whence == 0 and cookie < 0:
            raise ValueError(f"negative seek position {cookie!r}")
        if whence == 2 and cookie != 0:
            raise io.UnsupportedOperation("can't do nonzero end-relative seeks")
        async with self._lock:
            self._check_seekable()
            await self._flush_locked()
            self._rbuf, self._rpos = b"", 0
            self._reset_text()
            if whence == 2:
                await _hop(self._raw.seek, 0, 2, apply=self._set_raw_pos)
                self._set_encoder_for(self._raw_pos)
                return self._raw_pos
            pos, flags, skip = _unpack_cookie(cookie)
            await _hop(self._raw.seek, pos, 0, apply=self._set_raw_pos)
            if pos or flags:
                # Not `if flags`: 0 is a real state for some codecs (UTF-16's
                # "native byte order, BOM already read").
                self._decoder.setstate((b"", flags))
            self._set_encoder_for(pos)
            if skip:
                while len(self._text) < skip:
                    if not await self._feed():
                        raise OSError("can't restore logical file position")
                self._tpos = skip
            return cookie

    def _set_encoder_for(self, pos: int) -> None:
        if pos == 0:
            self._encoder.reset()
        else:
            self._encoder.setstate(0)

    async def truncate(self, size: int | None = None) -> int:
        """Resize the file to ``size`` bytes (default: the current position)."""
        self._check_writable()
        async with self._lock:
            await self._leave_read_state()
        return await super().truncate(size)

    async def __anext__(self) -> str:
        if (self._lf_only and not self._closed and self._readable and self._snap is not None
                and not self._lock.locked()):
            text, start = self._text, self._tpos
            end = text.find("\n", start) + 1
            if end:
                self._tpos = end
                return text[start:end]
        line = await self.readline()
        if not line:
            raise StopAsyncIteration
        return line
