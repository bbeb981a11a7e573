# Part of loop.pyx (included there, at module level, before loop_sock.pxi):
# the system calls of the ``sock_*`` operations on a plain ``socket.socket``.
#
# Made here on the fd rather than through the socket's methods, so that
# "would block" is an errno and not a BlockingIOError raised and caught, and
# always with MSG_DONTWAIT: a socket left blocking cannot block the loop.
# Each returns ``_NOT_YET`` (or -1) when the call would block, retries on
# EINTR after running the signal handlers (an exception there propagates, as
# from the socket's own methods), and raises the OSError the socket method
# would raise (``OSError(errno, strerror)``, which picks the subclass).
#
# Receiving, and what it costs: ``_recv_now`` reads into one module-wide
# 256 KiB buffer and copies what came into the ``bytes`` it returns -- no
# allocation when nothing is there (the first try of a receive usually finds
# nothing), no 256 KiB allocation to shrink when something is.
# ``_recv_direct`` reads straight into the ``bytes`` it returns, sized from
# the socket's previous receive and shrunk to what came, with the module
# buffer as overflow: loop_sock.pxi uses it when the loop woke the receive
# (data is there) and the fd's receives are 4 KiB and more, where the copy
# costs more than the shrink, and for the first try of a receive when they
# are 32 KiB and more (a busy peer's large messages are there before the
# loop is asked to wait; nothing there, the block is freed: cheaper than
# asking the size with FIONREAD first, which would still need the recv to
# tell "would block" from an end of file, and the wait is edge-triggered).
# What "the fd's receives" were is ``FdWatch.recv_hint``, the size of the
# last one, kept in the watch array by ``_set_recv_hint``: a guess only,
# harmless when the number is reused by another socket.  The module buffer is used only with
# the GIL held and with no Python code between the call that fills it and
# the copy that empties it, so it serves every loop.
#
# At the end: the socket's io references (``_io_refs``, and ``_closed``), read
# and written in the object's slots rather than as attributes, see there.

from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_WRITABLE
from libc.errno cimport errno, EAGAIN
from libc.string cimport memcpy

from socket import socket as _sock_io_socket_type

cdef extern from "sys/uio.h" nogil:
    struct iovec:
        void *iov_base
        size_t iov_len

cdef extern from "sys/socket.h" nogil:
    ctypedef unsigned int socklen_t
    struct msghdr:
        void *msg_name
        socklen_t msg_namelen
        iovec *msg_iov
        size_t msg_iovlen
        void *msg_control
        size_t msg_controllen
        int msg_flags
    ssize_t recv(int fd, void *buf, size_t n, int flags)
    ssize_t recvmsg(int fd, msghdr *msg, int flags)
    ssize_t send(int fd, const void *buf, size_t n, int flags)
    int getsockopt(int fd, int level, int optname, void *optval, socklen_t *optlen)
    int SOL_SOCKET
    int SO_ERROR
    int MSG_DONTWAIT

cdef extern from "errno.h":
    int EWOULDBLOCK

cdef extern from *:
    """
    #ifndef MSG_NOSIGNAL
    #define MSG_NOSIGNAL 0   /* BSD/macOS: SO_NOSIGPIPE or the ignored SIGPIPE */
    #endif
    """
    int MSG_NOSIGNAL

cdef extern from "Python.h":
    int _PyBytes_Resize(PyObject **bytes, Py_ssize_t newsize) except -1
    char *PyBytes_AS_STRING(PyObject *bytes)

cdef enum:
    SOCK_BUFFER_SIZE = 256 * 1024
    # A receive on a socket whose previous one brought at least this much
    # goes straight into the bytes it returns (_recv_direct): copying from
    # the module's buffer costs more than allocating a little too much.
    DIRECT_RECV_MIN = 4 * 1024
    # A first try on a socket whose previous receive brought at least this
    # much goes straight into a bytes too (below, a woken receive is likelier
    # to find data than a first try, which usually finds nothing).
    DIRECT_FIRST_TRY_MIN = 32 * 1024

