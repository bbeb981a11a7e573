# The end of a connection (part of tls_protocol.pyx): close() flushes, sends close_notify and
# waits for the peer's under the shutdown timer; abort() and errors drop it at once.  Module-
# level functions of the protocol, as in tls_write.pxi.


cdef _start_shutdown(SSLProtocol proto):
    if proto._state == FLUSHING or proto._state == SHUTDOWN or proto._state == UNWRAPPED:
        return
    if proto._app_transport is not None:
        proto._app_transport._closed = True
    if proto._state == DO_HANDSHAKE:
        _abort(proto, None)
        return
    proto._set_state(FLUSHING)
    proto._arm_shutdown_timer()
    _do_flush(proto)


cdef _do_flush(SSLProtocol proto):
    """FLUSHING: send what the application wrote; what arrives is
    dropped.  close_notify goes out once nothing is left."""
    try:
        _read_into_void(proto)
        _do_write(proto)
        _process_outgoing(proto)
        _control_ssl_reading(proto)
    except Exception as ex:
        _on_shutdown_complete(proto, ex)
        return
    if proto._state == FLUSHING and not _get_write_buffer_size(proto):
        proto._set_state(SHUTDOWN)
        _do_shutdown(proto)


cdef _do_shutdown(SSLProtocol proto):
    """SHUTDOWN: send close_notify, wait for the peer's -- unless the peer
    closed TCP already: then ours goes out and that is the end (asyncio)."""
    try:
        _read_into_void(proto)
        if proto._peer_eof:
            try:
                proto._ssl_shutdown()
            except _SSLError:
                pass
            _process_outgoing(proto)
            _call_eof_received(proto)
            _on_shutdown_complete(proto, None)
            return
        try:
            proto._ssl_shutdown()
        except _SSL_AGAIN:
            _process_outgoing(proto)
        else:
            _process_outgoing(proto)
            if not _get_write_buffer_size(proto):
                _on_shutdown_complete(proto, None)
    except Exception as ex:
        _on_shutdown_complete(proto, ex)


cdef _read_into_void(SSLProtocol proto):
    """Read and drop the application data the peer still sends (it may,
    after our close_notify), so that SSL_shutdown meets none; the peer's
    close_notify reaches eof_received, paused reading or not."""
    cdef bint close_notify = False
    try:
        while True:
            if not proto._ssl_read(DISCARD_CHUNK):
                close_notify = True
                break
    except _SSL_AGAIN:
        pass
    except _SSLZeroReturnError:
        close_notify = True
    if close_notify:
        _call_eof_received(proto)


cdef _on_shutdown_complete(SSLProtocol proto, shutdown_exc):
    if proto._shutdown_timeout_handle is not None:
        proto._shutdown_timeout_handle.cancel()
        proto._shutdown_timeout_handle = None
    if shutdown_exc is not None:
        _fatal_error(proto, shutdown_exc, "Error occurred during shutdown")
    elif proto._transport is not None:
        # At once, as asyncio: the stream schedules connection_lost, which
        # schedules the application's.  A later close would keep the
        # connection (and its SSLContext) alive for iterations after the
        # application let go of it; the stream copes with a close() from
        # inside its own resume_writing call.
        proto._transport.close()


cdef _abort(SSLProtocol proto, exc):
    proto._state = UNWRAPPED
    if proto._transport is not None:
        proto._transport._force_close(exc)


cdef _fatal_error(SSLProtocol proto, exc, message="Fatal error on transport"):
    if proto._app_transport is not None:
        proto._app_transport._closed = True
    transport = proto._transport
    if transport is not None:
        transport._force_close(exc)
    if isinstance(exc, OSError):
        if proto._loop.get_debug():
            logger.debug("%r: %s", proto, message, exc_info=True)
    elif not isinstance(exc, _CancelledError):
        proto._loop.call_exception_handler({
            "message": message,
            "exception": exc,
            "transport": transport,
            "protocol": proto,
        })
