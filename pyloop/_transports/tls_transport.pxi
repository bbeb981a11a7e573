# The application's side of a TLS connection (part of tls_protocol.pyx).
#
# An SSLTransport is a thin front: every method forwards to its SSLProtocol,
# which owns the state.  (Both are named as asyncio's are: code, and asyncio's
# own tests, look for "ssl" in the transport's class name.)  It is an
# asyncio.Transport by isinstance (the same __class__ device as the socket
# transport) and is itself start_tls compatible, so TLS can run inside TLS.
# What asyncio's SSL transport exposes to its own tests (_ssl_protocol,
# _test__append_write_backlog, _protocol_paused) is here too, so those tests
# run unchanged.


cdef class SSLTransport:
    """The transport of a TLS connection, as the application sees it.

    ``write`` encrypts and sends; ``close`` flushes, sends close_notify and
    waits for the peer's (bounded by ``ssl_shutdown_timeout``); ``abort``
    drops the connection.  ``write_eof`` is not supported (TLS has no
    half-close that asyncio exposes).  ``get_extra_info`` adds
    ``ssl_object``, ``peercert``, ``cipher``, ``compression`` and
    ``sslcontext`` to the socket transport's keys.
    """

    cdef object _loop
    cdef readonly SSLProtocol _ssl_protocol
    cdef bint _closed
    cdef object __weakref__
    cdef dict __dict__      # instance attributes, as SocketTransport's

    _start_tls_compatible = True
    _sendfile_compatible = _aio_constants._SendfileMode.FALLBACK

    @property
    def __class__(self):
        return _TRANSPORT_CLASS

    def __init__(self, *args, **kwargs):
        raise TypeError("SSLTransport objects are made by the loop (ssl=, start_tls)")

    @property
    def _context(self):
        # The context the protocol's callbacks run in (start_tls over this
        # transport runs the new protocol's there too).
        return self._ssl_protocol._context

    def __repr__(self):
        state = "closed" if self._closed else "open"
        return f"<SSLTransport {state} {self._ssl_protocol!r}>"

    def __del__(self):
        if not self._closed:
            self._closed = True
            warnings.warn(f"unclosed transport {self!r}", ResourceWarning, source=self)

    # ---- BaseTransport -----------------------------------------------------

    def get_extra_info(self, name, default=None):
        """Return transport information: the TLS keys (``ssl_object``,
        ``peercert``, ``cipher``, ``compression``, ``sslcontext``), else the
        socket transport's (``socket``, ``peername``, ``sockname``...)."""
        return self._ssl_protocol._get_extra_info(name, default)

    def set_protocol(self, protocol):
        """Switch to a new application protocol."""
        self._ssl_protocol._set_app_protocol(protocol)

    def get_protocol(self):
        """Return the application protocol."""
        return self._ssl_protocol._app_protocol

    def is_closing(self):
        """Return True once ``close()`` or ``abort()`` was called (or the
        connection was lost)."""
        return self._closed

    def close(self):
        """Flush what was written, send close_notify and close;
        ``connection_lost(None)`` follows.  No more data is received."""
        if not self._closed:
            self._closed = True
            _start_shutdown(self._ssl_protocol)

    def abort(self):
        """Close at once, dropping what was not sent yet."""
        self._closed = True
        _abort(self._ssl_protocol, None)

    def _force_close(self, exc):
        # asyncio's private name (a TLS connection inside this one calls it).
        self._closed = True
        _abort(self._ssl_protocol, exc)

    # ---- ReadTransport --------------------------------------------------------

    def is_reading(self):
        """Return True unless reading is paused."""
        return not self._ssl_protocol._app_reading_paused

    def pause_reading(self):
        """Stop delivering data until ``resume_reading()``."""
        self._ssl_protocol._app_reading_paused = True

    def resume_reading(self):
        """Deliver data again after ``pause_reading()`` (from a callback of
        the loop, in the protocol's context)."""
        cdef SSLProtocol proto = self._ssl_protocol
        if proto._app_reading_paused:
            proto._app_reading_paused = False
            self._loop.call_soon(proto._resume, context=proto._context)

    def set_read_buffer_limits(self, high=None, low=None):
        """Water marks of the ciphertext kept while the application does not
        read: above ``high`` the socket is not read (default 256 KiB)."""
        cdef SSLProtocol proto = self._ssl_protocol
        proto._incoming_high, proto._incoming_low = _marks(high, low, DEFAULT_READ_HIGH)
        _control_ssl_reading(proto)

    def get_read_buffer_limits(self):
        """Return ``(low, high)`` of the read buffer."""
        return (self._ssl_protocol._incoming_low, self._ssl_protocol._incoming_high)

    def get_read_buffer_size(self):
        """Return the ciphertext received and not decrypted yet."""
        return self._ssl_protocol._read_buffer_size()

    # ---- WriteTransport ----------------------------------------------------------

    def write(self, data):
        """Encrypt ``data`` (bytes-like) and send it; never blocks."""
        if type(data) is bytes:
            if not PyBytes_GET_SIZE(data):
                return
        elif isinstance(data, (bytearray, memoryview)):
            if not data:
                return
        else:
            raise TypeError(f"data: expecting a bytes-like instance, "
                            f"got {type(data).__name__}")
        _write_appdata(self._ssl_protocol, data)

    def writelines(self, list_of_data):
        """Write each bytes-like object of an iterable; sent together."""
        cdef SSLProtocol proto = self._ssl_protocol
        proto._defer_flush += 1
        try:
            for data in list_of_data:
                self.write(data)
        finally:
            proto._defer_flush -= 1
        _flush_writes(proto)

    def write_eof(self):
        """Not supported on TLS (as asyncio): raises NotImplementedError."""
        raise NotImplementedError

    def can_write_eof(self):
        """Return False: see ``write_eof``."""
        return False

    def set_write_buffer_limits(self, high=None, low=None):
        """Set the water marks of the write buffer (default 512 KiB, low a
        quarter of high)."""
        cdef SSLProtocol proto = self._ssl_protocol
        proto._outgoing_high, proto._outgoing_low = _marks(high, low, DEFAULT_WRITE_HIGH)
        _control_app_writing(proto)

    def get_write_buffer_limits(self):
        """Return ``(low, high)`` of the write buffer."""
        return (self._ssl_protocol._outgoing_low, self._ssl_protocol._outgoing_high)

    def get_write_buffer_size(self):
        """Return the bytes written and not handed to the socket yet."""
        return _get_write_buffer_size(self._ssl_protocol)

    @property
    def _protocol_paused(self):
        # loop.sendfile's fallback reads it, as on asyncio's SSL transport.
        return self._ssl_protocol._app_writing_paused

    def _test__append_write_backlog(self, data):
        # asyncio's test hook: queue data as if OpenSSL had not taken it.
        self._ssl_protocol._write_backlog.append(data)
        self._ssl_protocol._write_backlog_size += len(data)
