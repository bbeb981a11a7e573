# Part of loop.pyx (included there, at module level): the ``sock_*`` operations.
#
# ``loop.sock_recv``, ``sock_recv_into``, ``sock_recvfrom``,
# ``sock_recvfrom_into``, ``sock_sendall``, ``sock_sendto``, ``sock_connect``
# and ``sock_accept`` are the coroutine functions below; ``SockMixin``
# (pyloop/_eventloop/sock.py) makes them methods of ``Loop``.  They live in
# the loop core, not beside the mixin, because what makes them fast is the fd
# watch itself (loop_fds.pxi): an operation that has to wait puts a
# ``SockWait`` -- a Handle whose ``run_callback`` makes the system call -- into
# the watch's reader or writer slot, with no Python callback, partial, done
# callback or add/remove_reader call in between.  A separate Cython module
# cimporting ``BaseLoop`` (as the stream transport does) was the alternative;
# it would have had to reach the watch array's layout, ``_set_interest``, the
# iteration's end (step 5 below) and the loop's teardown through loop.pxd,
# i.e. export the fd watches' internals to another module, where a part of
# loop.pyx uses them as the module's own functions (direct C calls).
#
# How one operation runs:
#
# 1. The checks asyncio makes (an ``ssl.SSLSocket`` is refused with TypeError;
#    in debug mode a socket that is not non-blocking with ValueError).
# 2. The system call at once: on a busy socket the data is usually there.  For
#    a plain ``socket.socket`` (the exact class) recv/recv_into/send/
#    getsockopt are made on the fd by loop_sock_io.pxi (its essay says how,
#    and how a receive avoids copying large data).  For other objects
#    (subclasses, wrappers, mocks) and for the calls that take or return
#    addresses (accept, connect, recvfrom, sendto) the socket's own method is
#    called, looked up on every try as asyncio does.  Results and errors are
#    exactly the method's.
# 3. Only when that would block: a future, and the ``SockWait`` attached to the
#    fd's watch (``_sock_start``).  When the fd is ready the loop runs the
#    SockWait like any reader handle.  For a send, sendto or connect its
#    ``run_callback`` makes the call again and, when done, takes itself off
#    the watch first and then settles the future.  For a receive or accept
#    it only wakes the coroutine (the future's result is ``_WOKEN``), which
#    makes the call itself when it resumes (``_sock_ready``), again on a
#    wake-up for nothing.  asyncio makes the call in the callback; making it
#    in the coroutine consumes nothing for a task cancelled meanwhile, and a
#    server's reply follows its own receive instead of waiting for the
#    receives of every other ready socket of that iteration (an echo of
#    100 KiB messages on 10 connections: a quarter more messages a second).
# 4. The coroutine awaits the future in ``try/finally``: whatever ends the
#    wait (the result, cancellation, ``coro.close()``), the finally takes the
#    SockWait off the watch if it is still there.  So a cancelled operation
#    leaves the socket unwatched, as asyncio's does, and a SockWait that finds
#    its future already done (cancelled while the SockWait was queued) makes
#    no system call: no data is consumed for a cancelled receive.
# 5. A receive or accept the loop woke *parks* instead (``_sock_park``): its
#    READ interest stays registered with the kernel and the SockWait stays in
#    the slot until the end of the next loop iteration.  Its coroutine makes
#    the call in that iteration and usually asks again (``while True: await
#    sock_recv(...)``); the new operation takes the registration over
#    (``_sock_adopt``) -- two epoll_ctl calls fewer per message, a third of
#    the system calls of an echo.  Not taken over in time, or when the loop
#    stops, ``_sock_flush_parked`` (called at the end of every iteration)
#    removes it.  For the user a parked slot is empty: ``remove_reader``
#    says False and removes it; ``add_reader`` replaces it.  A send, connect
#    or failed operation never parks (writability is almost always there:
#    a parked WRITE interest would only wake the loop for nothing).
#
# Closing the socket while an operation waits (what uvloop does, and why):
# while it waits, the operation holds one of the socket's "io references"
# (``socket.socket._io_refs``, the counter ``makefile()`` uses), so
# ``sock.close()`` only marks the socket closed and the real close waits
# until the operation lets go of the fd.  The operation then completes as it
# would have on the open socket (the data that arrives is received, the
# connection in progress completes), lets go, and the deferred close happens
# right then: ``sock.fileno()`` is -1 when the awaiting code resumes.  This is
# uvloop's documented behaviour (its tests ``test_socket_recv_and_close``,
# ``test_socket_connect_and_close``...), and it means the fd number can never
# be closed and reused by another file while an operation watches it: no
# operation ever acts on a reused fd.  Cancelling the operation, or removing
# its watch with ``remove_reader``/``remove_writer``, lets go at once (the
# deferred close happens then); closing the loop lets go of every fd that
# operations still hold (``SockWait._forget``, from the watch teardown), so a
# socket closed meanwhile is closed with the loop.  What stays pending is the
# operation's future: a closed loop runs no callbacks, so nothing can resume
# the coroutine.  stock asyncio closes the fd under the operation, which then
# never completes (the epoll registration went with the fd).  A parked
# operation (step 5) gives its io reference back before its coroutine
# returns the result, so ``sock.close()`` right after a completed receive
# closes at once, as on asyncio and uvloop (``fileno()`` is -1 when close()
# returns; the peer sees the end of the connection).  Its registration may
# then outlive the fd number until the flush: harmless when the file went
# with the fd (the kernel drops the registration), but a dup() or a forked
# child can keep the file open, and such a registration can never be removed
# again (no number names the file any more).  That is why the operations'
# registrations are edge-triggered (``PL_EV_EDGE``; level-triggered again as
# soon as an add_reader/add_writer callback shares the fd): a leftover wakes
# the loop once per change of its file and its stale token has the wake-up
# ignored, where a level-triggered one would end every wait at once for as
# long as the file stays readable.  Edges are all the operations need: they
# try the call first and wait only after the kernel said "would block" (a
# real system call, never a guess: an end of file already there makes no new
# edge).
#
# Ownership: the watch slot owns one reference to the SockWait; the
# coroutine holds another until it ends, the loop's parked lists one while it
# is parked.  A SockWait holds the socket, the future and, for a partial
# ``sock_sendall``, the sender's buffer (the export keeps a bytearray from
# being resized meanwhile, as asyncio's memoryview does) only while it is
# attached or parked: ``_sock_let_go`` drops them, the future is dropped when
# it is settled.  Like all handles it is not tracked by the cyclic GC; the
# cycle it is part of while it waits (SockWait -> future -> task -> coroutine
# -> SockWait) is broken when it settles or lets go, which every end of the
# wait does.

