"""The text file of :mod:`pyloop.fs`: :class:`AsyncTextFile`, ``str`` over :class:`AsyncFile`'s blocks.

Blocks read by the binary layer go through an incremental decoder (wrapped in
``io.IncrementalNewlineDecoder`` for universal newlines), so a character or a
``\\r\\n`` split between two blocks comes out whole.  To give ``tell()`` a
meaning the file keeps a *snapshot*: the decoder state and byte offset where
the buffered text began, and the bytes fed since.  ``tell`` finds the byte
offset of the reader's character position by re-decoding (a plain offset when
the decoder holds no state there, otherwise an io-style cookie carrying the
state and a character count); the snapshot moves forward as lines are
consumed, so memory stays at a couple of blocks.

Writes are encoded and then buffered exactly as binary writes are (see
:mod:`pyloop.fs._binary`); a write after a read first puts the OS offset where
the reader logically is.
"""

from __future__ import annotations

import codecs
import io
import os
import re
from typing import Any

from ._binary import AsyncFile, _as_index, _hop, _read_some

__all__ = ["AsyncTextFile"]


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
