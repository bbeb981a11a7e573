"""Async file I/O that runs on any asyncio loop.

Every blocking system call runs on pyloop's blocking pool
(:func:`pyloop._blocking.run_blocking`), so the loop thread never waits for a
disk.  A thread hop costs tens of microseconds, so :class:`AsyncFile` does not
make one per call: it reads ahead in blocks of ``block_size`` bytes (64 KiB by
default) and serves ``read``/``readline``/``async for`` from that buffer in the
loop thread, and it gathers writes into a block that goes to the pool only when
it is full or on ``flush``/``seek``/``truncate``/``close``.  Iterating a file of
100,000 short lines therefore costs a handful of hops, not 100,000.

Text mode decodes with an incremental decoder, so a multibyte character split
across two blocks is never broken, and it applies the ``newline`` rules of the
built-in :func:`open` (universal newlines by default).  ``tell()`` in text mode
returns an opaque cookie, as :class:`io.TextIOWrapper` does: the plain byte
offset whenever the position falls on a character boundary with no decoder
state, a larger number otherwise; ``seek`` accepts what ``tell`` returned.

Errors are those of the synchronous calls (``FileNotFoundError``,
``IsADirectoryError``, ...); an operation on a closed file raises
``ValueError``; reading a write-only file (or seeking a pipe) raises
``io.UnsupportedOperation``.  This module defines no exception of its own; all
of the toolbox's errors are listed together in docs/ARCHITECTURE.md, "Errors".

Two tasks may use one file: the operations that go to the pool are serialised
by a lock, so they run one at a time, in the order they were called.
Cancelling a file operation whose system call already went to a thread lets
that call finish first (its bytes stay buffered), then raises
``CancelledError``; the file stays consistent.

:func:`read_dir` returns a list of :class:`DirEntry` (one pool call), not an
async iterator: a directory listing is one ``scandir`` anyway.

>>> async with pyloop.fs.open("log.txt", "a") as f:
...     await f.write("started\\n")
>>> async with pyloop.fs.open("log.txt") as f:
...     async for line in f:
...         print(line, end="")
"""

from __future__ import annotations

import asyncio
import codecs
import io
import locale
import os
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generator, Union

from .. import _blocking
from ._binary import BLOCK_SIZE, AsyncFile
from ._text import AsyncTextFile

__all__ = [
    "AsyncFile", "AsyncTextFile", "DirEntry", "open", "read", "read_text", "write",
    "read_dir", "metadata", "exists", "remove", "remove_dir", "create_dir", "rename",
    "copy", "BLOCK_SIZE",
]

StrPath = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]

_builtin_open = open


# -- one-shot helpers ----------------------------------------------------------

def _read_bytes(path: Any) -> bytes:
    with _builtin_open(path, "rb") as f:
        return f.read()


def _read_text(path: Any, encoding: str | None, errors: str | None) -> str:
    with _builtin_open(path, "r", encoding=encoding, errors=errors) as f:
        return f.read()


def _write_data(path: Any, data: Any, mode: str, encoding: str | None,
                errors: str | None) -> int:
    if "b" in mode:
        with _builtin_open(path, mode) as f:
            return f.write(data)
    with _builtin_open(path, mode, encoding=encoding, errors=errors) as f:
        return f.write(data)


async def read(path: StrPath) -> bytes:
    """Return the whole content of the file at ``path``.

    >>> data = await pyloop.fs.read("image.png")
    """
    return await _blocking.run_blocking(_read_bytes, os.fspath(path))


async def read_text(path: StrPath, encoding: str | None = None,
                    errors: str | None = None) -> str:
    """Return the file's content decoded as text (universal newlines, like :func:`open`).

    >>> text = await pyloop.fs.read_text("notes.txt", encoding="utf-8")
    """
    return await _blocking.run_blocking(_read_text, os.fspath(path), encoding, errors)


async def write(path: StrPath, data: str | bytes, *, encoding: str | None = None,
                errors: str | None = None, append: bool = False) -> int:
    """Create or replace (or with ``append=True`` extend) the file with ``data``.

    ``data`` is ``str`` (encoded with ``encoding``) or a bytes-like object.
    Returns the number of characters or bytes written.

    >>> await pyloop.fs.write("out.txt", "hello\\n", encoding="utf-8")
    """
    path = os.fspath(path)
    payload: Any = data
    if isinstance(data, str):
        mode = "a" if append else "w"
    else:
        try:
            payload = memoryview(data)
        except TypeError:
            raise TypeError(f"data must be str or a bytes-like object, "
                            f"not {type(data).__name__}") from None
        if encoding is not None or errors is not None:
            raise ValueError("binary data doesn't take an encoding or errors argument")
        mode = "ab" if append else "wb"
    return await _blocking.run_blocking(_write_data, path, payload, mode, encoding, errors)