cimport cython
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE

import socket as _socket_mod


cdef enum SockOpKind:
    OP_RECV
    OP_RECV_INTO
    OP_RECVFROM
    OP_RECVFROM_INTO
    OP_SENDALL
    OP_SENDTO
    OP_CONNECT
    OP_ACCEPT

cdef tuple _SOCK_OP_NAMES = ("sock_recv", "sock_recv_into", "sock_recvfrom",
                             "sock_recvfrom_into", "sock_sendall", "sock_sendto",
                             "sock_connect", "sock_accept")

cdef object _SocketType = _socket_mod.socket
cdef tuple _INET_FAMILIES = tuple(
    getattr(_socket_mod, name) for name in ("AF_INET", "AF_INET6") if hasattr(_socket_mod, name))
cdef dict _sys_modules = sys.modules
# What the future of a receive or accept the loop woke is set to.
cdef object _WOKEN = object()


@cython.no_gc
@cython.final
cdef class SockWait(Handle):
    """One waiting ``sock_*`` operation, in its fd's reader or writer slot."""

    cdef object sock
    cdef object fut
    cdef object arg          # the method's argument(s): n, buf, address, a memoryview
    cdef object arg2
    cdef Py_buffer view      # sock_sendall on the fast path: the data being sent
    cdef Py_ssize_t nbytes   # sock_recv's n on the fast path
    cdef Py_ssize_t offset   # sock_sendall: bytes sent so far
    cdef int fd              # -1 once off the watch
    cdef int kind
    cdef bint writer
    cdef bint fast           # system calls made here (an exact socket.socket, plain arguments)
    cdef bint exact          # type(sock) is socket.socket
    cdef bint has_view
    cdef bint io_ref         # holds one of the socket's io references
    cdef bint parked         # done, its READ interest kept for the next operation

    def __dealloc__(self):
        if self.has_view:
            self.has_view = False
            PyBuffer_Release(&self.view)

    def _repr_info(self):
        info = [type(self).__name__]
        if self._cancelled:
            info.append("cancelled")
        info.append(f"{_SOCK_OP_NAMES[self.kind]} fd={self.fd}")
        if self._source_traceback:
            frame = self._source_traceback[-1]
            info.append(f"created at {frame[0]}:{frame[1]}")
        return info

    cdef int run_callback(self) except -1:
        # Run by the loop when the fd is ready.  Never raises, except
        # SystemExit/KeyboardInterrupt from a socket method (which propagate
        # from run_forever as from asyncio's reader callbacks): errors go to
        # the future, or to the exception handler if settling fails.
        cdef object result = None
        cdef object error = None
        if self._cancelled or self.fd < 0 or self.parked:
            return 0
        fut = self.fut
        try:
            if fut.done():
                # Cancelled while this was queued: make no system call (no
                # data consumed); the coroutine's finally would detach too.
                _sock_detach(self)
                return 0
            if not self.writer and self.io_ref:
                # A receive or accept: wake its coroutine, which makes the
                # call itself (step 3 of the essay), the registration parked.
                _sock_park(self)
                self.fut = None
                fut.set_result(_WOKEN)
                return 0
            try:
                result = _sock_attempt(self)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                error = exc
            else:
                if result is _NOT_YET:
                    return 0
            _sock_detach(self)
            self.fut = None
            if error is not None:
                fut.set_exception(error)
            else:
                fut.set_result(result)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._report_exception(exc)
        finally:
            error = None
        return 0

    cdef int _cancel(self) except -1:
        # Taken off its watch by someone else (remove_reader, a watcher that
        # replaced it) or cancelled through the handle: let go of the fd now.
        self.parked = False
        _sock_let_go(self)
        return Handle._cancel(self)

    cdef void _forget(self) noexcept:
        # The loop is closing (watch teardown): let go of the fd, so that a
        # close() deferred by this operation happens now.
        self.fd = -1
        self.parked = False
        try:
            _sock_let_go(self)
        except BaseException:
            pass
        self.fut = None
        self.sock = None
        Handle._forget(self)

    cdef void _report_exception(self, object exc):
        try:
            context = {"message": f"Exception in {_SOCK_OP_NAMES[self.kind]} of {self.sock!r}",
                       "exception": exc, "handle": self}
            if self._source_traceback:
                context["source_traceback"] = self._source_traceback
            self._loop.call_exception_handler(context)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException:
            pass


