# The awaitable behind oneshot, broadcast and watch receives.  Included by _channels.pyx.
#
# Those channels never hand a value to a waiter: a waiter is only woken, and looks again when it runs
# (`_poll`).  So the operation is a loop of "poll; if nothing yet, wait on a fresh future", and
# abandoning it (cancel, close) only has to cancel the future.  Like _ChanOp it implements the
# coroutine protocol by hand, with am_send, so a receive that finds its value ready costs no future,
# no loop trip and no coroutine frame.

cdef object _PENDING = object()     # what _poll returns when the caller has to wait


cdef class _Waitable:
    """Base of the receivers that _WaitOp polls."""
    cdef bint track                # operations record their creation site (_tracking_origins)
    cdef _Home home                # the thread and loop of its channel

    cdef bint _idle(self):
        """No receive of the channel waits (so it may move on to a new loop)."""
        return True

    cdef object _poll(self, int kind):
        """The result, or _PENDING; raise to fail the operation."""
        raise NotImplementedError

    cdef void _park(self, object fut) except *:
        """Register `fut` to be resolved when _poll may give something new."""
        raise NotImplementedError


@cython.final
@cython.freelist(32)
cdef class _WaitOp:
    cdef _Waitable src
    cdef object fut
    cdef int kind
    cdef bint done
    cdef object origin             # creation site when the receiver tracks

    def __await__(self):
        return self

    def __dealloc__(self):
        # Never stepped (no result, no future) and never closed: it was never awaited.
        if not self.done and self.fut is None and self.src is not None:
            _warn_never_awaited(self.__qualname__, "", self.origin)

    @property
    def __qualname__(self):
        # What asyncio shows for a task whose coroutine this is: "BroadcastReceiver.recv()".
        if self.kind == 1:
            method = ".__anext__"
        else:
            method = ".changed" if type(self.src).__name__ == "WatchReceiver" else ".recv"
        return type(self.src).__name__ + method

    @property
    def __name__(self):
        return self.__qualname__.partition(".")[2]

    def __next__(self):
        r = self._step()
        if r is _PENDING:
            return self.fut
        if r is not None:
            _set_stop(r)
        raise StopIteration

    def send(self, value):
        """Coroutine protocol: resume."""
        r = self._step()
        if r is _PENDING:
            return self.fut
        raise StopIteration(r)

    def throw(self, typ, val=None, tb=None):
        """Coroutine protocol: abandon the wait and raise."""
        exc = _make_exc(typ, val, tb)
        self._abandon()
        raise exc

    def close(self):
        """Coroutine protocol: abandon the wait."""
        self._abandon()

    cdef void _abandon(self):
        self.done = True
        if self.fut is not None and not self.fut.done():
            self.fut.cancel()

    cdef object _step(self):
        # _PENDING (self.fut is to be yielded) or the result.
        if self.done:
            raise RuntimeError("a channel operation can be awaited only once")
        if self.fut is not None:
            if self.fut.cancelled():          # cancelled without a throw(): give up as asked
                self.done = True
                raise _CancelledError()
        cdef _Waitable src = self.src
        if not src.home.ours():
            try:
                src.home._bind(self.__qualname__ + "()", src._idle())
            except BaseException:
                self.done = True
                raise
        try:
            r = self.src._poll(self.kind)
        except BaseException:
            self.done = True
            raise
        if r is not _PENDING:
            self.done = True
            self.fut = None
            return r
        loop = _get_running_loop()
        if loop is not src.home.loop:
            try:
                src.home.check_loop(loop, self.__qualname__ + "()", src._idle())
            except BaseException:
                self.done = True
                raise
        fut = loop.create_future()
        fut._asyncio_future_blocking = True
        self.fut = fut
        self.src._park(fut)
        return _PENDING


cdef int _waitop_am_send(PyObject* self, PyObject* arg, PyObject** result) except -1:
    cdef _WaitOp op = <_WaitOp>self
    cdef object r = op._step()
    if r is _PENDING:
        r = op.fut
        Py_INCREF(r)
        result[0] = <PyObject*>r
        return 1
    Py_INCREF(r)
    result[0] = <PyObject*>r
    return 0


(<_TypeWithAsync*><PyObject*>_WaitOp).tp_as_async.am_send = _waitop_am_send
collections.abc.Coroutine.register(_WaitOp)


cdef inline void _park_in(list waiters, object fut) except *:
    # Cancelled waiters stay in the list until the next wake-up; a receiver that keeps timing out
    # with no value ever coming would grow it without bound, so prune it at each power of two.
    cdef Py_ssize_t n = len(waiters)
    if n >= 64 and (n & (n - 1)) == 0:
        waiters[:] = [w for w in waiters if not w.done()]
    waiters.append(fut)


cdef inline _WaitOp _new_wait(_Waitable src, int kind):
    cdef _WaitOp op = _WaitOp.__new__(_WaitOp)
    op.src = src
    op.kind = kind
    if src.track:
        op.origin = _capture_origin()
    return op
