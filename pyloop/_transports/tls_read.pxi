# Application data in (part of tls_protocol.pyx): decryption of the records fed to `incoming`
# straight into the bytes handed to data_received, or into a buffered protocol's buffer, and the
# peer's close_notify.  Module-level functions of the protocol, as in tls_write.pxi.


cdef _do_read(SSLProtocol proto):
    if proto._state != WRAPPED:
        return
    try:
        if not proto._app_reading_paused:
            proto._defer_flush += 1
            try:
                if proto._app_buffered:
                    _read_buffered(proto)
                else:
                    _read_copied(proto)
            finally:
                proto._defer_flush -= 1
            if proto._write_backlog:
                _do_write(proto)
                proto._flush_pending = True
            _flush_writes(proto)
        _control_ssl_reading(proto)
    except Exception as ex:
        _fatal_error(proto, ex, "Fatal error on SSL protocol")


cdef Py_ssize_t _plain_available(SSLProtocol proto):
    # An upper bound of the plaintext ready: ciphertext is never shorter
    # than the plaintext it carries (no TLS compression), plus what
    # OpenSSL decrypted and did not hand out yet.
    cdef Py_ssize_t n = proto._incoming.pending
    if proto._plain_pending:
        n += <Py_ssize_t>proto._ssl_pending()
    return n


cdef Py_ssize_t _decrypt_into(SSLProtocol proto, char *buf, Py_ssize_t size, bint *eof) except -1:
    """Decrypt up to ``size`` bytes to ``buf``; stops when nothing more
    is ready.  ``eof``: the peer's close_notify was read."""
    cdef Py_ssize_t total = 0, n, want
    cdef _Span out = proto._out
    try:
        while total < size:
            want = size - total
            out.ptr = buf + total
            out.len = want
            n = proto._ssl_read(want, out)
            if n == 0:
                eof[0] = True
                break
            total += n
            proto._plain_pending = n == want
            # A short read emptied its record; more needs whole records.
            if n < want and proto._incoming.pending == 0:
                break
    except _SSL_AGAIN:
        proto._plain_pending = False
    finally:
        out.ptr = NULL
        out.len = 0
    return total


cdef _read_copied(SSLProtocol proto):
    cdef Py_ssize_t avail, total
    cdef PyObject *raw
    cdef bint eof = False
    while True:
        avail = _plain_available(proto)
        if avail <= 0:
            return
        if avail > BUFFER_SIZE:
            avail = BUFFER_SIZE
        raw = pl_tls_new_bytes(avail)
        if raw == NULL:
            raise MemoryError()
        try:
            total = _decrypt_into(proto, PyBytes_AS_STRING(<object>raw), avail, &eof)
        except BaseException:
            Py_DECREF(raw)
            raise
        data = pl_tls_finish_bytes(raw, total)
        if total:
            proto._app_protocol.data_received(data)
        if eof:
            _on_close_notify(proto)
            return
        if total < avail or proto._app_reading_paused or proto._state != WRAPPED:
            return


cdef _read_buffered(SSLProtocol proto):
    cdef Py_ssize_t avail, total
    cdef Py_buffer view
    cdef bint eof = False
    while True:
        avail = _plain_available(proto)
        if avail <= 0:
            return
        buf = proto._app_protocol.get_buffer(avail)
        PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE)
        try:
            if view.len == 0:
                raise RuntimeError("get_buffer() returned an empty buffer")
            total = _decrypt_into(proto, <char *>view.buf, view.len, &eof)
        finally:
            PyBuffer_Release(&view)
        if total:
            proto._app_protocol.buffer_updated(total)
        if eof:
            _on_close_notify(proto)
            return
        if total < view.len or proto._app_reading_paused or proto._state != WRAPPED:
            return


cdef _on_close_notify(SSLProtocol proto):
    # The peer closed its side cleanly: tell the application, then close ours.
    _call_eof_received(proto)
    _start_shutdown(proto)


cdef _call_eof_received(SSLProtocol proto):
    # In the protocol's context: close() from any task may get here (the
    # peer's close_notify found while flushing).
    cdef int entered
    if proto._app_state != APP_CON_MADE:
        return
    proto._app_state = APP_EOF
    entered = pl_tls_enter(proto._context)
    try:
        keep_open = proto._app_protocol.eof_received()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as ex:
        _fatal_error(proto, ex, "Error calling eof_received()")
    else:
        if keep_open:
            logger.warning("returning true from eof_received() "
                           "has no effect when using ssl")
    finally:
        if entered:
            PyContext_Exit(proto._context)