@dataclass(frozen=True)
class DirEntry:
    """One entry of :func:`read_dir`: facts gathered on the pool, so reading them never blocks."""

    name: str
    path: str
    is_dir: bool
    is_file: bool
    is_symlink: bool


def _scan(path: Any) -> list[DirEntry]:
    out = []
    with os.scandir(path) as it:
        for e in it:
            out.append(DirEntry(e.name, e.path, e.is_dir(), e.is_file(), e.is_symlink()))
    return out


async def read_dir(path: StrPath = ".") -> list[DirEntry]:
    """List a directory in one pool call: a list of :class:`DirEntry`, in the OS's order.

    ``is_dir``/``is_file`` follow symlinks, like :meth:`os.DirEntry.is_dir`.

    >>> for e in await pyloop.fs.read_dir("."):
    ...     print(e.name, e.is_dir)
    """
    return await _blocking.run_blocking(_scan, os.fspath(path))


async def metadata(path: StrPath, *, follow_symlinks: bool = True) -> os.stat_result:
    """``os.stat(path)`` on the pool.

    >>> size = (await pyloop.fs.metadata("big.bin")).st_size
    """
    return await _blocking.run_blocking(os.stat, os.fspath(path), follow_symlinks=follow_symlinks)


async def exists(path: StrPath) -> bool:
    """Whether ``path`` names an existing file or directory (like :func:`os.path.exists`)."""
    return await _blocking.run_blocking(os.path.exists, os.fspath(path))


async def remove(path: StrPath) -> None:
    """Delete a file (``os.remove``); a directory raises ``IsADirectoryError``."""
    await _blocking.run_blocking(os.remove, os.fspath(path))


async def remove_dir(path: StrPath, *, recursive: bool = False) -> None:
    """Delete an empty directory, or with ``recursive=True`` a whole tree."""
    if recursive:
        await _blocking.run_blocking(shutil.rmtree, os.fspath(path))
    else:
        await _blocking.run_blocking(os.rmdir, os.fspath(path))


async def create_dir(path: StrPath, *, parents: bool = False, exist_ok: bool = False) -> None:
    """Create a directory; ``parents=True`` creates missing parents too (``os.makedirs``)."""
    path = os.fspath(path)
    if parents:
        await _blocking.run_blocking(os.makedirs, path, exist_ok=exist_ok)
        return
    try:
        await _blocking.run_blocking(os.mkdir, path)
    except FileExistsError:
        if not (exist_ok and await _blocking.run_blocking(os.path.isdir, path)):
            raise


async def rename(src: StrPath, dst: StrPath) -> None:
    """Rename ``src`` to ``dst``, replacing a file at ``dst`` (``os.replace``)."""
    await _blocking.run_blocking(os.replace, os.fspath(src), os.fspath(dst))


async def copy(src: StrPath, dst: StrPath) -> str:
    """Copy a file's content and permission bits (``shutil.copy``); returns the destination path."""
    return await _blocking.run_blocking(shutil.copy, os.fspath(src), os.fspath(dst))


# -- opening files -----------------------------------------------------------------

def _open_raw(path: Any, rawmode: str) -> tuple[io.FileIO, bool, int]:
    raw = io.FileIO(path, rawmode)
    try:
        seekable = raw.seekable()
        pos = raw.tell() if seekable else 0
    except BaseException:
        raw.close()
        raise
    return raw, seekable, pos


def _close_if_opened(fut: "asyncio.Future") -> None:
    if not fut.cancelled() and fut.exception() is None:
        fut.result()[0].close()


_NOT_AWAITED = ("pyloop.fs.open() returns an awaitable, not the file: write "
                "`f = await pyloop.fs.open(path)` or `async with pyloop.fs.open(path) as f:`")


