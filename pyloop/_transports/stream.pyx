# cython: language_level=3
"""Stream socket transports (TCP and Unix): the hot path of a server.

What ``create_connection``/``create_server`` hand to protocols.  The
behaviour is asyncio's documented one; what differs is how it is done:

* **Reading**: one ``recv`` per readiness event, sized by what the
  transport's last read brought (``_read_hint``).  Below 8 KiB the read goes
  into a module-wide 256 KiB spare buffer and is copied into an exact-size
  ``bytes``: such a copy costs less than guessing.  From 8 KiB up the kernel
  writes straight into the ``bytes`` that ``data_received`` gets: up to
  32 KiB a ``bytes`` of the expected size plus 16 bytes (shrunk in place to
  what came; a read that fills it may have left more behind, so the next
  one is twice as large); from 32 KiB -- large messages come in pieces of
  varying size, and streams keep coming -- one of 128 KiB less a little,
  below glibc's mmap threshold so that a read never costs an mmap and a
  munmap, shrunk to what came.  One buffer per ``recv``: a ``readv`` into a
  ``bytes`` and the spare buffer behind it measured a quarter of a
  microsecond more kernel time per read than ``recv`` (asking ``FIONREAD``
  first, half a microsecond), more than copying a few KiB costs.  The spare
  buffer is shared by every transport of every loop: it is only used while
  the GIL is held and between the ``recv`` and the copy no Python code runs.
  For a ``BufferedProtocol`` the kernel writes straight into the protocol's
  buffer.
* **Writing**: ``write`` sends at once when nothing is queued (the usual case:
  one ``send`` and no allocation); what the kernel does not take is queued
  without a copy when nobody can change it -- a ``bytes``, or a
  ``memoryview`` of one (the queue keeps its own view, so the caller may
  release theirs) -- with the count of its bytes already sent; anything
  mutable (a ``bytearray``, a view of one) is copied, so that a caller may
  reuse its buffer once ``write`` returned.  The queue is flushed with
  ``writev`` of up to 64 chunks at a time when the socket is writable, and
  ``writelines`` sends its buffers with one ``writev`` instead of joining
  them.  The queue's code is ``stream_queue.pxi``.
* The loop's fd watchers call ``_read_ready``/``_write_ready`` through
  ordinary handles in the ready queue, so transport callbacks are ordered with
  the other callbacks exactly as on asyncio's loop.

Protocols see the transport through ``_public`` -- the object itself here;
kept as one attribute so that a wrapper could stand in for it.

The protocol's context: every protocol callback (``connection_made``,
``data_received`` or ``get_buffer``/``buffer_updated``, ``eof_received``,
``connection_lost``) runs in one ``contextvars.Context``, ``_context``: a copy
of the context current when the transport was made (for a server's
connection, the context its protocol factory ran in), as uvloop does.  So a
variable set before ``create_connection`` is seen by every callback, one set
by a callback is seen by the later ones, and whoever calls ``close()``,
``abort()`` or ``resume_reading()`` does not lend its own context to the
callbacks that follow.  The fd watches' handles run in ``_context``
themselves (``_add_watcher``'s ``context``), so a read or write event enters it once,
as every handle enters its context anyway: the callbacks cost nothing more.
``pause_writing``/``resume_writing`` run in a copy of ``_context`` (see
``flow``): ``write()`` triggers them from inside the protocol's own
callbacks, where ``_context`` is entered already.

Which protocols are served: an ``asyncio.BufferedProtocol``, or -- as uvloop
does -- any object with ``get_buffer`` and ``buffer_updated`` that is not an
``asyncio.Protocol``, is read into its own buffers; anything else gets
``data_received``.  A protocol that has neither (or lacks
``connection_made``/``connection_lost``, or is None) is refused with
TypeError when it is set, before the transport takes the socket, so that
the caller -- ``create_connection``, or the server's accept path, which
reports it -- can close the socket instead of serving a connection nobody
can read.  A missing ``eof_received`` means "close", as in uvloop.

Lifecycle: ``connection_made`` and the start of reading are scheduled with
``call_soon`` at creation; ``close()`` stops reading and waits for the write
queue to drain; ``abort()`` and fatal errors drop the queue.  Either way
``connection_lost`` is called exactly once, from the loop, after which the
socket is closed and the server (if any) told with ``_detach``.

Memory: an idle connection costs what it needs to be served and to answer
``get_extra_info`` as asyncio does, and no more.  Nothing is made ahead of
its need: no per-connection read buffer, no write queue until a write is
left over (and none again once it drained), no bound write callback until
the socket has to be watched for writing, no ``extra`` dict: ``peername``
is kept as the accept (or ``getpeername``) gave it, while ``sockname`` and
the ``socket`` wrapper are made on the first ``get_extra_info`` that asks for
them -- or when the socket is closed, so that they still answer afterwards.
"""