cdef object _sock_attempt(SockWait op):
    """One more try of op's system call: its result, or _NOT_YET."""
    cdef int kind = op.kind
    cdef Py_ssize_t sent
    cdef Py_ssize_t hint
    sock = op.sock
    try:
        if kind == OP_RECV:
            if op.fast:
                hint = _recv_hint(<BaseLoop>op._loop, op.fd)
                if hint >= DIRECT_RECV_MIN:
                    result = _recv_direct(op.fd, op.nbytes, hint)
                else:
                    result = _recv_now(op.fd, op.nbytes)
                if result is not _NOT_YET:
                    _set_recv_hint(<BaseLoop>op._loop, op.fd, len(<bytes>result))
                return result
            return sock.recv(op.arg)
        if kind == OP_RECV_INTO:
            if op.fast:
                return _recv_into_now(op.fd, op.arg)
            return sock.recv_into(op.arg)
        if kind == OP_SENDALL:
            if op.has_view:
                sent = _send_now(op.fd, <const char *>op.view.buf + op.offset,
                                 op.view.len - op.offset)
                if sent > 0:
                    op.offset += sent
                return None if op.offset >= op.view.len else _NOT_YET
            op.offset += sock.send(op.arg[op.offset:])
            return None if op.offset >= len(op.arg) else _NOT_YET
        if kind == OP_CONNECT:
            if op.fast:
                err = _so_error(op.fd)
            else:
                err = sock.getsockopt(_socket_mod.SOL_SOCKET, _socket_mod.SO_ERROR)
            if err != 0:
                raise OSError(err, f"Connect call failed {op.arg}")
            return None
        if kind == OP_ACCEPT:
            conn, address = sock.accept()
            conn.setblocking(False)
            return conn, address
        if kind == OP_RECVFROM:
            return sock.recvfrom(op.arg)
        if kind == OP_RECVFROM_INTO:
            return sock.recvfrom_into(op.arg, op.arg2)
        return sock.sendto(op.arg, op.arg2)         # OP_SENDTO
    except (BlockingIOError, InterruptedError):
        return _NOT_YET


