"""Pipe transports: ``loop.connect_read_pipe`` and ``loop.connect_write_pipe``.

A "pipe" here is any fd the reactor can poll: a pipe or FIFO, a socket, a
character device such as a pty.  Regular files are refused with ValueError --
they are always "ready", so polling them means nothing (and epoll refuses
them).  The transport switches the fd to non-blocking mode and owns the pipe
object from then on: it closes it right after ``connection_lost``.

Reading: each readiness event reads up to ``max_size`` bytes and hands them to
``data_received``.  End of file schedules ``eof_received`` and then
``connection_lost(None)``.  A pty master reports EIO once its slave side is
closed -- the pty's way of saying EOF -- so EIO ends the transport quietly
(``connection_lost`` gets the error) instead of being logged.

Writing: ``write`` calls ``os.write`` at once when nothing is queued and queues
only what the pipe did not take; the queue drains on writability, with write
flow control on the protocol.  ``close``/``write_eof`` flush the queue before
the pipe is closed; ``abort`` drops it.  A pipe's write end is never readable,
so for pipes, FIFOs and sockets the transport also watches it for reading: the
event that arrives means the reader went away, and the transport closes --
with ``BrokenPipeError`` when data was still queued, as asyncio does.  (A pty
gives no such event; a write to a pty whose master is gone fails with EIO.)

The write end is an ``asyncio.Transport``, as asyncio's is: its reading
methods (``pause_reading``, ``resume_reading``, ``is_reading``) raise
NotImplementedError, and ``isinstance(t, asyncio.ReadTransport)`` holds.

Every protocol callback runs in the protocol's context (``fd_transport``).
"""

import contextvars
import errno
import logging
import os
import stat
from asyncio import transports as _aio_transports

from .fd_transport import (
    FdTransport,
    ReadingControl,
    call_in_context,
    fd_ops,
    register_transport,
    wake_waiter,
    watch_read,
    watch_write,
)
from .flow import WRITES_AFTER_LOSS_BEFORE_WARNING, WriteFlowControl

logger = logging.getLogger("asyncio")


def _as_bytes_view(data):
    """``data`` as something os.write takes whose len() counts bytes."""
    if type(data) is bytes:
        return data
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data argument must be a bytes-like object, "
                        f"not {type(data).__name__!r}")
    view = memoryview(data)
    if not view.c_contiguous:
        return view.tobytes()
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


class _PipeTransportBase(FdTransport):
    """State and helpers common to both directions."""

    # Read by __del__ and __repr__, which may run on a half-built instance
    # (the constructor refuses regular files before taking the pipe).
    _OWNED = "_pipe"
    _pipe = None
    _loop = None
    _fileno = None
    _closing = False
    _conn_lost = False       # connection_lost() is scheduled or has run

    def _take_pipe(self, loop, pipe, protocol, allowed):
        fileno = pipe.fileno()
        mode = os.fstat(fileno).st_mode
        if not allowed(mode):
            return None
        self._extra["pipe"] = pipe
        self._loop = loop
        self._protocol = protocol
        self._context = contextvars.copy_context()
        self._fileno = fileno
        (self._add_reader, self._remove_reader,
         self._add_writer, self._remove_writer) = fd_ops(loop)
        os.set_blocking(fileno, False)
        return mode

    def _own_pipe(self, pipe):
        # Last step of construction: if scheduling the first callbacks failed
        # (closed loop) the pipe is still the caller's, and __del__ must not
        # warn or close it.
        self._pipe = pipe
        register_transport(self._loop, self._fileno, self)

    def _describe(self, watching, details=()):
        parts = [type(self).__name__]
        if self._pipe is None:
            parts.append("closed")
        elif self._closing:
            parts.append("closing")
        parts.append(f"fd={self._fileno}")
        if self._pipe is not None:
            loop = self._loop
            if loop is not None and not loop.is_closed():
                parts.append("polling" if watching else "idle")
                parts.extend(details)
            else:
                parts.append("open")
        return parts


def _is_pollable(mode):
    """Pipes/FIFOs, sockets and character devices; not regular files."""
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)