from cpython.bytes cimport (PyBytes_FromStringAndSize, PyBytes_FromObject, PyBytes_AS_STRING,
                            PyBytes_GET_SIZE, PyBytes_Check)
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_WRITABLE, PyBUF_SIMPLE
from cpython.contextvars cimport PyContext_CopyCurrent
from cpython.memoryview cimport PyMemoryView_Check, PyMemoryView_FromObject, PyMemoryView_GET_BUFFER
from libc.errno cimport errno, EAGAIN, EINTR
from libc.string cimport strerror

from pyloop._core.loop cimport BaseLoop

import logging
import socket
import warnings
from asyncio import constants as _aio_constants
from asyncio import protocols as _aio_protocols
from asyncio import trsock as _aio_trsock

from pyloop._transports import flow as _flow

logger = logging.getLogger("asyncio")

cdef extern from "sys/types.h":
    ctypedef long ssize_t

cdef extern from "sys/uio.h" nogil:
    struct iovec:
        void *iov_base
        size_t iov_len
    ssize_t writev(int fd, const iovec *iov, int iovcnt)

cdef extern from "sys/socket.h" nogil:
    ssize_t send(int fd, const void *buf, size_t n, int flags)
    ssize_t recv(int fd, void *buf, size_t n, int flags)

cdef extern from "errno.h":
    int EWOULDBLOCK

cdef extern from *:
    """
    #include <errno.h>
    #include <sys/socket.h>
    #ifndef MSG_NOSIGNAL
    #define MSG_NOSIGNAL 0   /* BSD/macOS: SO_NOSIGPIPE or the ignored SIGPIPE */
    #endif

    /* How a read is sized (see the module docstring).  Below
       PL_DIRECT_READ_MIN: into the spare buffer, then copied.  Up to
       PL_READ_ALL_FROM: straight into a bytes of the expected size plus
       PL_READ_SLACK, so that a read of the expected size tells "that was
       all" (it did not fill the bytes); the slack is below glibc's smallest
       chunk, so giving it back shrinks the block where it is.  From
       PL_READ_ALL_FROM on (large messages come in pieces of varying size, a
       stream keeps coming): a bytes of PL_DIRECT_READ_MAX, below glibc's
       initial mmap threshold (128 KiB) with room for the bytes header and
       malloc's own, so that a read never costs an mmap and a munmap. */
    #define PL_DIRECT_READ_MIN (8 * 1024)
    #define PL_READ_ALL_FROM (32 * 1024)
    #define PL_DIRECT_READ_MAX (128 * 1024 - 256)
    #define PL_READ_SLACK 16

    /* One read from fd into a new bytes object.  *hint: how much to expect,
       updated for the next read (what this one brought, doubled when it
       filled the bytes: more may be waiting).  Returns the bytes with
       *result = its size (> 0), or Py_None (a new reference) with *result =
       0 at EOF or -errno; NULL with a Python exception set (MemoryError). */
    static PyObject *pl_read_bytes(int fd, int *hint, char *spare, Py_ssize_t spare_size,
                                   Py_ssize_t *result)
    {
        PyObject *data;
        Py_ssize_t size = *hint;
        ssize_t n;
        int err;
        if (size < PL_DIRECT_READ_MIN) {
            n = recv(fd, spare, (size_t)spare_size, 0);
            if (n <= 0) {
                *result = n < 0 ? -errno : 0;
                Py_RETURN_NONE;
            }
            *result = n;
            *hint = (int)n;
            return PyBytes_FromStringAndSize(spare, n);
        }
        size = size < PL_READ_ALL_FROM ? size + PL_READ_SLACK : PL_DIRECT_READ_MAX;
        data = PyBytes_FromStringAndSize(NULL, size);
        if (data == NULL)
            return NULL;
        n = recv(fd, PyBytes_AS_STRING(data), (size_t)size, 0);
        if (n <= 0) {
            err = errno;            /* before the deallocation, which may touch errno */
            Py_DECREF(data);
            *result = n < 0 ? -err : 0;
            Py_RETURN_NONE;
        }
        *result = n;
        if (n == size) {
            *hint = (int)(2 * n);
            return data;
        }
        *hint = (int)n;
        if (_PyBytes_Resize(&data, n) < 0)
            return NULL;
        return data;
    }

    """
    int MSG_NOSIGNAL
    object pl_read_bytes(int fd, int *hint, char *spare, Py_ssize_t spare_size, Py_ssize_t *result)

