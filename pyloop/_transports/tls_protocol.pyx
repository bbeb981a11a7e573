# cython: language_level=3
"""TLS over a stream transport: pyloop's own TLS layer, over ``ssl.MemoryBIO``.

What ``ssl=`` connections and servers and ``loop.start_tls`` stack between the
socket transport and the application::

    application protocol  <->  SSLTransport   (what the application talks to)
                               SSLProtocol    (this module: the TLS state machine)
    socket transport      <->  socket         (stream.pyx, or an SSLTransport: TLS in TLS)

OpenSSL does the cryptography on two memory BIOs: the ciphertext the socket
transport reads goes into ``incoming``, what TLS produces to send comes out of
``outgoing``.  The contract (states, timeouts, flow control, errors) is
asyncio's ``sslproto``; where uvloop behaves better, this layer does what
uvloop does:

* **States**: UNWRAPPED -> DO_HANDSHAKE -> WRAPPED -> FLUSHING -> SHUTDOWN ->
  UNWRAPPED.  ``close()`` flushes what the application wrote, sends
  close_notify and waits (``ssl_shutdown_timeout``) for the peer's;
  ``abort()`` and errors drop the connection at once.
* **Handshake**: bounded by ``ssl_handshake_timeout``; the application's
  ``connection_made`` runs, then the waiter wakes, and the first application
  data (which may have come in the same read as the handshake's last flight)
  is delivered in a callback after the waiter's: ``start_tls`` callers get the
  new transport before any data arrives on it.
* **Shutdown**: application data that arrives while we shut down is read and
  dropped (TLS 1.3 lets a peer send data after our close_notify; OpenSSL's
  ``SSL_shutdown`` would fail on it), and the peer's close_notify still
  reaches ``eof_received`` even while reading is paused.  A TCP EOF (with or
  without close_notify) delivers what is left, then ``eof_received`` (as
  asyncio), then closes; while reading is paused the connection waits for
  ``resume_reading``.  Every wait for the peer -- FLUSHING, SHUTDOWN, that
  paused EOF -- runs under the shutdown timer, so none can hang (asyncio's
  paused EOF has no timer: it hangs).
* **Context**: every application callback (``connection_made``,
  ``data_received``/``get_buffer``/``buffer_updated``, ``eof_received``,
  ``pause_writing``/``resume_writing``, ``connection_lost``) runs in the
  ``contextvars.Context`` the protocol was given (a copy of the context current
  when the connection was set up; for ``start_tls``, the transport's), whatever
  context triggered it: the socket's readiness, a timer, or the application's
  own ``write`` from another task.
* **Buffered protocols** are recognised by behaviour, as uvloop does (a
  ``get_buffer`` method and no ``asyncio.Protocol`` base): decrypted bytes go
  straight into the buffer they return.

The hot path, per read: the socket transport ``recv``s into this protocol's
own ciphertext buffer (``get_buffer``; no allocation), the complete TLS records
go into ``incoming``, and OpenSSL decrypts straight into the ``bytes`` handed
to ``data_received`` (sized from what is pending, so no 256 KiB allocation and
no second copy).  A write encrypts into ``outgoing`` and hands its contents to
the socket transport in one ``write``; writes made while a read is being
delivered are sent together once it returns.  ``SSLObject``'s Python methods
are bypassed for the C object they wrap, and records are fed to OpenSSL whole
(a partial record waits in the buffer for its end), so ``SSLWantReadError``,
an expensive exception, is almost never raised on the way.
"""

from cpython.buffer cimport PyBUF_FORMAT, PyBUF_ND, PyBUF_WRITABLE, PyBUF_STRIDES
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.object cimport PyObject
from libc.stdlib cimport malloc, free
from libc.string cimport memmove, memcpy

import logging
import ssl
import warnings
from asyncio import constants as _aio_constants
from asyncio import exceptions as _aio_exceptions
from asyncio import protocols as _aio_protocols
from asyncio import transports as _aio_transports

from pyloop._transports import flow as _flow