# ---- waiting on the fd watch ---------------------------------------------------

cdef bint _sock_checks(BaseLoop loop, object sock) except -1:
    """asyncio's checks of a sock_* argument; True for an exact socket.socket,
    whose system calls this module makes itself."""
    cdef bint exact = type(sock) is _SocketType
    if not exact:
        ssl = _sys_modules.get("ssl")   # not imported: there is no SSLSocket
        if ssl is not None and isinstance(sock, ssl.SSLSocket):
            raise TypeError("Socket cannot be of type SSLSocket")
    if loop._debug and sock.gettimeout() != 0:
        raise ValueError("the socket must be non-blocking")
    return exact


cdef SockWait _sock_op(BaseLoop loop, object sock, int kind, bint writer, bint fast):
    cdef SockWait op = SockWait.__new__(SockWait)
    op._loop = loop
    op._persistent = True
    op.sock = sock
    op.kind = kind
    op.writer = writer
    op.fast = fast
    op.exact = type(sock) is _SocketType
    op.fd = -1
    return op


cdef object _sock_start(BaseLoop loop, SockWait op, int fd=-1):
    """Attach op to its fd's watch (``fd``: the socket's, if the caller
    has it already); return the future it will settle."""
    loop._check_closed()
    if loop._forked:
        # Only the flag the fork hook sets: _check_not_forked's getpid() is a
        # system call, once per wait here.
        loop._check_not_forked()
    if fd < 0:
        fd = _fileobj_to_fd(op.sock)
    if loop._debug:
        op._source_traceback = _extract_stack(sys._getframe(0))
    fut = _Future(loop=loop)
    op.fut = fut
    # Taking over a parked registration of this socket needs no more checks:
    # a transport on the fd would have replaced it.
    if not op.writer and _sock_adopt(loop, op, fd):
        return fut
    _ensure_fd_no_transport(loop, fd)
    if op.exact or issubclass(type(op.sock), _SocketType):
        # Defer a close() of the socket until this operation lets go of the
        # fd: the number cannot be reused under it (module essay).  By the
        # real type: a Mock(spec=socket) passes isinstance() and has no
        # counter to add to.
        _sock_take_io_ref(op)
    try:
        _sock_attach(loop, op, fd)
    except BaseException:
        _sock_let_go(op)
        raise
    return fut


