# Part of loop.pyx (included there, at module level): fd watches.
#
# ``watches`` is an array indexed by fd; each ``FdWatch`` (loop.pxd) owns its
# reader and writer Handle and records the interest registered with the
# reactor.  Each registration gets a new generation ``token``, which the
# reactor hands back with every event: an event carrying an old token was
# queued by the kernel before the fd was unregistered and registered again, and
# ``_poll`` drops it.  ``BaseLoop._add_watcher``/``_remove_watcher`` (the cdef
# API transports use) and ``add_reader``... build on the functions below.

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
    if not loop._transports:
        return 0
    transport = loop._transports.get(_fileobj_to_fd(fileobj))
    if transport is not None and not transport.is_closing():
        raise RuntimeError(
            f"File descriptor {fileobj!r} is used by transport {transport!r}")
    return 0


cdef object _remove_user_watcher(BaseLoop loop, object fd, bint writer):
    # remove_reader/remove_writer: as _remove_watcher, but refusing an fd a
    # live transport owns, and False for an fd no C int can hold.
    if loop._closed:
        return False
    try:
        _fileobj_to_fd(fd)
    except OverflowError:
        return False              # no such fd can be watched (asyncio agrees)
    _ensure_fd_no_transport(loop, fd)
    return loop._remove_watcher(fd, writer)