class _Opening:
    """What :func:`open` returns: await it for the file, or ``async with`` it.

    Used like a file without either (``fs.open(p).read()``, ``with fs.open(p)``,
    ``for line in fs.open(p)``), it raises an error that says so.
    """

    __slots__ = ("_factory", "_file", "_target")

    def __init__(self, factory: Any, target: Any = None) -> None:
        self._factory = factory
        self._file: AsyncFile | None = None
        self._target = target

    def __repr__(self) -> str:
        return f"<pyloop.fs.open({self._target!r}) awaitable, not a file>"

    if not TYPE_CHECKING:   # a type checker should still flag these mistakes itself
        def __getattr__(self, name: str) -> Any:
            # Only reached for a name that _Opening lacks: a file method, probably.
            if name.startswith("__"):
                raise AttributeError(name)
            raise AttributeError(f"{_NOT_AWAITED} ({name!r} is an attribute of the file)")

        def __enter__(self) -> Any:
            raise TypeError(f"{_NOT_AWAITED} -- `async with`, not `with`")

        def __exit__(self, *exc: Any) -> None:
            pass

        def __iter__(self) -> Any:
            raise TypeError(f"{_NOT_AWAITED}, then `async for line in f`")

    def __await__(self) -> Generator[Any, None, "AsyncFile"]:
        return self._factory().__await__()

    async def __aenter__(self) -> "AsyncFile":
        self._file = await self._factory()
        return self._file

    async def __aexit__(self, *exc: Any) -> None:
        if self._file is not None:
            await self._file.close()


def _parse_mode(mode: Any) -> tuple[str, bool]:
    if not isinstance(mode, str):
        raise TypeError(f"open() argument 'mode' must be str, not {type(mode).__name__}")
    modes = set(mode)
    if modes - set("axrwb+t") or len(mode) > len(modes):
        raise ValueError(f"invalid mode: {mode!r}")
    kinds = [c for c in "rwxa" if c in modes]
    if len(kinds) != 1:
        raise ValueError("must have exactly one of create/read/write/append mode")
    if "t" in modes and "b" in modes:
        raise ValueError("can't have text and binary mode at once")
    return kinds[0] + ("+" if "+" in modes else ""), "b" in modes


def open(file: StrPath | int, mode: str = "r", *, encoding: str | None = None,
         errors: str | None = None, newline: str | None = None,
         block_size: int = BLOCK_SIZE) -> _Opening:
    """Open a file for async I/O; modes and text options are those of the built-in :func:`open`.

    The result can be awaited (``f = await fs.open(p)``, then ``await f.close()``
    or ``async with f``) or used directly as ``async with fs.open(p) as f``.
    Binary modes give an :class:`AsyncFile`, text modes an :class:`AsyncTextFile`.

    >>> async with pyloop.fs.open("data.csv", encoding="utf-8") as f:
    ...     async for line in f:
    ...         handle(line)
    """
    rawmode, binary = _parse_mode(mode)
    target: Any = file
    if isinstance(file, bool) or not isinstance(file, int):
        target = os.fspath(file)  # type: ignore[arg-type]
    if not isinstance(block_size, int) or isinstance(block_size, bool):
        raise TypeError(f"block_size must be an int, not {type(block_size).__name__}")
    if block_size < 1:
        raise ValueError(f"block_size must be positive, got {block_size}")
    if binary:
        for name, value in (("encoding", encoding), ("errors", errors), ("newline", newline)):
            if value is not None:
                raise ValueError(f"binary mode doesn't take an {name} argument")
    else:
        if encoding is not None and not isinstance(encoding, str):
            raise TypeError(f"encoding must be str or None, not {type(encoding).__name__}")
        if errors is not None and not isinstance(errors, str):
            raise TypeError(f"errors must be str or None, not {type(errors).__name__}")
        if newline is not None and not isinstance(newline, str):
            raise TypeError(f"newline must be str or None, not {type(newline).__name__}")
        if newline not in (None, "", "\n", "\r", "\r\n"):
            raise ValueError(f"illegal newline value: {newline!r}")
        encoding = io.text_encoding(encoding)
        if encoding == "locale":
            encoding = locale.getpreferredencoding(False)
        codecs.lookup(encoding)  # LookupError now, not on the first read
        if errors is None:
            errors = "strict"

    async def opener() -> AsyncFile:
        inner = asyncio.ensure_future(_blocking.run_blocking(_open_raw, target, rawmode))
        try:
            raw, seekable, pos = await asyncio.shield(inner)
        except asyncio.CancelledError:
            inner.add_done_callback(_close_if_opened)  # nobody will own it
            raise
        if binary:
            return AsyncFile(raw, target, mode, seekable, pos, block_size)
        return AsyncTextFile(raw, target, mode, seekable, pos, block_size,
                             encoding or "", errors or "strict", newline)

    return _Opening(opener, file)