cdef int _sock_attach(BaseLoop loop, SockWait op, int fd) except -1:
    cdef FdWatch *w
    cdef PyObject *old
    cdef PyObject *old_obj
    cdef PyObject *other
    cdef uint32_t events
    # The checks above ran Python code: the watches may be gone (see
    # "Threads" in loop.pyx); from here on nothing runs Python code until
    # the reference to a replaced handle is dropped.
    if not loop.resources_ready:
        raise RuntimeError("Event loop is closed")
    w = _watch_for(loop, fd)
    if w.internal:
        raise ValueError(f"file descriptor {fd} is used by the event loop itself")
    # Edge-triggered while only operations use the fd (they try the call
    # before they wait: a change is all they need), so that a registration
    # left behind by a close stays quiet (module essay); level-triggered as
    # soon as a callback of add_reader/add_writer shares it.
    other = w.reader if op.writer else w.writer
    events = w.events | (PL_EV_WRITE if op.writer else PL_EV_READ)
    if other == NULL or type(<object>other) is SockWait:
        events |= PL_EV_EDGE
    else:
        events &= ~PL_EV_EDGE
    _set_interest(loop, fd, w, events, True, True)
    Py_INCREF(op)
    op.fd = fd
    if op.writer:
        old, old_obj = w.writer, w.writer_obj
        w.writer, w.writer_obj = <PyObject *>op, NULL
    else:
        old, old_obj = w.reader, w.reader_obj
        w.reader, w.reader_obj = <PyObject *>op, NULL
    if old_obj != NULL:
        Py_DECREF(<object>old_obj)
    if old != NULL:
        # Another operation or callback on the same fd and direction: it is
        # replaced, as asyncio's add_reader replaces (its future stays
        # pending).
        try:
            (<Handle>old)._cancel()
        finally:
            Py_DECREF(<object>old)
    return 0


cdef bint _sock_adopt(BaseLoop loop, SockWait op, int fd) except -1:
    """Take over the fd's watch from a parked operation on the same socket:
    its slot and its READ interest (no system call)."""
    cdef FdWatch *w
    cdef PyObject *slot
    cdef SockWait parked
    # C only from the check to the end (see "Threads" in loop.pyx).
    if not loop.resources_ready or fd >= loop.watches_len:
        return False
    w = &loop.watches[fd]
    slot = w.reader
    if (slot == NULL or type(<object>slot) is not SockWait or not (w.events & PL_EV_READ)
            or w.reader_obj != NULL):
        return False
    parked = <SockWait>slot
    if not parked.parked or parked.sock is not op.sock or parked.fd != fd:
        return False
    if parked is op:
        # Woken for nothing (another reader was quicker): wait again.
        op.parked = False
        return True
    Py_INCREF(op)
    w.reader = <PyObject *>op
    op.fd = fd
    # The parked op let go of its io reference when its coroutine got the
    # result; this one waits, so it holds one (a parked op is always on a
    # socket.socket: only those hold io references, and only those park).
    if parked.io_ref:
        parked.io_ref = False
        op.io_ref = True
    else:
        _sock_take_io_ref(op)
    parked.parked = False
    parked.fd = -1
    if loop._debug and op._source_traceback is None:
        op._source_traceback = parked._source_traceback
    # The parked op lives on in the parked list until the flush drops it:
    # dropping the watch's reference runs no code.
    Py_DECREF(parked)
    return True


cdef int _sock_park(SockWait op) except -1:
    """The loop woke a receive or accept: leave its READ interest registered
    and the op in its slot, holding the socket, until the end of the next
    iteration.  Its task makes the call in that iteration (the io reference
    goes once the call is made: _sock_finish_woken) and usually asks again
    (sock_recv in a loop), and then takes the registration over
    (_sock_adopt) instead of an epoll_ctl to remove it now and another to add
    it back.  Not taken over in time, it is removed by _sock_flush_parked.  A
    parked fd that becomes readable is reported with nobody to run: the next
    operation tries its call first and finds what came."""
    cdef BaseLoop loop = <BaseLoop>op._loop
    op.parked = True
    loop._sock_parked.append(op)
    return 0