logger = logging.getLogger("asyncio")

cdef extern from "Python.h":
    int PyContext_Exit(object ctx) except -1
    object PyContext_CopyCurrent()

cdef extern from *:
    """
    /* A bytes object to decrypt into; it is only ever seen by this module
     * until pl_tls_finish_bytes hands it out. */
    static PyObject *pl_tls_new_bytes(Py_ssize_t n) {
        return PyBytes_FromStringAndSize(NULL, n);
    }
    /* Cut a bytes object made by pl_tls_new_bytes to its first n bytes
     * (steals the reference; NULL with an exception on failure). */
    static PyObject *pl_tls_finish_bytes(PyObject *b, Py_ssize_t n) {
        if (_PyBytes_Resize(&b, n) < 0)
            return NULL;
        return b;
    }
    /* Enter ctx; 0 (and no error) when it is entered already: the caller
     * then simply does not exit it.  The usual case -- the socket transport
     * runs us in this very context -- is one pointer compare (the thread
     * state's current context, a public field of CPython's PyThreadState);
     * a context entered further up the stack makes PyContext_Enter fail,
     * which is cleared. */
    static int pl_tls_enter(PyObject *ctx) {
    #if PY_VERSION_HEX < 0x030F0000
        if (PyThreadState_GET()->context == ctx)
            return 0;
    #endif
        if (PyContext_Enter(ctx) == 0)
            return 1;
        PyErr_Clear();
        return 0;
    }
    """
    PyObject *pl_tls_new_bytes(Py_ssize_t n)
    object pl_tls_finish_bytes(PyObject *b, Py_ssize_t n)
    int pl_tls_enter(object ctx)
    void Py_DECREF(PyObject *o)

cdef enum:
    # The ciphertext buffer of a connection; also the most plaintext handed to
    # the application in one data_received call.
    BUFFER_SIZE = 256 * 1024
    # get_buffer compacts the buffer when less than this is free behind the
    # bytes it keeps (at most one partial record, see _feed).
    MIN_FREE = 64 * 1024
    TLS_HEADER = 5
    # The longest record body TLS allows (RFC 5246 6.2.3: 2^14 + 2048).
    TLS_MAX_BODY = 16384 + 2048
    # How much close() reads at once while it drops what the peer still sends.
    DISCARD_CHUNK = 16 * 1024

cdef enum _State:
    UNWRAPPED
    DO_HANDSHAKE
    WRAPPED
    FLUSHING
    SHUTDOWN

cdef enum _AppState:
    # INIT -connection_made-> CON_MADE [-eof_received-> EOF] -connection_lost-> CON_LOST
    APP_INIT
    APP_CON_MADE
    APP_EOF
    APP_CON_LOST

_STATE_NAMES = ("UNWRAPPED", "DO_HANDSHAKE", "WRAPPED", "FLUSHING", "SHUTDOWN")

cdef tuple _SSL_AGAIN = (ssl.SSLWantReadError, ssl.SSLSyscallError)
cdef object _SSLError = ssl.SSLError
cdef object _SSLZeroReturnError = ssl.SSLZeroReturnError
cdef object _CertificateError = ssl.CertificateError
cdef object _SSLObject = ssl.SSLObject
cdef object _MemoryBIO = ssl.MemoryBIO
cdef object _Protocol = _aio_protocols.Protocol
cdef object _CancelledError = _aio_exceptions.CancelledError
cdef object _water_marks = _flow.water_marks
cdef Py_ssize_t WRITES_AFTER_LOSS_BEFORE_WARNING = _flow.WRITES_AFTER_LOSS_BEFORE_WARNING
cdef Py_ssize_t DEFAULT_READ_HIGH = _aio_constants.FLOW_CONTROL_HIGH_WATER_SSL_READ * 1024
cdef Py_ssize_t DEFAULT_WRITE_HIGH = _aio_constants.FLOW_CONTROL_HIGH_WATER_SSL_WRITE * 1024


