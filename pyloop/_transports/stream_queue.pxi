# Part of stream.pyx (included there, at module level): the write queue of
# SocketTransport -- what write() and writelines() leave over, and its flush.
#
# The queue (``_buffer``) is a list of chunks, oldest first, or None when
# nothing waits.  A chunk is a ``bytes`` or a ``memoryview`` that the queue
# made itself over the memory of a ``bytes``: either way nobody can change
# its content, so it is queued without a copy; ``_buffer_offset`` counts the
# bytes of the first chunk already sent.  Anything mutable is copied into a
# new ``bytes`` when queued (see the module docstring for why).
# ``_buffer_size`` is the count of bytes queued and not yet sent, exact at
# every moment: the flow-control marks and get_write_buffer_size() read it.

cdef extern from *:
    """
    /* Whether a memoryview is C-contiguous and its memory belongs to a
       bytes: its content cannot change while it waits in the write queue. */
    static int pl_frozen_view(PyObject *mv)
    {
        Py_buffer *view = PyMemoryView_GET_BUFFER(mv);
        return view->obj != NULL && PyBytes_CheckExact(view->obj) && PyBuffer_IsContiguous(view, 'C');
    }
    """
    bint pl_frozen_view(object mv)


cdef inline char *_chunk_span(object chunk, Py_ssize_t *size):
    """Start and size of a queued chunk (a bytes or the queue's own view)."""
    cdef Py_buffer *view
    if PyBytes_Check(chunk):
        size[0] = PyBytes_GET_SIZE(chunk)
        return PyBytes_AS_STRING(chunk)
    view = PyMemoryView_GET_BUFFER(chunk)
    size[0] = view.len
    return <char *>view.buf


cdef int _queue(SocketTransport tr, object data, Py_ssize_t start) except -1:
    """Queue ``data`` from byte ``start`` on (start > 0 only when the queue is
    empty: the rest of a write that went out in part)."""
    cdef Py_buffer view
    cdef Py_ssize_t size
    if PyBytes_Check(data):
        chunk = data
        size = PyBytes_GET_SIZE(data)
    elif PyMemoryView_Check(data) and pl_frozen_view(data):
        # Our own view of the same memory: the caller may release theirs.
        chunk = PyMemoryView_FromObject(data)
        size = PyMemoryView_GET_BUFFER(chunk).len
    elif start == 0:
        # Copied: the caller may change a bytearray once write() returned.
        # (A non-contiguous view is copied in C order.)
        chunk = PyBytes_FromObject(data)
        size = PyBytes_GET_SIZE(chunk)
    else:
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            chunk = PyBytes_FromStringAndSize(<char *>view.buf + start, view.len - start)
        finally:
            PyBuffer_Release(&view)
        size = PyBytes_GET_SIZE(chunk)
        start = 0
    if size <= start:
        return 0
    if tr._buffer is None:
        tr._buffer = [chunk]
        tr._buffer_offset = start
    else:
        tr._buffer.append(chunk)
    tr._buffer_size += size - start
    tr._maybe_pause_protocol()
    return 0


cdef int _consume(SocketTransport tr, Py_ssize_t n) except -1:
    """Drop the ``n`` bytes the kernel took from the front of the queue."""
    cdef Py_ssize_t left, size
    cdef Py_ssize_t done = 0
    cdef Py_ssize_t offset = tr._buffer_offset
    cdef list queue = tr._buffer
    tr._buffer_size -= n
    while n > 0:
        _chunk_span(queue[done], &size)
        left = size - offset
        if n >= left:
            n -= left
            offset = 0
            done += 1
        else:
            offset += n
            n = 0
    tr._buffer_offset = offset
    if done == len(queue):
        tr._buffer = None
    elif done:
        del queue[:done]
    return 0


cdef int _drop_queue(SocketTransport tr) except -1:
    tr._buffer = None
    tr._buffer_size = 0
    tr._buffer_offset = 0
    return 0