ctypedef unsigned char flag

cdef enum:
    READ_BUFFER_SIZE = 256 * 1024
    # Chunks handed to one writev: enough to drain a typical backlog in one
    # call, few enough to stay far below IOV_MAX everywhere.
    WRITEV_MAX_CHUNKS = 64

cdef char read_buffer[READ_BUFFER_SIZE]

# Write flow control is defined once, in flow.py; read into C globals at import,
# so the hot paths compare plain integers.
cdef Py_ssize_t DEFAULT_HIGH_WATER = _flow.DEFAULT_HIGH_WATER
cdef int WRITES_AFTER_LOSS_BEFORE_WARNING = _flow.WRITES_AFTER_LOSS_BEFORE_WARNING
cdef object _water_marks = _flow.water_marks
cdef object _call_flow_callback = _flow.call_flow_callback

cdef object _BufferedProtocol = _aio_protocols.BufferedProtocol
cdef object _Protocol = _aio_protocols.Protocol
cdef object _TransportSocket = _aio_trsock.TransportSocket
cdef tuple _QUIET_ERRORS = (BrokenPipeError, ConnectionResetError,
                            ConnectionAbortedError)
# ``_sockname`` before anybody asked for it (None is a valid answer).
cdef object _NOT_YET = object()


cdef inline object _errno_error(int err):
    # OSError(errno, ...) becomes the matching subclass (ConnectionResetError...).
    return OSError(err, strerror(err).decode("utf-8", "replace"))


def _set_result_unless_cancelled(fut, result):
    if not fut.cancelled():
        fut.set_result(result)


cdef bint _is_buffered(object protocol) except -1:
    """Whether ``protocol`` is read into its own buffers; TypeError if it
    cannot be served at all (see the module docstring)."""
    cdef bint buffered
    if isinstance(protocol, _BufferedProtocol):
        return True
    if isinstance(protocol, _Protocol):
        return False
    # Duck-typed, as uvloop: judged by its methods, not its base class.
    buffered = (callable(getattr(protocol, "get_buffer", None))
                and callable(getattr(protocol, "buffer_updated", None)))
    needed = ("connection_made", "connection_lost",
              "buffer_updated" if buffered else "data_received")
    missing = [name for name in needed if not callable(getattr(protocol, name, None))]
    if missing:
        raise TypeError(
            f"{protocol!r} is not a stream protocol: it has no "
            f"{', '.join(name + '()' for name in missing)} (a protocol needs connection_made(), "
            f"connection_lost() and data_received(), or get_buffer() and buffer_updated())")
    return buffered