def _create_transport_context(server_side, server_hostname):
    """The client context ``ssl=True`` stands for (asyncio's choice)."""
    if server_side:
        raise ValueError("Server side SSL needs a valid SSLContext")
    sslcontext = ssl.create_default_context()
    if not server_hostname:
        sslcontext.check_hostname = False
    return sslcontext


def _marks(high, low, Py_ssize_t default_high):
    # asyncio's add_flowcontrol_defaults: high defaults to default_high (or
    # 4 * low), low to high // 4; ValueError unless high >= low >= 0.
    if high is None and low is None:
        high = default_high
    return _water_marks(high, low)


cdef class _Span:
    """A writable window ``[ptr, ptr + len)`` exported through the buffer
    protocol: what ``get_buffer`` returns and where OpenSSL decrypts to, moved
    instead of allocated for every read.  With ``owned`` it also owns the
    memory (the ciphertext buffer), so a view that outlives the protocol
    still points at live memory."""

    cdef char *base
    cdef char *ptr
    cdef Py_ssize_t len
    cdef Py_ssize_t _shape
    cdef Py_ssize_t _stride

    def __cinit__(self):
        self._stride = 1

    def __dealloc__(self):
        if self.base != NULL:
            free(self.base)
            self.base = NULL

    def __getbuffer__(self, Py_buffer *buffer, int flags):
        if self.ptr == NULL and self.len:
            raise BufferError("the buffer is gone")
        self._shape = self.len
        buffer.buf = self.ptr
        buffer.obj = self
        buffer.len = self.len
        buffer.readonly = 0
        buffer.itemsize = 1
        buffer.format = NULL
        if flags & PyBUF_FORMAT:
            buffer.format = b"B"
        buffer.ndim = 1
        buffer.shape = &self._shape if flags & PyBUF_ND else NULL
        buffer.strides = &self._stride if (flags & PyBUF_STRIDES) == PyBUF_STRIDES else NULL
        buffer.suboffsets = NULL
        buffer.internal = NULL

    def __releasebuffer__(self, Py_buffer *buffer):
        pass

    def __len__(self):
        return self.len


cdef class SSLTransport