class ReadPipeTransport(ReadingControl, _PipeTransportBase,
                        _aio_transports.ReadTransport):
    """The read end of a pipe (or a socket, FIFO, pty, character device)."""

    # Most bytes read per readiness event: one default pipe buffer.  os.read(n)
    # mallocs n bytes up front, and glibc serves asyncio's 256 KiB with
    # mmap/munmap -- measured here, ~50 us more per read than 64 KiB.
    max_size = 64 * 1024

    def __init__(self, loop, pipe, protocol, waiter=None, extra=None):
        super().__init__(extra)
        if self._take_pipe(loop, pipe, protocol, _is_pollable) is None:
            raise ValueError("Pipe transport is for pipes/sockets only.")
        self._paused = False
        self._reader_on = False
        call_in_context(self, protocol.connection_made, self)
        # Reading starts once connection_made() has run; the creator is told
        # after that.
        loop.call_soon(self._start_reading)
        if waiter is not None:
            loop.call_soon(wake_waiter, waiter)
        self._own_pipe(pipe)

    def __repr__(self):
        return "<{}>".format(" ".join(self._describe(self._reader_on)))

    def _read_ready(self):
        if self._closing:
            return
        try:
            data = os.read(self._fileno, self.max_size)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._fatal_error(exc, "Fatal read error on pipe transport")
            return
        if data:
            self._protocol.data_received(data)
            return
        if self._loop.get_debug():
            logger.info("%r was closed by peer", self)
        self._closing = True
        self._conn_lost = True
        self._stop_reading()
        call_in_context(self, self._protocol.eof_received)
        call_in_context(self, self._call_connection_lost, None)

    def close(self):
        """Stop reading and close the pipe (``connection_lost(None)`` soon)."""
        if not self._closing:
            self._close(None)

    def _is_expected_error(self, exc):
        # A pty whose other side is gone (EIO): an ending, not a failure.
        return isinstance(exc, OSError) and exc.errno == errno.EIO

    def _close(self, exc):
        self._closing = True
        if self._conn_lost:
            return
        self._conn_lost = True
        self._stop_reading()
        call_in_context(self, self._call_connection_lost, exc)