# The module buffer (see above).
cdef char _sock_buffer[SOCK_BUFFER_SIZE]

# What an attempt returns while the operation would block (or, sock_sendall,
# has more to send).
cdef object _NOT_YET = object()


cdef object _recv_now(int fd, Py_ssize_t n):
    """recv(2) of up to n (<= SOCK_BUFFER_SIZE) bytes: the bytes, or _NOT_YET."""
    cdef ssize_t got
    cdef int err
    while True:
        got = recv(fd, _sock_buffer, <size_t>n, MSG_DONTWAIT)
        if got >= 0:
            return PyBytes_FromStringAndSize(_sock_buffer, got)
        err = errno
        if err == EINTR:
            PyErr_CheckSignals()
        elif err == EAGAIN or err == EWOULDBLOCK:
            return _NOT_YET
        else:
            raise _oserror(err)


cdef object _recv_direct(int fd, Py_ssize_t n, Py_ssize_t hint):
    """recv(2) of up to n bytes straight into the bytes object returned,
    sized from ``hint`` (the previous receive) and shrunk to what came; what
    does not fit goes to the module's buffer and the two are joined (copied)
    -- the exception once the hint has followed the traffic."""
    cdef Py_ssize_t size = hint + hint // 8 + 4096
    cdef PyObject *obj
    cdef PyObject *joined
    cdef iovec iov[2]
    cdef msghdr msg
    cdef ssize_t got
    cdef int err
    if size > n:
        size = n
    # Made as a new reference held through `obj` (resized in place below).
    result = PyBytes_FromStringAndSize(NULL, size)
    obj = <PyObject *>result
    memset(&msg, 0, sizeof(msg))
    iov[0].iov_base = PyBytes_AS_STRING(obj)
    iov[0].iov_len = <size_t>size
    iov[1].iov_base = _sock_buffer
    iov[1].iov_len = <size_t>(n - size if n - size < SOCK_BUFFER_SIZE else SOCK_BUFFER_SIZE)
    msg.msg_iov = iov
    msg.msg_iovlen = 2 if n > size else 1
    while True:
        got = recvmsg(fd, &msg, MSG_DONTWAIT)
        if got >= 0:
            break
        err = errno
        if err == EINTR:
            PyErr_CheckSignals()
        elif err == EAGAIN or err == EWOULDBLOCK:
            return _NOT_YET
        else:
            raise _oserror(err)
    if got <= size:
        # _PyBytes_Resize needs the only reference: hand ours over.
        Py_INCREF(result)
        result = None
        _PyBytes_Resize(&obj, got)      # on failure it frees obj
        result = <object>obj
        Py_DECREF(result)
        return result
    joined_obj = PyBytes_FromStringAndSize(NULL, got)
    joined = <PyObject *>joined_obj
    memcpy(PyBytes_AS_STRING(joined), PyBytes_AS_STRING(obj), <size_t>size)
    memcpy(PyBytes_AS_STRING(joined) + size, _sock_buffer, <size_t>(got - size))
    return joined_obj


cdef inline Py_ssize_t _recv_hint(BaseLoop loop, int fd) noexcept:
    if not loop.resources_ready or fd < 0 or fd >= loop.watches_len:
        return 0
    return loop.watches[fd].recv_hint


cdef inline void _set_recv_hint(BaseLoop loop, int fd, Py_ssize_t size) noexcept:
    # Only an fd the watch array already covers: a hint is not worth growing
    # it (and a receive that had to wait made the entry).
    if loop.resources_ready and 0 <= fd < loop.watches_len:
        loop.watches[fd].recv_hint = <uint32_t>size


cdef object _recv_into_now(int fd, object buf):
    """recv(2) into the writable buffer ``buf``: the count, or _NOT_YET."""
    cdef Py_buffer view
    cdef ssize_t got
    cdef int err
    PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE)
    try:
        while True:
            got = recv(fd, view.buf, <size_t>view.len, MSG_DONTWAIT)
            if got >= 0:
                return got
            err = errno
            if err == EINTR:
                PyErr_CheckSignals()
            elif err == EAGAIN or err == EWOULDBLOCK:
                return _NOT_YET
            else:
                raise _oserror(err)
    finally:
        PyBuffer_Release(&view)


