"""``loop.sendfile`` (over a transport) and ``loop.sock_sendfile`` (over a socket).

* ``sock_sendfile``: ``sendfile(2)`` on the non-blocking socket, retried each
  time the socket is writable (``_sendfile_step``); the call is made from C
  (``pyloop._transports._syscalls``; ``os.sendfile`` where that has none), so
  that blocking-call detectors, which wrap ``os.sendfile`` and exempt only
  asyncio's own callers, do not fail it mid-response; if the kernel refuses
  before a byte went out (or the file has no ``fileno``), the fallback reads
  256 KiB chunks in the default executor and sends them with
  ``sock_sendall``.  The file position ends after the last byte sent.
* ``sendfile``: a transport that offers it (``_sendfile_compatible`` is
  ``TRY_NATIVE``: the stream transport) first flushes its write buffer, then
  the loop runs ``sock_sendfile`` on its socket with reading paused; else
  (with ``fallback``) 64 KiB chunks read in the executor are written through
  the transport, with its flow control (``_SendfileFallbackProtocol`` stands
  in for the application's protocol meanwhile).

Service of ``Loop``, no state of its own.  Needs from the loop:
``create_future``, ``run_in_executor``, ``sock_sendall`` and ``_wait_fd``
(the watch-until-done helper of ``sock_*``), ``get_debug``.
"""

import errno
import io
import os
import socket
from asyncio import constants as _constants
from asyncio import exceptions as _aio_exceptions
from asyncio import protocols as _protocols

from . import _syscalls

# Read size of the transport fallback: big enough that the executor round trip
# (~tens of us) is small next to the copy, small enough to respect the
# transport's default 64 KiB high-water mark.
_TRANSPORT_FALLBACK_CHUNK = 64 * 1024
# Read size of the socket fallback (no transport buffer to respect).
_SOCK_FALLBACK_CHUNK = 256 * 1024

_SendfileMode = _constants._SendfileMode

# sendfile(2) from C where _syscalls has it (Linux), else os.sendfile, else none.
_sendfile = (_syscalls.sendfile if _syscalls.HAVE_SENDFILE
             else getattr(os, "sendfile", None))