cdef class SSLProtocol:
    """TLS over a stream transport: the protocol of the socket transport
    below, driving the application protocol above through a
    :class:`SSLTransport`.

    Made by the loop for ``ssl=`` connections and servers and ``start_tls``;
    the arguments are asyncio's ``SSLProtocol``'s plus ``context``, the
    ``contextvars.Context`` the application's callbacks run in (default: a
    copy of the current one).
    """

    cdef object _loop
    cdef object _context
    cdef object _app_protocol
    cdef bint _app_buffered
    # Read by code written for asyncio's SSLProtocol (aiohttp checks which context a connection uses).
    cdef readonly object _sslcontext
    cdef bint _server_side
    cdef object _server_hostname
    cdef dict _extra
    cdef object _waiter
    cdef object _transport              # the stream below
    cdef object _transport_write
    cdef SSLTransport _app_transport
    cdef object _handshake_timeout
    cdef object _shutdown_timeout
    cdef object _handshake_timeout_handle
    cdef object _shutdown_timeout_handle
    cdef object _handshake_start_time
    # TLS engine
    cdef object _incoming
    cdef object _outgoing
    cdef object _incoming_write
    cdef object _outgoing_read
    cdef object _sslobj                 # ssl.SSLObject, what get_extra_info shows
    cdef object _ssl_read               # ...and the methods of the C object it wraps
    cdef object _ssl_write
    cdef object _ssl_pending
    cdef object _ssl_do_handshake
    cdef object _ssl_shutdown
    cdef bint _plain_pending            # the last read filled its buffer: more may be decrypted
    cdef _State _state
    cdef _AppState _app_state
    cdef Py_ssize_t _conn_lost
    # ciphertext buffer: [_in_start, _in_end) is received and not yet fed to
    # OpenSSL; _scan is where the next record header starts (< _in_start only
    # while the record it starts was already fed in part, after the handshake)
    cdef _Span _in
    cdef Py_ssize_t _in_start
    cdef Py_ssize_t _in_end
    cdef Py_ssize_t _scan
    cdef bint _framing                  # records are fed whole; off for what is not TLS
    cdef _Span _out                     # where the next decryption goes
    # writes
    cdef list _write_backlog            # what OpenSSL could not take yet
    cdef Py_ssize_t _write_backlog_size
    cdef int _defer_flush               # inside a delivery: writes are sent when it ends
    cdef bint _flush_pending
    # flow control
    cdef bint _ssl_writing_paused       # the stream below is full
    cdef bint _app_writing_paused
    cdef Py_ssize_t _outgoing_high
    cdef Py_ssize_t _outgoing_low
    cdef bint _app_reading_paused
    cdef bint _ssl_reading_paused       # we paused the stream below
    cdef Py_ssize_t _incoming_high
    cdef Py_ssize_t _incoming_low
    cdef bint _read_scheduled           # the first read after the handshake is queued
    cdef bint _peer_eof                 # the stream below reached EOF
    cdef object __weakref__

    @property
    def __class__(self):
        # isinstance(p, asyncio.BufferedProtocol) must hold: the socket
        # transport picks its buffered read path by it.  See stream.pyx.
        return _PROTOCOL_CLASS

    def __cinit__(self):
        self._in = _Span()
        self._out = _Span()
        self._write_backlog = []
        self._framing = True

    def __init__(self, loop, app_protocol, sslcontext, waiter,
                 server_side=False, server_hostname=None,
                 call_connection_made=True,
                 ssl_handshake_timeout=None,
                 ssl_shutdown_timeout=None, *, context=None):
        if ssl_handshake_timeout is None:
            ssl_handshake_timeout = _aio_constants.SSL_HANDSHAKE_TIMEOUT
        elif ssl_handshake_timeout <= 0:
            raise ValueError(
                f"ssl_handshake_timeout should be a positive number, "
                f"got {ssl_handshake_timeout}")
        if ssl_shutdown_timeout is None:
            ssl_shutdown_timeout = _aio_constants.SSL_SHUTDOWN_TIMEOUT
        elif ssl_shutdown_timeout <= 0:
            raise ValueError(
                f"ssl_shutdown_timeout should be a positive number, "
                f"got {ssl_shutdown_timeout}")
        if not sslcontext:
            sslcontext = _create_transport_context(server_side, server_hostname)
        self._loop = loop
        self._context = PyContext_CopyCurrent() if context is None else context
        self._server_side = server_side
        self._server_hostname = server_hostname if server_hostname and not server_side else None
        self._sslcontext = sslcontext
        self._extra = {"sslcontext": sslcontext}
        self._waiter = waiter
        self._handshake_timeout = ssl_handshake_timeout
        self._shutdown_timeout = ssl_shutdown_timeout
        self._state = UNWRAPPED
        self._app_state = APP_INIT if call_connection_made else APP_CON_MADE
        self._incoming = _MemoryBIO()
        self._outgoing = _MemoryBIO()
        self._incoming_write = self._incoming.write
        self._outgoing_read = self._outgoing.read
        # As asyncio: a context that cannot make this connection (check_hostname
        # without a server_hostname...) fails here, in the caller.
        self._bind_sslobj(sslcontext.wrap_bio(
            self._incoming, self._outgoing, server_side=self._server_side,
            server_hostname=self._server_hostname))
        self._outgoing_high = DEFAULT_WRITE_HIGH
        self._outgoing_low = DEFAULT_WRITE_HIGH // 4
        self._incoming_high = DEFAULT_READ_HIGH
        self._incoming_low = DEFAULT_READ_HIGH // 4
        self._set_app_protocol(app_protocol)
        self._app_transport = SSLTransport.__new__(SSLTransport)
        self._app_transport._loop = loop
        self._app_transport._ssl_protocol = self

    cdef _bind_sslobj(self, sslobj):
        self._sslobj = sslobj
        # ssl.SSLObject's methods are Python functions that call the same
        # method of the C object they wrap: call that one (a subclass, from
        # SSLContext.sslobject_class, keeps its own methods).
        inner = sslobj._sslobj if type(sslobj) is _SSLObject else None
        if inner is not None:
            self._ssl_read = inner.read
            self._ssl_write = inner.write
            self._ssl_pending = inner.pending
            self._ssl_do_handshake = inner.do_handshake
            self._ssl_shutdown = inner.shutdown
        else:
            self._ssl_read = sslobj.read
            self._ssl_write = sslobj.write
            self._ssl_pending = sslobj.pending
            self._ssl_do_handshake = sslobj.do_handshake
            self._ssl_shutdown = sslobj.unwrap

    def __repr__(self):
        return f"<SSLProtocol state={_STATE_NAMES[<int>self._state]}>"

    def _get_app_transport(self):
        """The transport the application protocol uses."""
        return self._app_transport

    def _share_context(self, context):
        """Run the application's callbacks in ``context`` from now on: the
        socket transport's own, when the loop made both layers for one
        connection at once (one context per connection, entered once per
        event by the socket transport's handle)."""
        if context is not None:
            self._context = context

    cdef _set_app_protocol(self, app_protocol):
        self._app_protocol = app_protocol
        # Buffered by behaviour, as uvloop: get_buffer and no Protocol base.
        # The methods are looked up at each call, as asyncio does: a protocol
        # may rebind them as its state changes.
        self._app_buffered = (hasattr(app_protocol, "get_buffer")
                              and not isinstance(app_protocol, _Protocol))

    cdef _wakeup_waiter(self, exc=None):
        waiter = self._waiter
        if waiter is None:
            return
        self._waiter = None
        if not waiter.cancelled():
            if exc is not None:
                waiter.set_exception(exc)
            else:
                waiter.set_result(None)

    cdef _get_extra_info(self, name, default=None):
        if name in self._extra:
            return self._extra[name]
        if self._transport is not None:
            return self._transport.get_extra_info(name, default)
        return default

    cdef _set_state(self, _State new_state):
        cdef _State old = self._state
        if not (new_state == UNWRAPPED
                or (old == UNWRAPPED and new_state == DO_HANDSHAKE)
                or (old == DO_HANDSHAKE and new_state == WRAPPED)
                or (old == WRAPPED and (new_state == FLUSHING or new_state == SHUTDOWN))
                or (old == FLUSHING and new_state == SHUTDOWN)):
            raise RuntimeError(f"cannot switch state from {_STATE_NAMES[<int>old]} "
                               f"to {_STATE_NAMES[<int>new_state]}")
        self._state = new_state

    # ---- the stream below calls these ------------------------------------

    def connection_made(self, transport):
        """The stream is connected: start the handshake."""
        cdef int entered = pl_tls_enter(self._context)
        try:
            self._transport = transport
            self._transport_write = transport.write
            self._start_handshake()
        finally:
            if entered:
                PyContext_Exit(self._context)

    def connection_lost(self, exc):
        """The stream is closed: tell the application (if it was connected)
        and wake a waiter still waiting for the handshake."""
        cdef int entered = pl_tls_enter(self._context)
        try:
            self._write_backlog.clear()
            self._write_backlog_size = 0
            self._outgoing_read()
            self._conn_lost += 1
            if self._app_transport is not None:
                self._app_transport._closed = True
            if self._state != DO_HANDSHAKE and (
                    self._app_state == APP_CON_MADE or self._app_state == APP_EOF):
                self._app_state = APP_CON_LOST
                self._loop.call_soon(self._app_protocol.connection_lost, exc,
                                     context=self._context)
            self._state = UNWRAPPED
            # Drop every reference that could keep a cycle alive: what is
            # left of the connection must go with the last user reference.
            self._transport = None
            self._transport_write = None
            self._app_transport = None
            self._app_protocol = None
            self._wakeup_waiter(exc)
            self._cancel_timers()
        finally:
            if entered:
                PyContext_Exit(self._context)

    cdef _cancel_timers(self):
        if self._shutdown_timeout_handle is not None:
            self._shutdown_timeout_handle.cancel()
            self._shutdown_timeout_handle = None
        if self._handshake_timeout_handle is not None:
            self._handshake_timeout_handle.cancel()
            self._handshake_timeout_handle = None

    def get_buffer(self, Py_ssize_t sizehint):
        """Where the stream below reads the next ciphertext to: the free
        part of this connection's buffer (no allocation)."""
        return self._get_buffer()

    cdef _Span _get_buffer(self):
        cdef _Span span = self._in
        cdef Py_ssize_t keep
        if span.base == NULL:
            span.base = <char *>malloc(BUFFER_SIZE)
            if span.base == NULL:
                raise MemoryError()
        if self._in_start == self._in_end and self._scan >= self._in_end:
            self._in_start = self._in_end = self._scan = 0
        elif BUFFER_SIZE - self._in_end < MIN_FREE:
            keep = self._in_start if self._in_start < self._scan else self._scan
            memmove(span.base, span.base + keep, self._in_end - keep)
            self._in_start -= keep
            self._in_end -= keep
            self._scan -= keep
        span.ptr = span.base + self._in_end
        span.len = BUFFER_SIZE - self._in_end
        return span

    def buffer_updated(self, Py_ssize_t nbytes):
        """``nbytes`` of ciphertext arrived in the buffer ``get_buffer``
        returned."""
        if nbytes <= 0 or nbytes > BUFFER_SIZE - self._in_end or self._in.base == NULL:
            raise ValueError(f"buffer_updated({nbytes}) does not match the buffer given")
        cdef int entered = pl_tls_enter(self._context)
        try:
            self._in_end += nbytes
            self._on_ciphertext()
        finally:
            if entered:
                PyContext_Exit(self._context)

    def data_received(self, data):
        """Ciphertext from a stream that does not use ``get_buffer``."""
        cdef Py_buffer view
        cdef Py_ssize_t done = 0, n
        cdef _Span span
        PyObject_GetBuffer(data, &view, 0)
        cdef int entered = pl_tls_enter(self._context)
        try:
            while done < view.len:
                span = self._get_buffer()
                n = min(span.len, view.len - done)
                memcpy(span.ptr, <char *>view.buf + done, n)
                done += n
                self._in_end += n
                self._on_ciphertext()
        finally:
            if entered:
                PyContext_Exit(self._context)
            PyBuffer_Release(&view)

    def eof_received(self):
        """The stream below reached EOF: the peer closed TCP, without or
        after close_notify.  What can still be decrypted is delivered, then
        ``eof_received`` (as asyncio) and the connection closes.  While the
        application has paused reading, the stream stays half-open until it
        resumes -- but under the shutdown timer, so a protocol that never
        resumes cannot hang the connection (asyncio.sslproto waits without
        one)."""
        cdef int entered = pl_tls_enter(self._context)
        try:
            if self._loop.get_debug():
                logger.debug("%r received EOF", self)
            if self._state == DO_HANDSHAKE:
                self._on_handshake_complete(ConnectionResetError)
                return None
            self._peer_eof = True
            if self._state == WRAPPED:
                if not self._app_reading_paused:
                    self._read_scheduled = False
                    _do_read(self)
                if self._state == WRAPPED and self._app_reading_paused:
                    self._arm_shutdown_timer()
                    return True   # the stream stays open for what we still write
                if self._state == WRAPPED:
                    self._finish_at_eof()
                    return None
            if self._state == FLUSHING:
                _do_write(self)
                _process_outgoing(self)
                self._set_state(SHUTDOWN)
            if self._state == SHUTDOWN:
                _call_eof_received(self)
                _on_shutdown_complete(self, None)
        except Exception:
            if self._transport is not None:
                self._transport.close()
            raise
        finally:
            if entered:
                PyContext_Exit(self._context)

    cdef _finish_at_eof(self):
        # WRAPPED, the peer's EOF seen and everything delivered: send what
        # the application wrote, tell it, close.
        _do_write(self)
        _process_outgoing(self)
        self._set_state(SHUTDOWN)
        _call_eof_received(self)
        _on_shutdown_complete(self, None)

    cdef _arm_shutdown_timer(self):
        if self._shutdown_timeout_handle is None:
            self._shutdown_timeout_handle = self._loop.call_later(
                self._shutdown_timeout, self._check_shutdown_timeout)

    def pause_writing(self):
        """The stream below is full: keep ciphertext in ``outgoing``."""
        self._ssl_writing_paused = True

    def resume_writing(self):
        """The stream below drained: send what waited."""
        cdef int entered = pl_tls_enter(self._context)
        try:
            self._ssl_writing_paused = False
            if self._state == WRAPPED:
                _process_outgoing(self)
                _control_app_writing(self)
            elif self._state == FLUSHING:
                _do_flush(self)
            elif self._state == SHUTDOWN:
                _do_shutdown(self)
        finally:
            if entered:
                PyContext_Exit(self._context)

    # ---- ciphertext in ------------------------------------------------------

    cdef _on_ciphertext(self):
        self._feed()
        if self._state == DO_HANDSHAKE:
            self._do_handshake()
        elif self._state == WRAPPED:
            if self._read_scheduled:
                _control_ssl_reading(self)   # the queued first read delivers it
            else:
                _do_read(self)
        elif self._state == FLUSHING:
            _do_flush(self)
        elif self._state == SHUTDOWN:
            _do_shutdown(self)

    cdef _feed(self):
        """Give OpenSSL the complete records received: a record it gets in
        part makes SSL_read raise SSLWantReadError, which costs more than
        the decryption.  Before the handshake is done, and for bytes that
        are not TLS records, everything goes at once and OpenSSL judges."""
        cdef Py_ssize_t ready
        if self._state != DO_HANDSHAKE and self._framing:
            ready = self._scan_records()
        else:
            ready = self._in_end
            self._scan = ready
        if ready > self._in_start:
            self._in.ptr = self._in.base + self._in_start
            self._in.len = ready - self._in_start
            self._incoming_write(self._in)
            self._in_start = ready

    cdef Py_ssize_t _scan_records(self):
        cdef const unsigned char *b = <const unsigned char *>self._in.base
        cdef Py_ssize_t pos = self._scan, end = self._in_end, body
        while end - pos >= TLS_HEADER:
            body = (<Py_ssize_t>b[pos + 3] << 8) | b[pos + 4]
            if b[pos] < 20 or b[pos] > 24 or b[pos + 1] != 3 or body > TLS_MAX_BODY:
                # Not a TLS record header: stop framing, OpenSSL will fail it.
                self._framing = False
                self._scan = end
                return end
            if end - pos < TLS_HEADER + body:
                break
            pos += TLS_HEADER + body
        self._scan = pos
        return pos

    cdef Py_ssize_t _read_buffer_size(self):
        return <Py_ssize_t>self._incoming.pending + (self._in_end - self._in_start)

    # ---- handshake -------------------------------------------------------------

    cdef _start_handshake(self):
        if self._loop.get_debug():
            logger.debug("%r starts SSL handshake", self)
            self._handshake_start_time = self._loop.time()
        else:
            self._handshake_start_time = None
        self._set_state(DO_HANDSHAKE)
        self._handshake_timeout_handle = self._loop.call_later(
            self._handshake_timeout, self._check_handshake_timeout)
        self._do_handshake()

    def _check_handshake_timeout(self):
        cdef int entered = pl_tls_enter(self._context)
        try:
            self._handshake_timeout_handle = None
            if self._state == DO_HANDSHAKE:
                _fatal_error(self, ConnectionAbortedError(
                    f"SSL handshake is taking longer than "
                    f"{self._handshake_timeout} seconds: aborting the connection"))
        finally:
            if entered:
                PyContext_Exit(self._context)

    def _check_shutdown_timeout(self):
        cdef int entered = pl_tls_enter(self._context)
        try:
            self._shutdown_timeout_handle = None
            if self._transport is not None and (
                    self._state == FLUSHING or self._state == SHUTDOWN
                    or (self._state == WRAPPED and self._peer_eof)):
                self._transport._force_close(_aio_exceptions.TimeoutError("SSL shutdown timed out"))
        finally:
            if entered:
                PyContext_Exit(self._context)

    cdef _do_handshake(self):
        try:
            self._ssl_do_handshake()
        except _SSL_AGAIN:
            _process_outgoing(self)
        except Exception as exc:
            # SSLErrors, and what a callback of the context (SNI...) raised.
            self._on_handshake_complete(exc)
        else:
            self._on_handshake_complete(None)

    cdef _on_handshake_complete(self, handshake_exc):
        if self._handshake_timeout_handle is not None:
            self._handshake_timeout_handle.cancel()
            self._handshake_timeout_handle = None
        sslobj = self._sslobj
        try:
            if handshake_exc is not None:
                raise handshake_exc
            self._set_state(WRAPPED)
            peercert = sslobj.getpeercert()
        except Exception as exc:
            self._state = UNWRAPPED
            if isinstance(exc, _CertificateError):
                msg = "SSL handshake failed on verifying the certificate"
            else:
                msg = "SSL handshake failed"
            _process_outgoing(self)   # the alert that tells the peer why
            _fatal_error(self, exc, msg)
            self._wakeup_waiter(exc)
            return
        if self._loop.get_debug():
            dt = self._loop.time() - self._handshake_start_time
            logger.debug("%r: SSL handshake took %.1f ms", self, dt * 1e3)
        self._extra.update(peercert=peercert, cipher=sslobj.cipher(),
                           compression=sslobj.compression(), ssl_object=sslobj)
        _process_outgoing(self)   # a server's session tickets
        self._start_framing()
        if self._app_state == APP_INIT:
            self._app_state = APP_CON_MADE
            try:
                self._app_protocol.connection_made(self._app_transport)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                _fatal_error(self, exc, "Fatal error: protocol.connection_made() call failed.")
                self._wakeup_waiter(exc)
                return
        self._wakeup_waiter()
        # The application data that came with the handshake's last flight
        # waits for a callback queued after the waiter's: start_tls() must
        # return the new transport before data arrives on it (uvloop).
        self._read_scheduled = True
        self._loop.call_soon(self._first_read, context=self._context)

    cdef _start_framing(self):
        # What OpenSSL left in `incoming` after the handshake starts at a
        # record boundary, and is the tail of the last bytes fed (when it
        # needs more input OpenSSL drains the BIO): walk its records from
        # there; a record cut at the end is completed when the rest comes.
        cdef Py_ssize_t left = self._incoming.pending
        if left > self._in_end:
            self._framing = False
            return
        self._scan = self._in_end - left
        self._scan_records()

    def _first_read(self):
        self._read_scheduled = False
        _do_read(self)

    def _resume(self):
        # resume_reading's callback: deliver what waited, or go on closing.
        if self._state == WRAPPED:
            _do_read(self)
            if self._peer_eof and self._state == WRAPPED and not self._app_reading_paused:
                self._finish_at_eof()
        elif self._state == FLUSHING:
            _do_flush(self)
        elif self._state == SHUTDOWN:
            _do_shutdown(self)


include "tls_read.pxi"
include "tls_write.pxi"
include "tls_shutdown.pxi"
include "tls_transport.pxi"


def _make_public_classes():
    # Plain Python classes that are an asyncio.BufferedProtocol and an
    # asyncio.Transport, reported as __class__ (isinstance); never instantiated.
    protocol = type("SSLProtocol", (_aio_protocols.BufferedProtocol,), {
        "__doc__": SSLProtocol.__doc__, "__module__": __name__, "__slots__": ()})
    transport = type("SSLTransport", (_aio_transports.Transport,), {
        "__doc__": SSLTransport.__doc__, "__module__": __name__, "__slots__": ()})
    return protocol, transport


_PROTOCOL_CLASS, _TRANSPORT_CLASS = _make_public_classes()
