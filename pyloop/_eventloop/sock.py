"""Low-level socket operations: ``loop.sock_*`` on non-blocking sockets.

The operations themselves are Cython, in the loop core
(``pyloop/_core/loop_sock.pxi``, whose essay says how they work): each tries
the system call at once and, only when it would block, waits on the loop's
fd watch with a handle of its own that makes the call again when the fd is
ready -- no Python callback, no add_reader/remove_reader per call.  A
cancelled operation leaves the socket unwatched; closing the socket while
an operation waits defers the real close until the operation lets go of the
fd, as uvloop does, so no operation ever acts on a reused fd number.

This module makes them methods of ``Loop``.  Name resolution is in
``dns.py``, ``sock_sendfile`` in ``pyloop/_transports/sendfile.py``.
"""

import functools

from .._core import loop as _core


class SockMixin:
    """``sock_*`` coroutines of ``AbstractEventLoop`` (``sock_sendfile`` is
    ``SendfileMixin``'s).

    Service of ``Loop``, no state of its own.  The coroutine functions are the
    loop core's (bound as methods like any function); they need from the
    loop: its C fd watches (``BaseLoop``), ``_ensure_resolved`` (DNSMixin,
    for ``sock_connect``) and ``call_exception_handler``.

    ``_wait_fd`` is the generic form, for services whose system call is not
    one of these (``sock_sendfile``): a Python callback on the fd until a
    future is done.
    """

    sock_recv = _core.sock_recv
    sock_recv_into = _core.sock_recv_into
    sock_recvfrom = _core.sock_recvfrom
    sock_recvfrom_into = _core.sock_recvfrom_into
    sock_sendall = _core.sock_sendall
    sock_sendto = _core.sock_sendto
    sock_connect = _core.sock_connect
    sock_accept = _core.sock_accept

    def _wait_fd(self, fd, writer, callback, *args):
        """Call ``callback(*args)`` whenever fd is ready (for writing if
        ``writer``) until the future ``args[0]`` is done, then unwatch fd."""
        fut = args[0]
        if writer:
            self.add_writer(fd, callback, *args)
            handle = self._fd_watched(fd)[1]
        else:
            self.add_reader(fd, callback, *args)
            handle = self._fd_watched(fd)[0]
        fut.add_done_callback(
            functools.partial(self._unwatch_fd, fd, writer, handle))
        return fut

    def _unwatch_fd(self, fd, writer, handle, fut):
        # Only remove our own watcher: the socket may be watched by someone
        # else by now.
        if self.is_closed():
            return
        if self._fd_watched(fd)[1 if writer else 0] is handle:
            if writer:
                self.remove_writer(fd)
            else:
                self.remove_reader(fd)