class SendfileMixin:
    """``sendfile`` and ``sock_sendfile`` of ``AbstractEventLoop``."""

    # ---- over a transport -----------------------------------------------

    async def sendfile(self, transport, file, offset=0, count=None, *,
                       fallback=True):
        """Send ``file`` over ``transport``; return the number of bytes sent.

        Zero-copy ``os.sendfile`` where the transport allows it, else (with
        ``fallback``) chunks read in the executor and written through the
        transport.  The file position ends after the last byte sent."""
        if transport.is_closing():
            raise RuntimeError("Transport is closing")
        mode = getattr(transport, "_sendfile_compatible",
                       _SendfileMode.UNSUPPORTED)
        if mode == _SendfileMode.UNSUPPORTED:
            raise RuntimeError(
                f"sendfile is not supported for transport {transport!r}")
        if mode == _SendfileMode.TRY_NATIVE:
            try:
                return await self._sendfile_native(transport, file, offset,
                                                   count)
            except _aio_exceptions.SendfileNotAvailableError:
                if not fallback:
                    raise
        if not fallback:
            raise RuntimeError(
                f"fallback is disabled and native sendfile is not "
                f"supported for transport {transport!r}")
        return await self._sendfile_fallback(transport, file, offset, count)

    async def _sendfile_native(self, transp, file, offset, count):
        sock = transp.get_extra_info("socket")
        if sock is None:
            raise _aio_exceptions.SendfileNotAvailableError(
                "the transport has no socket")
        # While sendfile runs, sock_sendfile watches the transport's fd
        # itself: take the transport out of the loop's fd -> transport
        # registry (when the loop keeps one), as asyncio does, so that the
        # loop does not refuse the fd as owned by a transport.
        registry = getattr(self, "_transports", None)
        fd = sock.fileno()
        owner = registry.pop(fd, None) if registry is not None else None
        resume_reading = transp.is_reading()
        transp.pause_reading()
        try:
            # Whatever the transport still buffers goes out first; while the
            # empty-waiter is set the transport refuses write().
            await transp._make_empty_waiter()
            return await self.sock_sendfile(sock, file, offset, count,
                                            fallback=False)
        finally:
            transp._reset_empty_waiter()
            if resume_reading:
                transp.resume_reading()
            if owner is not None:
                registry[fd] = owner

    async def _sendfile_fallback(self, transp, file, offset, count):
        if offset:
            file.seek(offset)
        blocksize = (min(count, _TRANSPORT_FALLBACK_CHUNK) if count
                     else _TRANSPORT_FALLBACK_CHUNK)
        total_sent = 0
        proto = _SendfileFallbackProtocol(self, transp)
        try:
            while True:
                if count:
                    blocksize = min(count - total_sent, blocksize)
                    if blocksize <= 0:
                        return total_sent
                # A fresh bytes object per chunk: the transport may keep a
                # reference to what it could not send yet.
                data = await self.run_in_executor(None, file.read, blocksize)
                if not data:
                    return total_sent
                await proto.drain()
                transp.write(data)
                total_sent += len(data)
        finally:
            if total_sent > 0 and hasattr(file, "seek"):
                file.seek(offset + total_sent)
            proto.restore()

    # ---- over a socket --------------------------------------------------

    async def sock_sendfile(self, sock, file, offset=0, count=None, *,
                            fallback=True):
        """Send ``file`` over the connected stream ``sock``: zero-copy with
        ``os.sendfile`` when possible, else (``fallback``) by reading chunks
        in the executor.  Returns the number of bytes sent."""
        if self.get_debug() and sock.gettimeout() != 0:
            raise ValueError("the socket must be non-blocking")
        _check_sendfile_params(sock, file, offset, count)
        try:
            return await self._sock_sendfile_native(sock, file, offset, count)
        except _aio_exceptions.SendfileNotAvailableError:
            if not fallback:
                raise
        return await self._sock_sendfile_fallback(sock, file, offset, count)

    async def _sock_sendfile_native(self, sock, file, offset, count):
        if _sendfile is None:
            raise _aio_exceptions.SendfileNotAvailableError(
                "os.sendfile() is not available")
        try:
            fileno = file.fileno()
        except (AttributeError, io.UnsupportedOperation):
            raise _aio_exceptions.SendfileNotAvailableError("not a regular file")
        try:
            fsize = os.fstat(fileno).st_size
        except OSError:
            raise _aio_exceptions.SendfileNotAvailableError("not a regular file")
        blocksize = count if count else fsize
        if not blocksize:
            return 0
        state = _SendfileState(sock, file, fileno, offset, count, blocksize)
        sent = self._sendfile_step(None, state)
        if sent is not None:
            return sent
        fut = self.create_future()
        self._wait_fd(sock.fileno(), True, self._sendfile_step, fut, state)
        return await fut

    def _sendfile_step(self, fut, state):
        """Send as much as the socket takes.  Without a future (first try)
        returns the total when finished, None if it must wait, or raises."""
        if fut is not None and fut.done():
            return None
        while True:
            if state.count:
                blocksize = min(state.count - state.sent, state.blocksize)
                if blocksize <= 0:
                    return state.finish(fut)
            else:
                blocksize = state.blocksize
            try:
                n = _sendfile(state.sock.fileno(), state.fileno,
                              state.offset + state.sent, blocksize)
            except (BlockingIOError, InterruptedError):
                return None
            except OSError as exc:
                return state.fail(fut, exc)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                return state.fail(fut, exc, as_is=True)
            if n == 0:
                return state.finish(fut)
            state.sent += n

    async def _sock_sendfile_fallback(self, sock, file, offset, count):
        if offset:
            file.seek(offset)
        chunk = min(count, _SOCK_FALLBACK_CHUNK) if count else _SOCK_FALLBACK_CHUNK
        buf = bytearray(chunk)
        sent = 0
        try:
            while True:
                if count:
                    chunk = min(count - sent, chunk)
                    if chunk <= 0:
                        break
                view = memoryview(buf)[:chunk]
                n = await self.run_in_executor(None, file.readinto, view)
                if not n:
                    break
                await self.sock_sendall(sock, view[:n])
                sent += n
            return sent
        finally:
            if sent > 0 and hasattr(file, "seek"):
                file.seek(offset + sent)


