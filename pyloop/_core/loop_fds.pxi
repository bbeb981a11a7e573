# Part of loop.pyx (included there, at module level): fd watches.
#
# ``watches`` is an array indexed by fd; each ``FdWatch`` (loop.pxd) owns its
# reader and writer Handle and records the interest registered with the
# reactor.  Each registration gets a new generation ``token``, which the
# reactor hands back with every event: an event carrying an old token was
# queued by the kernel before the fd was unregistered and registered again, and
# ``_poll`` drops it.  ``BaseLoop._add_watcher``/``_remove_watcher`` (the cdef
# API transports use) and ``add_reader``... build on the functions below.
# The ``sock_*`` operations put their own handles into the same slots
# (loop_sock.pxi).
#
# A watcher registered with a file object rather than an fd number also
# records the object (``reader_obj``/``writer_obj``): once a socket is
# closed its ``fileno()`` is -1, and ``remove_reader(sock)`` then finds the
# watch by the object, as asyncio's selector finds its key (anyio removes the
# reader of a socket it has just closed).

cdef int _fileobj_to_fd(object fileobj) except -1:
    """Turn an fd or an object with fileno() into an fd, as selectors does."""
    cdef long fd
    if isinstance(fileobj, int):
        fd = fileobj
    else:
        try:
            fd = int(fileobj.fileno())
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f"Invalid file object: {fileobj!r}") from None
    if fd < 0:
        raise ValueError(f"Invalid file descriptor: {fd}")
    if fd > 0x7fffffff:
        # What selectors (and so asyncio) raise for an fd no C int can hold.
        raise OverflowError(f"file descriptor {fd} is out of range")
    return <int>fd


cdef FdWatch *_watch_for(BaseLoop loop, int fd) except NULL:
    cdef int new_len
    cdef FdWatch *grown
    if fd >= loop.watches_len:
        new_len = loop.watches_len * 2
        if new_len < 64:
            new_len = 64
        if new_len <= fd:
            new_len = fd + 1
        grown = <FdWatch *>realloc(loop.watches, new_len * sizeof(FdWatch))
        if grown == NULL:
            raise MemoryError()
        memset(&grown[loop.watches_len], 0,
               (new_len - loop.watches_len) * sizeof(FdWatch))
        loop.watches = grown
        loop.watches_len = new_len
    return &loop.watches[fd]


cdef int _set_interest(BaseLoop loop, int fd, FdWatch *w, uint32_t events,
                       bint strict, bint force=False) except -1:
    """Tell the reactor what we now want for fd.  With strict false,
    an fd the kernel no longer knows (closed behind our back) counts as
    unwatched instead of raising.  With force, tell the kernel even if
    our records say it already knows: the fd may have been closed and
    its number reused since, which the kernel forgot and we cannot see."""
    cdef int rc
    if not (events & (PL_EV_READ | PL_EV_WRITE)):
        events = 0          # PL_EV_EDGE alone asks for nothing
    if events == w.events and not force:
        return 0
    if loop._forked:
        # The kernel object belongs to the parent too: forget locally,
        # never epoll_ctl(DEL) the parent's registrations away.
        w.events = events
        return 0
    if events == 0:
        rc = pl_reactor_remove(loop.reactor, fd)
        w.events = 0
        if rc < 0 and rc != -ENOENT and rc != -EBADF and strict:
            raise _oserror(-rc)
        return 0
    if w.events == 0:
        loop.next_token += 1
        w.token = loop.next_token
        rc = pl_reactor_add(loop.reactor, fd, events, w.token)
    else:
        rc = pl_reactor_modify(loop.reactor, fd, events, w.token)
    if rc < 0:
        if not strict and (rc == -EBADF or rc == -ENOENT):
            w.events = 0
            return 0
        raise _oserror(-rc)
    w.events = events
    return 0


cdef int _ensure_fd_no_transport(BaseLoop loop, object fileobj) except -1:
    # A user callback stealing a transport's fd would silently break the
    # transport: refuse, as asyncio does.
    transports = loop._transports
    if type(transports) is _WeakValueDictionary:
        # Its dict, because len() of the mapping is a Python-level call and
        # this runs for every sock_* operation that has to wait.
        if not transports.data:
            return 0
    elif not transports:
        return 0
    transport = transports.get(_fileobj_to_fd(fileobj))
    if transport is not None and not transport.is_closing():
        raise RuntimeError(
            f"File descriptor {fileobj!r} is used by transport {transport!r}")
    return 0


cdef inline PyObject *_swap_watch_obj(FdWatch *w, bint writer, PyObject *obj) noexcept:
    """Record the file object a watcher was registered with (NULL: an fd
    number); return the previous one, whose reference the caller drops
    once nothing touches ``w`` any more (dropping it can run Python code)."""
    cdef PyObject *old
    if obj != NULL:
        Py_INCREF(<object>obj)
    if writer:
        old = w.writer_obj
        w.writer_obj = obj
    else:
        old = w.reader_obj
        w.reader_obj = obj
    return old


cdef int _registered_fd(BaseLoop loop, object fileobj) except -1:
    """The fd of ``fileobj``; for an object whose fd is gone (a socket closed
    while watched), the fd whose watch was registered with that very object.
    ValueError if there is none, as from asyncio's selector."""
    cdef int fd
    cdef FdWatch *w
    try:
        return _fileobj_to_fd(fileobj)
    except ValueError:
        if isinstance(fileobj, int) or not loop.resources_ready:
            raise
        for fd in range(loop.watches_len):
            w = &loop.watches[fd]
            if w.reader_obj == <PyObject *>fileobj or w.writer_obj == <PyObject *>fileobj:
                return fd
        raise


cdef object _remove_user_watcher(BaseLoop loop, object fileobj, bint writer):
    # remove_reader/remove_writer: as _remove_watcher, but refusing an fd a
    # live transport owns, False for an fd no C int can hold, and finding a
    # closed socket's watch by the object.
    cdef int fd
    if loop._closed:
        return False
    try:
        fd = _registered_fd(loop, fileobj)
    except OverflowError:
        return False              # no such fd can be watched (asyncio agrees)
    _ensure_fd_no_transport(loop, fd)
    if not writer and _sock_parked_reader(loop, fd):
        return False              # a finished sock_* operation's, not a reader
    return loop._remove_watcher(fd, writer)