cdef int _sock_flush_parked(BaseLoop loop, bint everything) except -1:
    """End of an iteration (loop_iteration.pxi): remove the READ interest of
    operations parked in the previous iteration and not taken over, and let
    go of their sockets; all of them when the loop is stopping (nothing runs
    until it is run again, and a socket closed meanwhile must close)."""
    cdef list done = loop._sock_parked_prev
    cdef SockWait op
    if everything:
        done.extend(loop._sock_parked)
        del loop._sock_parked[:]
    else:
        loop._sock_parked_prev = loop._sock_parked
        loop._sock_parked = done
    for op in done:
        if op.parked:
            op.parked = False
            try:
                _sock_detach(op)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                op._report_exception(exc)
            op.sock = None
    del done[:]
    return 0


cdef bint _sock_parked_reader(BaseLoop loop, int fd) except -1:
    """remove_reader of an fd whose reader slot holds a parked operation:
    there is no reader as far as the user is concerned; the parked interest
    goes now."""
    cdef PyObject *slot
    if not loop.resources_ready or fd < 0 or fd >= loop.watches_len:
        return False
    slot = loop.watches[fd].reader
    if slot == NULL or type(<object>slot) is not SockWait or not (<SockWait>slot).parked:
        return False
    (<SockWait>slot).parked = False
    _sock_detach(<SockWait>slot)
    return True


cdef object _sock_ready(SockWait op):
    """The coroutine of a receive or accept the loop woke: make the call,
    the fd still held (the op keeps its io reference while parked).  A
    close() of the socket meanwhile is carried out once the call is made, as
    uvloop does.  Otherwise the registration stays parked for the next
    operation, but the io reference goes before the caller's code runs: a
    close() there closes at once, as on asyncio (module essay)."""
    try:
        result = _sock_attempt(op)
    except BaseException:
        _sock_finish_woken(op)
        raise
    if result is not _NOT_YET:
        op.arg = op.arg2 = None         # the caller's buffer, not the op's any more
        _sock_finish_woken(op)
    return result


cdef int _sock_finish_woken(SockWait op) except -1:
    if not op.parked:
        return 0
    if _sock_closed(op):
        # close() was called while the op waited: off the watch while the
        # fd is still open, then the deferred close.
        op.parked = False
        _sock_detach(op)
    else:
        _sock_drop_io_ref(op)
    return 0


cdef int _sock_detach(SockWait op) except -1:
    """Take op off its watch (if it is still there) and let go of the fd.
    A parked op stays: the next operation or the flush takes it off."""
    cdef BaseLoop loop = <BaseLoop>op._loop
    cdef FdWatch *w
    cdef int fd = op.fd
    if op.parked:
        return 0
    if fd >= 0:
        op.fd = -1
        if loop.resources_ready and fd < loop.watches_len:
            w = &loop.watches[fd]
            if op.writer and w.writer == <PyObject *>op:
                w.writer = NULL
                try:
                    _set_interest(loop, fd, w, w.events & ~PL_EV_WRITE, False)
                finally:
                    Py_DECREF(op)
            elif not op.writer and w.reader == <PyObject *>op:
                w.reader = NULL
                try:
                    _set_interest(loop, fd, w, w.events & ~PL_EV_READ, False)
                finally:
                    Py_DECREF(op)
    _sock_let_go(op)
    return 0


cdef int _sock_let_go(SockWait op) except -1:
    """Drop what a waiting op holds: the sender's buffer, the future (a
    replaced op's stays pending: the op, untracked by the GC, must not keep
    the task's cycle alive), the io reference."""
    if op.has_view:
        op.has_view = False
        PyBuffer_Release(&op.view)
    op.arg = op.arg2 = op.fut = None
    _sock_drop_io_ref(op)
    return 0


