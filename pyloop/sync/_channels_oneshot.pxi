# oneshot: one value, from one sender to one receiver.  Included by _channels.pyx.
#
# The value stays in the shared cell until the receiving task runs and takes it (a waiting receiver is
# only woken), so cancelling the receiver can never lose the value: a later await gets it.

@cython.final
cdef class _OneshotCell:
    cdef object value
    cdef bint has_value
    cdef bint tx_closed            # sent, closed or collected: no value will come any more
    cdef bint rx_closed
    cdef bint taken
    cdef object waiter             # the waiting receiver's future
    cdef _Home home


cdef inline void _oneshot_wake(_OneshotCell c) except *:
    w = c.waiter
    if w is not None:
        c.waiter = None
        if not w.done():
            w.set_result(None)


@cython.final
cdef class OneshotSender:
    """The sending half of a oneshot channel: ``send`` once."""
    cdef _OneshotCell cell
    cdef readonly bint closed

    def __init__(self):
        raise TypeError("OneshotSender objects come from oneshot()")

    def send(self, value) -> None:
        """Deliver ``value`` (once; a second call raises asyncio.InvalidStateError).  Raises Closed if
        the receiver is closed; the sender is closed afterwards either way."""
        cdef _OneshotCell c = self.cell
        if not c.home.ours():
            c.home._bind("OneshotSender.send()", c.waiter is None or c.waiter.done())
        if self.closed:
            if c.has_value or c.taken:
                raise asyncio.InvalidStateError("oneshot value already sent")
            raise Closed("send on a closed oneshot sender")
        self.closed = True
        c.tx_closed = True
        if c.rx_closed:
            raise Closed("the oneshot receiver is closed")
        c.value = value
        c.has_value = True
        _oneshot_wake(c)

    def close(self) -> None:
        """Close without sending: the receiver gets Closed.  Idempotent.  Called from another
        thread while the channel's loop runs, the close is handed to that loop."""
        if not self.closed:
            if self.cell.home.handed_over(self.close):
                return
            self.closed = True
            self.cell.tx_closed = True
            _oneshot_wake(self.cell)

    def is_closed(self) -> bool:
        """True when this sender was used or closed, or the receiver is closed."""
        return self.closed or self.cell.rx_closed

    def __del__(self):
        if not self.closed and self.cell is not None:
            _warn_unclosed(self)
            self.closed = True
            self.cell.tx_closed = True
            try:
                _oneshot_wake(self.cell)
            except BaseException:
                pass

    def __repr__(self):
        return f"<OneshotSender{' closed' if self.closed else ''}>"


@cython.final
cdef class OneshotReceiver(_Waitable):
    """The receiving half of a oneshot channel: ``await rx`` gives the value."""
    cdef _OneshotCell cell
    cdef readonly bint closed

    def __init__(self):
        raise TypeError("OneshotReceiver objects come from oneshot()")

    def __await__(self):
        return _new_wait(self, 0)

    def recv(self):
        """The value, waiting for it.  Awaitable.  Raises Closed if the sender closed (or was
        collected) without sending, or the value was already received.  Cancelling the await loses
        nothing: the value stays in the channel until a receive completes."""
        return _new_wait(self, 0)

    cdef object _poll(self, int kind):
        cdef _OneshotCell c = self.cell
        if c.has_value:
            return self._take()
        if c.taken:
            raise Closed("the oneshot value was already received")
        if self.closed:
            raise Closed("receive on a closed oneshot receiver")
        if c.tx_closed:
            raise Closed("the oneshot sender was closed without sending a value")
        if c.waiter is not None and not c.waiter.done():
            raise RuntimeError("another task is already awaiting this oneshot receiver")
        return _PENDING

    cdef void _park(self, object fut) except *:
        self.cell.waiter = fut

    cdef bint _idle(self):
        return self.cell.waiter is None or self.cell.waiter.done()

    def blocking_recv(self):
        """The value, from synchronous code in another thread, blocking until it comes (the
        receive runs on the channel's loop).  Raises Closed as ``recv`` does; RuntimeError when
        called from a thread that runs an event loop or before the channel is bound to a loop."""
        return _run_blocking(self.home.blocking_loop("OneshotReceiver.blocking_recv()"),
                             _await_coro(self))

    def try_recv(self):
        """The value now, or raise Empty (not sent yet) or Closed."""
        cdef _OneshotCell c = self.cell
        if not c.home.ours():
            c.home._bind("OneshotReceiver.try_recv()", self._idle())
        if c.has_value:
            return self._take()
        if c.taken:
            raise Closed("the oneshot value was already received")
        if c.tx_closed or self.closed:
            raise Closed("the oneshot sender was closed without sending a value")
        raise Empty("no oneshot value yet")

    cdef object _take(self):
        cdef _OneshotCell c = self.cell
        v = c.value
        c.value = None
        c.has_value = False
        c.taken = True
        self.closed = True
        c.rx_closed = True
        return v

    def close(self) -> None:
        """Refuse the value: a later ``send`` raises Closed.  A value already sent stays receivable
        with ``try_recv``/await.  Idempotent."""
        if not self.closed:
            self.closed = True
            self.cell.rx_closed = True

    def is_closed(self) -> bool:
        """True once no value can arrive any more and none is waiting to be received."""
        c = self.cell
        return not c.has_value and (c.tx_closed or self.closed)

    def __del__(self):
        if not self.closed and self.cell is not None:
            if not self.is_closed():       # the sender closed without a value: nothing was left
                _warn_unclosed(self)
            self.closed = True
            self.cell.rx_closed = True

    def __repr__(self):
        return f"<OneshotReceiver{' closed' if self.closed else ''}>"


async def _await_coro(rx):
    return await rx


def oneshot():
    """A channel for exactly one value: ``(OneshotSender, OneshotReceiver)``.

        tx, rx = pyloop.sync.oneshot()
        loop.call_soon(tx.send, 42)
        assert await rx == 42
    """
    cdef _OneshotCell c = _OneshotCell.__new__(_OneshotCell)
    cdef OneshotSender tx = OneshotSender.__new__(OneshotSender)
    cdef OneshotReceiver rx = OneshotReceiver.__new__(OneshotReceiver)
    tx.cell = c
    rx.cell = c
    rx.track = _tracking_origins()
    c.home = rx.home = _new_home()
    return tx, rx
