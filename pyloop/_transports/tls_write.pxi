# Application data out (part of tls_protocol.pyx): encryption into `outgoing`, the backlog of
# what OpenSSL could not take yet, one write of the stream below per flush, and the flow
# control of both directions.  Module-level functions of the protocol (a Cython class body
# cannot be split across files); called directly, with no method lookup.


cdef _write_appdata(SSLProtocol proto, data):
    if proto._state != WRAPPED and proto._state != DO_HANDSHAKE:
        if proto._conn_lost >= WRITES_AFTER_LOSS_BEFORE_WARNING:
            logger.warning("SSL connection is closed")
        proto._conn_lost += 1
        return
    try:
        if proto._state == DO_HANDSHAKE or proto._write_backlog:
            _append_backlog(proto, data, 0)
            if proto._state == WRAPPED:
                _do_write(proto)
        else:
            _encrypt(proto, data)
        if proto._defer_flush:
            proto._flush_pending = True
            return
        _process_outgoing(proto)
        _control_app_writing(proto)
    except Exception as ex:
        _fatal_error(proto, ex, "Fatal error on SSL protocol")


cdef _encrypt(SSLProtocol proto, data):
    # OpenSSL takes all of it (the memory BIO has no limit) unless it
    # must read first (a renegotiation): then the rest waits.
    cdef Py_ssize_t n, size
    try:
        n = proto._ssl_write(data)
    except _SSL_AGAIN:
        n = 0
    size = len(data) if type(data) is not memoryview else data.nbytes
    if n < size:
        _append_backlog(proto, data, n)


cdef _append_backlog(SSLProtocol proto, data, Py_ssize_t start):
    # A copy: the caller may reuse a bytearray once write() returned.
    if type(data) is not bytes or start:
        data = bytes(memoryview(data).cast("B")[start:])
    proto._write_backlog.append(data)
    proto._write_backlog_size += len(data)


cdef _do_write(SSLProtocol proto):
    """Give OpenSSL what waited in the backlog."""
    cdef Py_ssize_t n, size
    try:
        while proto._write_backlog:
            data = proto._write_backlog[0]
            n = proto._ssl_write(data)
            size = len(data)
            if n < size:
                proto._write_backlog[0] = data[n:]
                proto._write_backlog_size -= n
                break
            del proto._write_backlog[0]
            proto._write_backlog_size -= size
    except _SSL_AGAIN:
        pass


cdef _flush_writes(SSLProtocol proto):
    # Send what writes made during a delivery (or writelines) left in
    # `outgoing`, in one write of the stream below.
    if not proto._flush_pending or proto._defer_flush:
        return
    proto._flush_pending = False
    if proto._state == UNWRAPPED:
        return   # aborted meanwhile: nothing more goes out
    _process_outgoing(proto)
    if proto._state == WRAPPED:
        _control_app_writing(proto)


cdef _process_outgoing(SSLProtocol proto):
    if proto._ssl_writing_paused or proto._transport_write is None:
        return
    data = proto._outgoing_read()
    if data:
        proto._transport_write(data)


cdef Py_ssize_t _get_write_buffer_size(SSLProtocol proto):
    return <Py_ssize_t>proto._outgoing.pending + proto._write_backlog_size


cdef _control_app_writing(SSLProtocol proto):
    cdef Py_ssize_t size = proto._write_backlog_size
    if proto._ssl_writing_paused:
        size += <Py_ssize_t>proto._outgoing.pending
    # (Otherwise _process_outgoing just emptied `outgoing`.)
    if size >= proto._outgoing_high and not proto._app_writing_paused:
        proto._app_writing_paused = True
        _call_flow(proto, "pause_writing")
    elif size <= proto._outgoing_low and proto._app_writing_paused:
        proto._app_writing_paused = False
        _call_flow(proto, "resume_writing")


cdef _call_flow(SSLProtocol proto, str name):
    cdef int entered = pl_tls_enter(proto._context)
    try:
        getattr(proto._app_protocol, name)()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        proto._loop.call_exception_handler({
            "message": f"protocol.{name}() failed",
            "exception": exc,
            "transport": proto._app_transport,
            "protocol": proto,
        })
    finally:
        if entered:
            PyContext_Exit(proto._context)


cdef _control_ssl_reading(SSLProtocol proto):
    cdef Py_ssize_t size
    if proto._transport is None:
        return
    size = proto._read_buffer_size()
    if size >= proto._incoming_high and not proto._ssl_reading_paused:
        proto._ssl_reading_paused = True
        proto._transport.pause_reading()
    elif size <= proto._incoming_low and proto._ssl_reading_paused:
        proto._ssl_reading_paused = False
        proto._transport.resume_reading()