class _SendfileFallbackProtocol(_protocols.Protocol):
    """Stands in for the application's protocol while ``loop.sendfile``
    writes chunks itself: it turns the transport's pause/resume_writing into
    something to await, keeps what arrives for the application, and hands
    the transport back in a consistent state."""

    def __init__(self, loop, transport):
        self._loop = loop
        self._transport = transport
        self._app_protocol = transport.get_protocol()
        self._resume_reading = transport.is_reading()
        paused = getattr(transport, "_protocol_paused", None)
        if paused is None:
            # Only "over the high-water mark" is sure to mean paused.
            paused = (transport.get_write_buffer_size()
                      > transport.get_write_buffer_limits()[1])
        self._app_paused = bool(paused)   # app protocol saw pause_writing
        self._paused = self._app_paused   # transport's state, as we know it
        self._writable = loop.create_future() if paused else None
        self._received = []
        self._eof = False
        transport.pause_reading()
        transport.set_protocol(self)

    async def drain(self):
        if self._transport.is_closing():
            raise ConnectionError("Connection closed by peer")
        fut = self._writable
        if fut is not None:
            await fut

    def connection_made(self, transport):
        raise RuntimeError("Invalid state: "
                           "connection should have been established already.")

    def connection_lost(self, exc):
        fut = self._writable
        if fut is not None and not fut.done():
            fut.set_exception(
                exc if exc is not None
                else ConnectionError("Connection is closed by peer"))
            # drain() may never run again: do not log it as unretrieved.
            fut.exception()
        self._writable = None
        self._deliver_received(self._app_protocol)
        self._app_protocol.connection_lost(exc)

    def pause_writing(self):
        self._paused = True
        if self._writable is None:
            self._writable = self._loop.create_future()

    def resume_writing(self):
        if not self._paused:
            # The transport was paused before we took over after all.
            self._app_paused = True
        self._paused = False
        fut = self._writable
        self._writable = None
        if fut is not None and not fut.done():
            fut.set_result(None)

    def data_received(self, data):
        # Reading is paused, but a transport may deliver what it had read.
        self._received.append(bytes(data))

    def eof_received(self):
        self._eof = True
        return True   # the application decides, on restore()

    def _deliver_received(self, app):
        received, self._received = self._received, []
        for data in received:
            if isinstance(app, _protocols.BufferedProtocol):
                _protocols._feed_data_to_buffered_proto(app, data)
            else:
                app.data_received(data)

    def restore(self):
        transport = self._transport
        app = self._app_protocol
        transport.set_protocol(app)
        fut = self._writable
        self._writable = None
        if fut is not None and not fut.done():
            fut.cancel()
        if self._app_paused and not self._paused:
            app.resume_writing()
        elif self._paused and not self._app_paused:
            app.pause_writing()
        self._deliver_received(app)
        if self._eof and not transport.is_closing():
            if not app.eof_received():
                transport.close()
        elif self._resume_reading:
            transport.resume_reading()


class _SendfileState:
    __slots__ = ("sock", "file", "fileno", "offset", "count", "blocksize",
                 "sent")

    def __init__(self, sock, file, fileno, offset, count, blocksize):
        self.sock = sock
        self.file = file
        self.fileno = fileno
        self.offset = offset
        self.count = count
        self.blocksize = blocksize
        self.sent = 0

    def _update_filepos(self):
        if self.sent > 0:
            os.lseek(self.fileno, self.offset + self.sent, os.SEEK_SET)

    def finish(self, fut):
        self._update_filepos()
        if fut is None:
            return self.sent
        fut.set_result(self.sent)
        return None

    def fail(self, fut, exc, as_is=False):
        if not as_is and isinstance(exc, OSError):
            if exc.errno == errno.ENOTCONN and type(exc) is not ConnectionError:
                new_exc = ConnectionError("socket is not connected", errno.ENOTCONN)
                new_exc.__cause__ = exc
                exc = new_exc
            if self.sent == 0:
                # Nothing went out: the caller may still fall back to
                # read+send (e.g. sendfile refuses this kind of file).
                err = _aio_exceptions.SendfileNotAvailableError(
                    "os.sendfile call failed")
                err.__cause__ = exc
                exc = err
        self._update_filepos()
        if fut is None:
            raise exc
        fut.set_exception(exc)
        return None


def _check_sendfile_params(sock, file, offset, count):
    if "b" not in getattr(file, "mode", "b"):
        raise ValueError("file should be opened in binary mode")
    if sock.type != socket.SOCK_STREAM:
        raise ValueError("only SOCK_STREAM type sockets are supported")
    if count is not None:
        if not isinstance(count, int):
            raise TypeError(f"count must be a positive integer (got {count!r})")
        if count <= 0:
            raise ValueError(f"count must be a positive integer (got {count!r})")
    if not isinstance(offset, int):
        raise TypeError(f"offset must be a non-negative integer (got {offset!r})")
    if offset < 0:
        raise ValueError(f"offset must be a non-negative integer (got {offset!r})")
