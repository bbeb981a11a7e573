# watch: one current value, many observers.  Included by _channels.pyx.
#
# The sender stores the latest value and bumps a version number; each receiver remembers the version
# it last saw.  Waiters are only woken and compare versions when they run, so a cancelled `changed()`
# loses nothing.

@cython.final
cdef class _WatchCell:
    cdef object value
    cdef Py_ssize_t version
    cdef bint tx_closed
    cdef Py_ssize_t n_receivers
    cdef list waiters
    cdef _Home home

    cdef bint _idle(self):
        for w in self.waiters:
            if not w.done():
                return False
        return True

    cdef void _wake(self) except *:
        cdef list ws = self.waiters
        if ws:
            self.waiters = []
            for w in ws:
                if not w.done():
                    w.set_result(None)


@cython.final
cdef class WatchSender:
    """The sending half of a watch channel: publishes the latest value."""
    cdef _WatchCell cell
    cdef readonly bint closed

    def __init__(self):
        raise TypeError("WatchSender objects come from watch()")

    def send(self, value) -> None:
        """Make ``value`` the current value and wake every receiver waiting in ``changed()``.
        Raises Closed if this sender is closed."""
        cdef _WatchCell c = self.cell
        if not c.home.ours():
            c.home._bind("WatchSender.send()", c._idle())
        if self.closed:
            raise Closed("send on a closed watch sender")
        c.value = value
        c.version += 1
        if c.waiters:
            c._wake()

    def borrow(self):
        """The current value."""
        return self.cell.value

    def subscribe(self) -> WatchReceiver:
        """A new receiver for which the current value counts as already seen."""
        return _new_watch_receiver(self.cell, self.cell.version)

    @property
    def receiver_count(self) -> int:
        return self.cell.n_receivers

    def close(self) -> None:
        """Close the channel: receivers' ``changed()`` raises Closed once they have seen the last
        value.  Idempotent.  Called from another thread while the channel's loop runs, the close
        is handed to that loop."""
        if not self.closed:
            if self.cell.home.handed_over(self.close):
                return
            self.closed = True
            self.cell.tx_closed = True
            self.cell._wake()

    def is_closed(self) -> bool:
        """True once this sender is closed: receivers then see the end of the stream."""
        return self.closed

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info):
        self.close()

    def __del__(self):
        if not self.closed and self.cell is not None:
            _warn_unclosed(self)
            try:
                self.close()
            except BaseException:
                pass

    def __repr__(self):
        return f"<WatchSender{' closed' if self.closed else ''}>"


@cython.final
cdef class WatchReceiver(_Waitable):
    """A receiving half of a watch channel."""
    cdef _WatchCell cell
    cdef Py_ssize_t seen
    cdef readonly bint closed

    def __init__(self):
        raise TypeError("WatchReceiver objects come from watch()/subscribe()/clone()")

    def borrow(self):
        """The current value (does not mark it seen)."""
        return self.cell.value

    def borrow_and_update(self):
        """The current value, marking it seen."""
        self.seen = self.cell.version
        return self.cell.value

    def has_changed(self) -> bool:
        """Whether a value newer than the last one seen was sent.  Raises Closed if the sender is
        closed and nothing new is left to see."""
        if self.cell.version != self.seen:
            return True
        if self.cell.tx_closed or self.closed:
            raise Closed("watch channel closed")
        return False

    def changed(self):
        """Wait for a value newer than the last one seen, and mark it seen (read it with
        ``borrow()``).  Awaitable.  Raises Closed when the sender is closed and nothing new is
        left."""
        return _new_wait(self, 0)

    cdef object _poll(self, int kind):
        # kind 1: __anext__, which gives the new value and ends the iteration at Closed
        cdef _WatchCell c = self.cell
        if c.version != self.seen:
            self.seen = c.version
            return c.value if kind == 1 else None
        if c.tx_closed or self.closed:
            if kind == 1 and not self.closed:
                raise StopAsyncIteration
            raise Closed("watch channel closed: the sender is closed")
        return _PENDING

    cdef void _park(self, object fut) except *:
        _park_in(self.cell.waiters, fut)

    cdef bint _idle(self):
        return self.cell._idle()

    def clone(self) -> WatchReceiver:
        """Another receiver that has seen what this one has."""
        return _new_watch_receiver(self.cell, self.seen)

    def close(self) -> None:
        """Stop watching; idempotent."""
        if not self.closed:
            self.closed = True
            self.cell.n_receivers -= 1

    def __aiter__(self):
        return self

    def __anext__(self):
        """Each change: waits for ``changed()`` and gives the new value; ends when the sender
        closes."""
        return _new_wait(self, 1)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info):
        self.close()

    def __del__(self):
        if not self.closed and self.cell is not None:
            if not self.cell.tx_closed or self.cell.version != self.seen:   # not at the end
                _warn_unclosed(self)
            self.close()

    def __repr__(self):
        return f"<WatchReceiver{' closed' if self.closed else ''}>"


cdef WatchReceiver _new_watch_receiver(_WatchCell c, Py_ssize_t seen):
    cdef WatchReceiver rx = WatchReceiver.__new__(WatchReceiver)
    rx.cell = c
    rx.home = c.home
    rx.track = _tracking_origins()
    rx.seen = seen
    c.n_receivers += 1
    return rx


def watch(initial):
    """A channel that holds one current value: ``(WatchSender, WatchReceiver)``.

    Receivers see the latest value (``borrow()``) and can wait for the next change (``changed()``);
    intermediate values may be skipped.  ``initial`` counts as already seen.

        tx, rx = pyloop.sync.watch("starting")
        tx.send("ready")
        await rx.changed()
        assert rx.borrow() == "ready"
    """
    cdef _WatchCell c = _WatchCell.__new__(_WatchCell)
    c.value = initial
    c.waiters = []
    c.home = _new_home()
    cdef WatchSender tx = WatchSender.__new__(WatchSender)
    tx.cell = c
    return tx, _new_watch_receiver(c, 0)