class WritePipeTransport(WriteFlowControl, _PipeTransportBase,
                         _aio_transports.Transport):
    """The write end of a pipe (or a socket, FIFO, pty, character device)."""

    def __init__(self, loop, pipe, protocol, waiter=None, extra=None):
        super().__init__(extra)
        mode = self._take_pipe(loop, pipe, protocol, _is_pollable)
        if mode is None:
            raise ValueError("Pipe transport is only for "
                             "pipes, sockets and character devices")
        self._buffer = bytearray()
        self._init_write_flow(self._context)
        self._writer_on = False
        self._reader_on = False
        self._writes_after_loss = 0
        call_in_context(self, protocol.connection_made, self)
        # The far end closing shows up as a read event on our end for pipes,
        # FIFOs and sockets; watch for it once connection_made() has run.
        if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
            loop.call_soon(self._watch_far_end)
        if waiter is not None:
            loop.call_soon(wake_waiter, waiter)
        self._own_pipe(pipe)

    def __repr__(self):
        parts = self._describe(self._writer_on,
                               (f"bufsize={len(self._buffer)}",))
        return "<{}>".format(" ".join(parts))

    def get_write_buffer_size(self):
        """Bytes queued but not yet written to the pipe."""
        return len(self._buffer)

    def can_write_eof(self):
        return True

    # A write end reads nothing: asyncio.Transport's reading methods (which
    # raise NotImplementedError) stay, as on asyncio's write pipe transport.

    # ---- watching the far end -------------------------------------------

    def _watch_far_end(self):
        if not self._conn_lost:
            watch_read(self, self._far_end_closed)
            self._reader_on = True

    def _unwatch_far_end(self):
        if self._reader_on:
            self._reader_on = False
            self._remove_reader(self._fileno)

    def _far_end_closed(self):
        if self._conn_lost:
            return
        if self._loop.get_debug():
            logger.info("%r was closed by peer", self)
        self._close(BrokenPipeError() if self._buffer else None)

    # ---- writing --------------------------------------------------------

    def write(self, data):
        """Write ``data`` without blocking; what the pipe cannot take now is
        queued and written as the reader drains it."""
        data = _as_bytes_view(data)
        if not data:
            return
        if self._conn_lost or self._closing:
            if self._writes_after_loss >= WRITES_AFTER_LOSS_BEFORE_WARNING:
                logger.warning("pipe closed by peer or "
                               "os.write(pipe, data) raised exception.")
            self._writes_after_loss += 1
            return

        if not self._buffer:
            try:
                n = os.write(self._fileno, data)
            except (BlockingIOError, InterruptedError):
                n = 0
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal write error on pipe transport")
                return
            if n == len(data):
                return
            if n:
                data = memoryview(data)[n:]
            watch_write(self, self._write_ready)
            self._writer_on = True

        self._buffer += data    # a copy: the caller may reuse its buffer
        self._maybe_pause_protocol()

    def _write_ready(self):
        buffer = self._buffer
        if not buffer:      # aborted from a callback earlier in this round
            return
        try:
            n = os.write(self._fileno, buffer)
        except (BlockingIOError, InterruptedError):
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal write error on pipe transport")
            return
        if n < len(buffer):
            del buffer[:n]
            self._maybe_resume_protocol()
            return
        buffer.clear()
        self._writer_on = False
        self._remove_writer(self._fileno)
        self._maybe_resume_protocol()   # may write (and queue) more
        if self._closing and not buffer and not self._conn_lost:
            self._conn_lost = True
            self._unwatch_far_end()
            self._call_connection_lost(None)

    # ---- closing --------------------------------------------------------

    def write_eof(self):
        """Close the pipe after the queued data is written: the reader then
        sees end of file."""
        if self._closing:
            return
        self._closing = True
        if not self._buffer:
            self._conn_lost = True
            self._unwatch_far_end()
            call_in_context(self, self._call_connection_lost, None)

    def close(self):
        """Flush the queued data, then close the pipe (same as write_eof)."""
        if self._pipe is not None and not self._closing:
            self.write_eof()

    def abort(self):
        """Close the pipe now, dropping queued data."""
        self._close(None)

    def _close(self, exc):
        self._closing = True
        if self._conn_lost:
            return
        self._conn_lost = True
        self._buffer.clear()
        if self._writer_on:
            self._writer_on = False
            self._remove_writer(self._fileno)
        self._unwatch_far_end()
        call_in_context(self, self._call_connection_lost, exc)


class PipesMixin:
    """``connect_read_pipe`` and ``connect_write_pipe`` of ``AbstractEventLoop``.

    Service of ``Loop``, no state of its own.  Needs from the loop:
    ``create_future``, ``get_debug``, and for the transports ``call_soon``,
    ``_add_reader``/``_remove_reader``/``_add_writer``/``_remove_writer`` and
    ``_transports`` (BaseLoop).
    """

    async def connect_read_pipe(self, protocol_factory, pipe):
        """Read from ``pipe`` (a file-like object with ``fileno()``) into a
        ``Protocol``: ``(transport, protocol)``."""
        return await self._connect_pipe(ReadPipeTransport, "Read", protocol_factory, pipe)

    async def connect_write_pipe(self, protocol_factory, pipe):
        """Write to ``pipe`` (a file-like object with ``fileno()``) through a
        ``WriteTransport``: ``(transport, protocol)``."""
        return await self._connect_pipe(WritePipeTransport, "Write", protocol_factory, pipe)

    async def _connect_pipe(self, transport_class, direction, protocol_factory, pipe):
        protocol = protocol_factory()
        waiter = self.create_future()
        transport = transport_class(self, pipe, protocol, waiter)
        try:
            await waiter
        except BaseException:
            transport.close()
            raise
        if self.get_debug():
            logger.debug("%s pipe %r connected: (%r, %r)", direction, pipe.fileno(),
                         transport, protocol)
        return transport, protocol