cdef bint _sock_closed(SockWait op) except -1:
    """sock._closed: close() was called (and waits for the io references)."""
    cdef int closed = pl_sock_closed(op.sock) if op.exact else -1
    if closed < 0:
        return bool(op.sock._closed)
    return closed


cdef int _sock_take_io_ref(SockWait op) except -1:
    """Hold one of the socket's io references: a close() waits for it."""
    if not op.exact or pl_sock_io_refs_add(op.sock, 1):
        op.sock._io_refs += 1
    op.io_ref = True
    return 0


cdef int _sock_drop_io_ref(SockWait op) except -1:
    """Give the socket's io reference back: a close() it deferred happens now."""
    if op.io_ref:
        op.io_ref = False
        sock = op.sock
        if op.exact:
            # socket.socket._decref_socketios, without a Python-level call:
            # one reference less, and the real close if sock.close() was
            # called meanwhile.
            if pl_sock_io_refs_add(sock, -1):
                refs = sock._io_refs
                if refs > 0:
                    sock._io_refs = refs - 1
            if _sock_closed(op):
                sock.close()
        else:
            sock._decref_socketios()
    return 0


# ---- the coroutines (methods of Loop through SockMixin) --------------------------

async def sock_recv(BaseLoop self, sock, n):
    """Receive up to ``n`` bytes from ``sock``."""
    cdef SockWait op
    cdef int fd = -1
    cdef Py_ssize_t hint
    cdef bint fast = _sock_checks(self, sock)
    if fast and type(n) is int and 0 <= n <= SOCK_BUFFER_SIZE:
        fd = sock.fileno()
        hint = _recv_hint(self, fd)
        if hint >= DIRECT_FIRST_TRY_MIN:
            result = _recv_direct(fd, n, hint)
        else:
            result = _recv_now(fd, n)
        if result is not _NOT_YET:
            _set_recv_hint(self, fd, len(<bytes>result))
            return result
    else:
        fast = False
        try:
            return sock.recv(n)
        except (BlockingIOError, InterruptedError):
            pass
    op = _sock_op(self, sock, OP_RECV, False, fast)
    op.arg = n
    if fast:
        op.nbytes = n
    while True:
        fut = _sock_start(self, op, fd)
        try:
            result = await fut
        finally:
            _sock_detach(op)
        if result is not _WOKEN:
            return result
        result = _sock_ready(op)
        if result is not _NOT_YET:
            return result


async def sock_recv_into(BaseLoop self, sock, buf):
    """Receive into ``buf``; return the number of bytes received."""
    cdef SockWait op
    cdef int fd = -1
    cdef bint fast = _sock_checks(self, sock) and _writable_buffer(buf)
    if fast:
        fd = sock.fileno()
        result = _recv_into_now(fd, buf)
        if result is not _NOT_YET:
            return result
    else:
        try:
            return sock.recv_into(buf)
        except (BlockingIOError, InterruptedError):
            pass
    op = _sock_op(self, sock, OP_RECV_INTO, False, fast)
    op.arg = buf
    while True:
        fut = _sock_start(self, op, fd)
        try:
            result = await fut
        finally:
            _sock_detach(op)
        if result is not _WOKEN:
            return result
        result = _sock_ready(op)
        if result is not _NOT_YET:
            return result


async def sock_recvfrom(BaseLoop self, sock, bufsize):
    """Receive a datagram of up to ``bufsize`` bytes: ``(data, address)``."""
    cdef SockWait op
    _sock_checks(self, sock)
    try:
        return sock.recvfrom(bufsize)
    except (BlockingIOError, InterruptedError):
        pass
    op = _sock_op(self, sock, OP_RECVFROM, False, False)
    op.arg = bufsize
    while True:
        fut = _sock_start(self, op)
        try:
            result = await fut
        finally:
            _sock_detach(op)
        if result is not _WOKEN:
            return result
        result = _sock_ready(op)
        if result is not _NOT_YET:
            return result