cdef class SocketTransport:
    """A connected TCP or Unix stream socket driven by a pyloop loop.

    Implements ``asyncio.Transport``: ``write``/``writelines``/``write_eof``,
    ``close``/``abort``, ``pause_reading``/``resume_reading``, write flow
    control, ``get_extra_info``, ``set_protocol``/``get_protocol``.
    """

    cdef BaseLoop _loop
    cdef object _sock
    cdef object _protocol
    cdef object _public
    cdef object _server
    cdef object _data_received     # bound protocol.data_received, from the first read
    # get_extra_info: the caller's ``extra`` less peername (None: nothing
    # else); peername as given or read at creation; sockname and the socket
    # wrapper made when first asked for (see the module docstring).
    cdef dict _extra
    cdef object _peername
    cdef object _sockname
    cdef object _trsock
    cdef list _buffer             # queued chunks, oldest first; None: nothing queued
    cdef object _empty_waiter
    # Every protocol callback runs in it (module docstring); readable from
    # Python so that a layer stacked on the transport (TLS) can use it too.
    cdef readonly object _context
    cdef object __weakref__
    # Instance attributes, as asyncio's transports (Python objects) take:
    # tests patch a transport's write() with unittest.mock.patch.object.
    # NULL until first used.
    cdef dict __dict__
    cdef Py_ssize_t _buffer_offset   # bytes of _buffer[0] already sent
    cdef Py_ssize_t _buffer_size      # bytes queued and not yet sent
    cdef Py_ssize_t _high_water
    cdef Py_ssize_t _low_water
    cdef int _fd
    cdef int _conn_lost
    cdef int _read_hint           # the next read's expected size (pl_read_bytes)
    # Flags of one byte each (a bint takes four): 24 bytes less per
    # connection, which puts the object in a smaller allocator class.  They
    # are tested as truth values; a method returning one says bool(...).
    cdef flag _buffered
    cdef flag _closing_started      # close() or abort(); Python sees it as _closing
    cdef flag _eof
    cdef flag _read_eof_seen      # eof_received ran; nothing more to read
    cdef flag _reading_paused     # pause_reading(); Python sees it as _paused
    cdef flag _protocol_connected
    cdef flag _protocol_paused
    cdef flag _writing            # writer registered with the loop

    _sendfile_compatible = _aio_constants._SendfileMode.TRY_NATIVE
    _start_tls_compatible = True

    # isinstance(transport, asyncio.Transport) must hold -- asyncio's own
    # tests and some libraries check it -- but a C type cannot inherit from
    # asyncio.Transport (its __slots__ clash with our layout).  isinstance()
    # falls back to obj.__class__ when type(obj) is not a subclass, so we
    # report a class that derives from both.  type(transport) is unchanged.
    @property
    def __class__(self):
        return _TRANSPORT_CLASS

    def __cinit__(self):
        self._fd = -1
        self._sockname = _NOT_YET
        self._high_water = DEFAULT_HIGH_WATER
        self._low_water = DEFAULT_HIGH_WATER // 4

    def __init__(self, BaseLoop loop not None, sock, protocol, waiter=None,
                 extra=None, server=None, context=None):
        # Refused before anything is taken: the socket stays the caller's.
        self.set_protocol(protocol)
        self._context = PyContext_CopyCurrent() if context is None else context
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._public = self
        if extra and "peername" in extra:
            self._peername = extra["peername"]
            if len(extra) > 1:
                self._extra = dict(extra)
                del self._extra["peername"]
        else:
            if extra:
                self._extra = dict(extra)
            try:
                self._peername = sock.getpeername()
            except OSError:
                self._peername = None
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                # Latency over batching: asyncio sets it too, and a server
                # answering a request with one write would otherwise wait
                # for the client's delayed ACK.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        self._server = server
        if server is not None:
            server._attach(self._public)
        registry = getattr(loop, "_transports", None)
        if registry is not None:
            registry[self._fd] = self._public
        loop.call_soon(self._protocol.connection_made, self._public,
                       context=self._context)
        loop.call_soon(self._start_reading)
        if waiter is not None:
            loop.call_soon(_set_result_unless_cancelled, waiter, None)

    def __repr__(self):
        info = [type(self).__name__]
        if self._sock is None:
            info.append("closed")
        elif self._closing_started:
            info.append("closing")
        info.append(f"fd={self._fd}")
        if self._sock is not None and self._loop is not None and not self._loop._closed:
            info.append("read=" + ("polling" if self.is_reading() else "idle"))
            info.append(f'write=<{"polling" if self._writing else "idle"}, '
                        f"bufsize={self._buffer_size}>")
        return "<{}>".format(" ".join(info))

    def __del__(self):
        if self._sock is not None:
            warnings.warn(f"unclosed transport {self!r}", ResourceWarning,
                          source=self)
            self._sock.close()
            self._sock = None

    # ---- BaseTransport --------------------------------------------------

    def get_extra_info(self, name, default=None):
        """Return transport information: 'socket', 'sockname', 'peername'..."""
        if name == "peername":
            return self._peername
        if name == "sockname":
            return self._get_sockname()
        if name == "socket":
            return self._get_trsock()
        if self._extra is None:
            hash(name)      # TypeError for an unhashable name, as a dict lookup
            return default
        return self._extra.get(name, default)

    cdef object _get_sockname(self):
        # A connected socket's own address never changes: asked once, kept.
        if self._sockname is _NOT_YET and self._sock is not None:
            try:
                self._sockname = self._sock.getsockname()
            except OSError:
                self._sockname = None
        return None if self._sockname is _NOT_YET else self._sockname

    cdef object _get_trsock(self):
        if self._trsock is None and self._sock is not None:
            self._trsock = _TransportSocket(self._sock)
        return self._trsock

    def is_closing(self):
        """Return True once ``close()`` or ``abort()`` was called (or the
        connection was lost)."""
        return bool(self._closing_started)

    def set_protocol(self, protocol):
        """Switch to a new protocol; later data goes to it.  TypeError for an
        object that cannot be a stream protocol."""
        self._buffered = _is_buffered(protocol)
        self._protocol = protocol
        # Looked up once per protocol, at its first read, not per read (uvloop
        # looks it up once too); a protocol that swaps its own data_received
        # after that is not seen.  Not here: an idle connection would hold
        # the bound method (64 bytes) for nothing.
        self._data_received = None
        self._protocol_connected = True

    def get_protocol(self):
        """Return the current protocol."""
        return self._protocol

    def close(self):
        """Close after the write queue is flushed; ``connection_lost(None)``
        follows.  Reading stops at once."""
        if self._closing_started:
            return
        self._closing_started = True
        self._loop._remove_watcher(self._fd, False)
        if not self._buffer:
            self._conn_lost += 1
            self._stop_writing()
            self._loop.call_soon(self._call_connection_lost, None,
                                 context=self._context)

    # ---- ReadTransport --------------------------------------------------

    def is_reading(self):
        """Return True if the transport is receiving."""
        return not self._reading_paused and not self._closing_started

    # asyncio's socket transport keeps its pause in a ``_paused`` attribute,
    # which code in the wild reads (uvloop's tests).  A property over the
    # one-byte flag: the object stays the size it was.
    @property
    def _paused(self):
        return bool(self._reading_paused)

    # The same for asyncio's ``_closing`` (set by close() and abort()).
    @property
    def _closing(self):
        return bool(self._closing_started)

    def pause_reading(self):
        """Stop calling ``data_received`` until ``resume_reading()``."""
        if self._closing_started or self._reading_paused:
            return
        self._reading_paused = True
        self._loop._remove_watcher(self._fd, False)
        if self._loop._debug:
            logger.debug("%r pauses reading", self)

    def resume_reading(self):
        """Resume receiving after ``pause_reading()``."""
        if self._closing_started or not self._reading_paused:
            return
        self._reading_paused = False
        self._start_reading()
        if self._loop._debug:
            logger.debug("%r resumes reading", self)

    def _start_reading(self):
        if not self.is_reading() or self._sock is None or self._read_eof_seen:
            # After EOF the socket stays readable (recv returns 0) for ever:
            # watching it again would call eof_received a second time.
            return
        # The watch's handle holds the bound method for as long as it watches.
        self._loop._add_watcher(self._fd, self._read_ready, (), False,
                                "_read_ready", self._context)

    def _read_ready(self):
        # Runs in the protocol's context (the watch's handle enters it).
        if self._conn_lost:
            return
        if self._buffered:
            self._read_into_protocol()
        else:
            self._read_bytes()

    cdef _read_bytes(self):
        cdef Py_ssize_t n
        data = pl_read_bytes(self._fd, &self._read_hint, read_buffer, READ_BUFFER_SIZE, &n)
        if n > 0:
            try:
                if self._data_received is None:
                    self._data_received = self._protocol.data_received
                self._data_received(data)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal error: protocol.data_received() call failed.")
        elif n == 0:
            self._read_eof()
        elif n != -EAGAIN and n != -EWOULDBLOCK and n != -EINTR:
            self._fatal_error(_errno_error(<int>-n), "Fatal read error on socket transport")

    cdef _read_into_protocol(self):
        cdef Py_buffer view
        cdef ssize_t n
        cdef int err
        try:
            buf = self._protocol.get_buffer(-1)
            PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.get_buffer() call failed.")
            return
        try:
            if view.len == 0:
                exc = RuntimeError("get_buffer() returned an empty buffer")
                self._fatal_error(exc, "Fatal error: protocol.get_buffer() call failed.")
                return
            n = recv(self._fd, view.buf, view.len, 0)
            err = errno
        finally:
            PyBuffer_Release(&view)
        if n > 0:
            try:
                self._protocol.buffer_updated(n)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal error: protocol.buffer_updated() call failed.")
        elif n == 0:
            self._read_eof()
        elif err != EAGAIN and err != EWOULDBLOCK and err != EINTR:
            self._fatal_error(_errno_error(err), "Fatal read error on socket transport")

    cdef _read_eof(self):
        if self._loop._debug:
            logger.debug("%r received EOF", self)
        self._read_eof_seen = True
        try:
            eof_received = getattr(self._protocol, "eof_received", None)
            # No eof_received at all: close, as uvloop does.
            keep_open = eof_received() if eof_received is not None else False
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.eof_received() call failed.")
            return
        if keep_open:
            # Half-closed: the peer will send nothing more, but we may write.
            self._loop._remove_watcher(self._fd, False)
        else:
            self.close()

    # ---- WriteTransport -------------------------------------------------

    cdef bint _may_write(self) except -1:
        """The checks every write makes once its data is known to be
        non-empty: False if it is to be dropped (the connection is lost)."""
        if self._conn_lost:
            if self._conn_lost >= WRITES_AFTER_LOSS_BEFORE_WARNING:
                logger.warning("socket.send() raised exception.")
            self._conn_lost += 1
            return False
        return True

    cdef int _check_open(self) except -1:
        if self._eof:
            raise RuntimeError("Cannot call write() after write_eof()")
        if self._empty_waiter is not None:
            raise RuntimeError("unable to write; sendfile is in progress")
        return 0

    def write(self, data):
        """Queue ``data`` (bytes-like) for sending; never blocks."""
        cdef Py_buffer view
        cdef ssize_t n
        cdef int err
        cdef Py_ssize_t length
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data argument must be a bytes-like object, "
                            f"not {type(data).__name__!r}")
        # The checks of _check_open and _may_write, spelled out on the hot path.
        if self._eof:
            raise RuntimeError("Cannot call write() after write_eof()")
        if self._empty_waiter is not None:
            raise RuntimeError("unable to write; sendfile is in progress")
        if not data:
            return
        if self._conn_lost:
            if self._conn_lost >= WRITES_AFTER_LOSS_BEFORE_WARNING:
                logger.warning("socket.send() raised exception.")
            self._conn_lost += 1
            return
        if self._buffer:
            _queue(self, data, 0)
            return
        if type(data) is bytes:
            # The common case, without the buffer protocol's bookkeeping.
            length = PyBytes_GET_SIZE(data)
            if length == 0:
                return
            n = send(self._fd, PyBytes_AS_STRING(data), length, MSG_NOSIGNAL)
            err = errno
        else:
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
            try:
                length = view.len
                if length == 0:
                    return
                n = send(self._fd, view.buf, length, MSG_NOSIGNAL)
                err = errno
            finally:
                PyBuffer_Release(&view)
        if n < 0:
            if err != EAGAIN and err != EWOULDBLOCK and err != EINTR:
                self._fatal_error(_errno_error(err), "Fatal write error on socket transport")
                return
            n = 0
        if n == length:
            return
        _queue(self, data, n)
        self._start_writing()

    def writelines(self, list_of_data):
        """Write an iterable of bytes-like objects, in one system call when
        they fit."""
        _writelines(self, list_of_data)

    cdef _start_writing(self):
        if not self._writing:
            self._writing = True
            # A bound method made now, held by the watch's handle until the
            # queue drained: nothing per connection while nothing waits.
            self._loop._add_watcher(self._fd, self._write_ready, (), True,
                                    "_write_ready", self._context)

    cdef _stop_writing(self):
        if self._writing:
            self._writing = False
            if self._loop is not None:
                self._loop._remove_watcher(self._fd, True)

    def _write_ready(self):
        _flush(self)

    def write_eof(self):
        """Close the write side once the queue is flushed (half-close)."""
        if self._closing_started or self._eof:
            return
        self._eof = True
        if not self._buffer:
            self._sock.shutdown(socket.SHUT_WR)

    def can_write_eof(self):
        """Return True: stream sockets support half-close."""
        return True

    def abort(self):
        """Close at once, dropping queued data; ``connection_lost(None)``
        follows."""
        self._close_now(None)

    # ---- flow control ---------------------------------------------------

    def get_write_buffer_size(self):
        """Return the number of bytes queued for sending."""
        return self._buffer_size

    def get_write_buffer_limits(self):
        """Return ``(low, high)``: the write flow-control water marks."""
        return (self._low_water, self._high_water)

    def set_write_buffer_limits(self, high=None, low=None):
        """Set the water marks (high defaults to 64 KiB, low to high/4)."""
        self._high_water, self._low_water = _water_marks(high, low)
        self._maybe_pause_protocol()

    cdef _maybe_pause_protocol(self):
        if self._protocol_paused:
            return
        if self._buffer_size <= self._high_water:
            return
        self._protocol_paused = True
        self._call_protocol_flow("pause_writing")

    cdef _maybe_resume_protocol(self):
        if (self._protocol_paused and
                self._buffer_size <= self._low_water):
            self._protocol_paused = False
            self._call_protocol_flow("resume_writing")

    cdef _call_protocol_flow(self, str name):
        # Only when the buffer crosses a mark, never per write.
        _call_flow_callback(self._loop, self._public, self._protocol, name,
                            self._context)

    # ---- sendfile support (loop.sendfile) ---------------------------------

    def _make_empty_waiter(self):
        if self._empty_waiter is not None:
            raise RuntimeError("Empty waiter is already set")
        self._empty_waiter = self._loop.create_future()
        if not self._buffer:
            self._empty_waiter.set_result(None)
        return self._empty_waiter

    def _reset_empty_waiter(self):
        self._empty_waiter = None

    # ---- the end --------------------------------------------------------

    cdef _fatal_error(self, exc, str message):
        if isinstance(exc, OSError):
            # Peers vanish all the time; that is the protocol's news
            # (connection_lost), not the loop's.
            if self._loop._debug:
                logger.debug("%r: %s", self, message, exc_info=True)
        else:
            self._loop.call_exception_handler({
                "message": message,
                "exception": exc,
                "transport": self._public,
                "protocol": self._protocol,
            })
        self._close_now(exc)

    def _force_close(self, exc):
        """Close at once with ``exc`` for connection_lost (asyncio's
        private name: SSLProtocol calls it)."""
        self._close_now(exc)

    cdef _close_now(self, exc):
        if self._conn_lost:
            return
        if self._buffer:
            _drop_queue(self)
        self._stop_writing()
        if not self._closing_started:
            self._closing_started = True
            self._loop._remove_watcher(self._fd, False)
        self._conn_lost += 1
        self._loop.call_soon(self._call_connection_lost, exc,
                             context=self._context)

    def _call_connection_lost(self, exc):
        # A graceful close() that had to flush first ends here without
        # having counted the loss: count it now, so that a later write()
        # or abort() is dropped instead of touching ``_fd`` -- by then the
        # number may belong to another connection's socket.
        if self._conn_lost == 0:
            self._conn_lost = 1
        try:
            if self._protocol_connected:
                self._protocol.connection_lost(exc)
        finally:
            if self._sock is not None:
                # What get_extra_info would have read from the socket, read
                # while it is open so that it still answers afterwards.
                self._get_sockname()
                self._get_trsock()
                self._sock.close()
                self._sock = None
            self._protocol = None
            self._data_received = None
            server = self._server
            self._server = None
            if server is not None:
                server._detach(self._public)


include "stream_queue.pxi"


def _make_public_class():
    # A plain Python class that is both an asyncio.Transport and (by name)
    # what users see in reprs; never instantiated.
    from asyncio import transports
    return type("SocketTransport", (transports.Transport,), {
        "__doc__": SocketTransport.__doc__,
        "__module__": __name__,
        "__slots__": (),
    })


_TRANSPORT_CLASS = _make_public_class()