cdef _flush(SocketTransport tr):
    """The socket is writable: send what is queued, WRITEV_MAX_CHUNKS chunks
    per writev, for as long as the kernel takes whole batches."""
    cdef iovec iov[WRITEV_MAX_CHUNKS]
    cdef int count
    cdef ssize_t n
    cdef int err
    cdef Py_ssize_t offset, size, batch
    if tr._conn_lost:
        return
    while tr._buffer:
        count = 0
        batch = 0
        offset = tr._buffer_offset
        for chunk in tr._buffer:
            iov[count].iov_base = _chunk_span(chunk, &size) + offset
            iov[count].iov_len = <size_t>(size - offset)
            batch += size - offset
            offset = 0
            count += 1
            if count == WRITEV_MAX_CHUNKS:
                break
        n = writev(tr._fd, iov, count)
        err = errno
        if n < 0:
            if err == EAGAIN or err == EWOULDBLOCK or err == EINTR:
                break       # (after a whole batch went: resume below)
            exc = _errno_error(err)
            tr._stop_writing()
            _drop_queue(tr)
            tr._fatal_error(exc, "Fatal write error on socket transport")
            if tr._empty_waiter is not None:
                tr._empty_waiter.set_exception(exc)
            return
        _consume(tr, n)
        if n < batch:
            break       # the socket is full: wait for the next event
    tr._maybe_resume_protocol()
    if not tr._buffer:
        tr._stop_writing()
        if tr._empty_waiter is not None:
            tr._empty_waiter.set_result(None)
        if tr._closing_started:
            # Unless resume_writing() just called close() or abort(): that
            # counted the loss and scheduled connection_lost itself.
            if not tr._conn_lost:
                tr._call_connection_lost(None)
        elif tr._eof:
            tr._sock.shutdown(socket.SHUT_WR)


cdef bint _plain_buffers(list items) except -1:
    """Whether every item is what write() takes -- a bytes, a bytearray or a
    usable contiguous memoryview -- so that writelines may send them as they
    are; anything else goes through b"".join, which raises what it raises."""
    for item in items:
        if isinstance(item, (bytes, bytearray)):
            continue
        if not PyMemoryView_Check(item):
            return False
        try:
            if not item.c_contiguous:
                return False
        except ValueError:      # released
            return False
    return True


cdef _writelines(SocketTransport tr, object list_of_data):
    """writelines(): the buffers as they are, in one writev when nothing is
    queued; what the kernel does not take is queued as by write()."""
    cdef iovec iov[WRITEV_MAX_CHUNKS]
    cdef Py_buffer views[WRITEV_MAX_CHUNKS]
    cdef Py_ssize_t count, i, held = 0, total = 0, size
    cdef ssize_t n = 0
    cdef int err = 0
    cdef bint queued = False
    items = list_of_data if type(list_of_data) is list else list(list_of_data)
    count = len(items)
    if count == 1 and _plain_buffers(items):
        tr.write(items[0])
        return
    if count < 2 or count > WRITEV_MAX_CHUNKS or not _plain_buffers(items):
        # Other buffer types (array.array, mmap...) are joined, as asyncio
        # does; so are long lists and the empty one.
        tr.write(b"".join(items))
        return
    tr._check_open()
    try:
        for i in range(count):
            item = items[i]
            if PyBytes_Check(item):
                iov[i].iov_base = PyBytes_AS_STRING(item)
                iov[i].iov_len = <size_t>PyBytes_GET_SIZE(item)
            else:
                PyObject_GetBuffer(item, &views[held], PyBUF_SIMPLE)
                iov[i].iov_base = views[held].buf
                iov[i].iov_len = <size_t>views[held].len
                held += 1
            total += <Py_ssize_t>iov[i].iov_len
        if total == 0 or not tr._may_write():
            return
        if tr._buffer:
            queued = True       # behind what waits already
        else:
            n = writev(tr._fd, iov, <int>count)
            err = errno
    finally:
        for i in range(held):
            PyBuffer_Release(&views[i])
    if queued:
        for item in items:
            _queue(tr, item, 0)
        return
    if n < 0:
        if err != EAGAIN and err != EWOULDBLOCK and err != EINTR:
            tr._fatal_error(_errno_error(err), "Fatal write error on socket transport")
            return
        n = 0
    if n == total:
        return
    for i in range(count):
        size = <Py_ssize_t>iov[i].iov_len
        if n >= size:       # sent whole (or empty)
            n -= size
            continue
        _queue(tr, items[i], n)     # n > 0 only for the first one queued
        n = 0
    tr._start_writing()