cdef Py_ssize_t _send_now(int fd, const char *buf, Py_ssize_t n) except -2:
    """send(2): the count sent, or -1 when it would block."""
    cdef ssize_t sent
    cdef int err
    while True:
        sent = send(fd, buf, <size_t>n, MSG_NOSIGNAL | MSG_DONTWAIT)
        if sent >= 0:
            return sent
        err = errno
        if err == EINTR:
            PyErr_CheckSignals()
        elif err == EAGAIN or err == EWOULDBLOCK:
            return -1
        else:
            raise _oserror(err)


cdef int _so_error(int fd) except -1:
    cdef int value = 0
    cdef socklen_t size = sizeof(value)
    if getsockopt(fd, SOL_SOCKET, SO_ERROR, &value, &size) < 0:
        raise _oserror(errno)
    return value


cdef bint _writable_buffer(object buf):
    # Whether the fast path can take buf; otherwise the socket's own
    # recv_into says what is wrong with it, in its own words.
    cdef Py_buffer view
    try:
        PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE)
    except Exception:
        return False
    PyBuffer_Release(&view)
    return True


# ---- socket.socket's io references (loop_sock.pxi holds one while an operation waits)

cdef extern from *:
    """
    #include "structmember.h"

    /* socket.socket keeps _io_refs and _closed in __slots__: on an object of
       exactly that class they sit at fixed offsets, found once from the
       slots' member descriptors.  Reading and writing them there costs a
       few instructions where an attribute lookup costs a few hundred, and
       a woken receive gives its io reference back and the next one takes
       one (module essay) for every message.  -1: not found, use getattr. */
    static Py_ssize_t pl_member_offset(PyObject *descr)
    {
        PyMemberDef *m;
        if (descr == NULL || !PyObject_TypeCheck(descr, &PyMemberDescr_Type))
            return -1;
        m = ((PyMemberDescrObject *)descr)->d_member;
        return m->type == T_OBJECT_EX ? m->offset : -1;
    }

    static Py_ssize_t pl_io_refs_at = -1;
    static Py_ssize_t pl_closed_at = -1;

    /* sock._io_refs += delta (never below 0) on an exact socket.socket:
       0 done, 1 not done here (the caller uses the attribute), -1 error. */
    static int pl_sock_io_refs_add(PyObject *sock, long delta)
    {
        PyObject **slot, *old, *now;
        long n;
        if (pl_io_refs_at < 0)
            return 1;
        slot = (PyObject **)((char *)sock + pl_io_refs_at);
        old = *slot;
        if (old == NULL || !PyLong_CheckExact(old))
            return 1;
        n = PyLong_AsLong(old);
        if (n == -1 && PyErr_Occurred())
            return -1;
        n += delta;
        now = PyLong_FromLong(n < 0 ? 0 : n);
        if (now == NULL)
            return -1;
        *slot = now;
        Py_DECREF(old);
        return 0;
    }

    /* sock._closed on an exact socket.socket: 1 or 0, -1 unknown here. */
    static int pl_sock_closed(PyObject *sock)
    {
        PyObject *v;
        if (pl_closed_at < 0)
            return -1;
        v = *(PyObject **)((char *)sock + pl_closed_at);
        if (v == Py_True)
            return 1;
        return v == Py_False ? 0 : -1;
    }
    """
    Py_ssize_t pl_member_offset(object descr)
    Py_ssize_t pl_io_refs_at
    Py_ssize_t pl_closed_at
    int pl_sock_io_refs_add(object sock, long delta) except -1
    int pl_sock_closed(object sock)


cdef _init_socket_slots():
    global pl_io_refs_at, pl_closed_at
    slots = _sock_io_socket_type.__dict__
    pl_io_refs_at = pl_member_offset(slots.get("_io_refs"))
    pl_closed_at = pl_member_offset(slots.get("_closed"))


_init_socket_slots()