async def sock_recvfrom_into(BaseLoop self, sock, buf, nbytes=0):
    """Receive a datagram into ``buf``: ``(nbytes, address)``."""
    cdef SockWait op
    _sock_checks(self, sock)
    if not nbytes:
        nbytes = len(buf)
    try:
        return sock.recvfrom_into(buf, nbytes)
    except (BlockingIOError, InterruptedError):
        pass
    op = _sock_op(self, sock, OP_RECVFROM_INTO, False, False)
    op.arg = buf
    op.arg2 = nbytes
    while True:
        fut = _sock_start(self, op)
        try:
            result = await fut
        finally:
            _sock_detach(op)
        if result is not _WOKEN:
            return result
        result = _sock_ready(op)
        if result is not _NOT_YET:
            return result


async def sock_sendall(BaseLoop self, sock, data):
    """Send all of ``data``, waiting for buffer space as needed."""
    cdef SockWait op
    cdef Py_buffer view
    cdef Py_ssize_t sent = 0
    cdef int fd = -1
    cdef bint fast = _sock_checks(self, sock)
    if fast:
        try:
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        except Exception:       # not a contiguous bytes-like object: sock.send says why
            fast = False
    if fast:
        try:
            fd = sock.fileno()
            sent = _send_now(fd, <const char *>view.buf, view.len)
            if sent == view.len:
                return None
        finally:
            PyBuffer_Release(&view)
        op = _sock_op(self, sock, OP_SENDALL, True, True)
        # Exported again for the wait, into the op: no Python code ran since
        # the release, so the data is the same.
        PyObject_GetBuffer(data, &op.view, PyBUF_SIMPLE)
        op.has_view = True
        op.offset = sent if sent > 0 else 0
    else:
        try:
            sent = sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        if sent == len(data):
            return None
        op = _sock_op(self, sock, OP_SENDALL, True, False)
        op.offset = sent
    fut = _sock_start(self, op, fd)
    if not fast:
        op.arg = memoryview(data)
    try:
        return await fut
    finally:
        _sock_detach(op)


async def sock_sendto(BaseLoop self, sock, data, address):
    """Send a datagram to ``address``; return the number of bytes sent."""
    cdef SockWait op
    _sock_checks(self, sock)
    try:
        return sock.sendto(data, address)
    except (BlockingIOError, InterruptedError):
        pass
    op = _sock_op(self, sock, OP_SENDTO, True, False)
    op.arg = data
    op.arg2 = address
    fut = _sock_start(self, op)
    try:
        return await fut
    finally:
        _sock_detach(op)


async def sock_connect(BaseLoop self, sock, address):
    """Connect ``sock`` to ``address`` (resolved first for IP sockets)."""
    cdef SockWait op
    cdef bint fast = _sock_checks(self, sock)
    if sock.family in _INET_FAMILIES:
        resolved = await self._ensure_resolved(
            address, family=sock.family, type=sock.type, proto=sock.proto)
        address = resolved[0][4]
    try:
        sock.connect(address)
        return None
    except (BlockingIOError, InterruptedError):
        # In progress (or interrupted, which goes on in the background):
        # writable when it is done either way.
        pass
    op = _sock_op(self, sock, OP_CONNECT, True, fast)
    fut = _sock_start(self, op)
    op.arg = address
    try:
        return await fut
    finally:
        _sock_detach(op)


async def sock_accept(BaseLoop self, sock):
    """Accept a connection: ``(conn, address)``, ``conn`` non-blocking."""
    cdef SockWait op
    _sock_checks(self, sock)
    try:
        conn, address = sock.accept()
        conn.setblocking(False)
        return conn, address
    except (BlockingIOError, InterruptedError):
        pass
    op = _sock_op(self, sock, OP_ACCEPT, False, False)
    while True:
        fut = _sock_start(self, op)
        try:
            result = await fut
        finally:
            _sock_detach(op)
        if result is not _WOKEN:
            return result
        result = _sock_ready(op)
        if result is not _NOT_YET:
            return result
