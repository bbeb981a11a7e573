# broadcast: every receiver sees every value sent after it subscribed.  Included by _channels.pyx.
#
# Values live in one ring of `cap` slots, addressed by absolute position: value number p is in
# ring[p % cap] while p >= tail - cap.  Each receiver keeps its own next position.  Sending never waits:
# it overwrites the oldest value, and a receiver whose next position fell out of the ring gets Lagged
# once and continues from the oldest value still held.  Receivers read a value only when they run, so a
# cancelled receive loses nothing; waiters are simply woken and look again.

@cython.final
cdef class _Bcast:
    cdef list ring
    cdef Py_ssize_t cap
    cdef Py_ssize_t tail           # absolute position of the next value sent
    cdef Py_ssize_t n_senders, n_receivers
    cdef list waiters              # futures of receivers waiting for a value
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
cdef class BroadcastSender:
    """The sending half of a broadcast channel."""
    cdef _Bcast st
    cdef readonly bint closed

    def __init__(self):
        raise TypeError("BroadcastSender objects come from broadcast()")

    def send(self, value) -> int:
        """Send ``value`` to every current receiver (never waits); returns how many there are.  Raises
        Closed if this sender is closed."""
        cdef _Bcast st = self.st
        if not st.home.ours():
            st.home._bind("BroadcastSender.send()", st._idle())
        if self.closed:
            raise Closed("send on a closed broadcast sender")
        st.ring[st.tail % st.cap] = value
        st.tail += 1
        if st.waiters:
            st._wake()
        return st.n_receivers

    def subscribe(self) -> BroadcastReceiver:
        """A new receiver that sees the values sent from now on."""
        return _new_bcast_receiver(self.st, self.st.tail)

    def clone(self) -> BroadcastSender:
        """Another sender on the same channel, closed separately."""
        if self.closed:
            raise Closed("cannot clone a closed broadcast sender")
        cdef BroadcastSender other = BroadcastSender.__new__(BroadcastSender)
        other.st = self.st
        self.st.n_senders += 1
        return other

    @property
    def receiver_count(self) -> int:
        return self.st.n_receivers

    def close(self) -> None:
        """Close this sender; receivers see Closed after the last value once every sender is
        closed.  Idempotent.  Called from another thread while the channel's loop runs, the
        close is handed to that loop."""
        if not self.closed:
            if self.st.home.handed_over(self.close):
                return
            self.closed = True
            self.st.n_senders -= 1
            if self.st.n_senders == 0:
                self.st._wake()

    def is_closed(self) -> bool:
        """True once this sender is closed: receivers then see the end of the stream."""
        return self.closed

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info):
        self.close()

    def __del__(self):
        if not self.closed and self.st is not None:
            _warn_unclosed(self)
            try:
                self.close()
            except BaseException:
                pass

    def __repr__(self):
        return f"<BroadcastSender capacity={self.st.cap}{' closed' if self.closed else ''}>"


@cython.final
cdef class BroadcastReceiver(_Waitable):
    """A receiving half of a broadcast channel (``tx.subscribe()`` makes more)."""
    cdef _Bcast st
    cdef Py_ssize_t next
    cdef readonly bint closed

    def __init__(self):
        raise TypeError("BroadcastReceiver objects come from broadcast()/subscribe()")

    cdef int _ready(self) except -1:
        # 1: a value is ready; 0: none yet; raises Lagged or Closed.
        cdef _Bcast st = self.st
        cdef Py_ssize_t oldest
        if self.closed:
            raise Closed("receive on a closed broadcast receiver")
        if self.next < st.tail:
            oldest = st.tail - st.cap
            if self.next < oldest:
                skipped = oldest - self.next
                self.next = oldest
                raise Lagged(skipped)
            return 1
        if st.n_senders == 0:
            raise Closed("broadcast channel closed: every sender is closed")
        return 0

    cdef object _take(self):
        v = self.st.ring[self.next % self.st.cap]
        self.next += 1
        return v

    def recv(self):
        """The next value, waiting for one.  Awaitable.  Raises Lagged if values were missed (then
        continues with the oldest value still held) and Closed after the last value once every
        sender is closed."""
        return _new_wait(self, 0)

    cdef object _poll(self, int kind):
        # kind 1: __anext__, where the end of the stream is StopAsyncIteration
        if kind == 1 and not self.closed and self.next >= self.st.tail and self.st.n_senders == 0:
            raise StopAsyncIteration
        if self._ready():
            return self._take()
        return _PENDING

    cdef void _park(self, object fut) except *:
        _park_in(self.st.waiters, fut)

    cdef bint _idle(self):
        return self.st._idle()

    def blocking_recv(self):
        """The next value, from synchronous code in another thread, blocking until one comes (the
        receive runs on the channel's loop).  Raises Lagged and Closed as ``recv`` does;
        RuntimeError when called from a thread that runs an event loop or before the channel is
        bound to a loop."""
        return _run_blocking(self.home.blocking_loop("BroadcastReceiver.blocking_recv()"),
                             _recv_coro(self))

    def try_recv(self):
        """The next value now, or raise Empty, Lagged or Closed."""
        if not self.home.ours():
            self.home._bind("BroadcastReceiver.try_recv()", self._idle())
        if self._ready():
            return self._take()
        raise Empty("no broadcast value ready")

    def resubscribe(self) -> BroadcastReceiver:
        """A new receiver that sees the values sent from now on."""
        return _new_bcast_receiver(self.st, self.st.tail)

    def __len__(self):
        """How many values this receiver has not read yet (those still held)."""
        return min(self.st.tail - self.next, self.st.cap)

    def close(self) -> None:
        """Stop receiving; idempotent."""
        if not self.closed:
            self.closed = True
            self.st.n_receivers -= 1

    def __aiter__(self):
        return self

    def __anext__(self):
        return _new_wait(self, 1)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info):
        self.close()

    def __del__(self):
        if not self.closed and self.st is not None:
            if self.st.n_senders or self.next < self.st.tail:   # not at the end of the stream
                _warn_unclosed(self)
            self.close()

    def __repr__(self):
        return f"<BroadcastReceiver{' closed' if self.closed else ''}>"


cdef BroadcastReceiver _new_bcast_receiver(_Bcast st, Py_ssize_t start):
    cdef BroadcastReceiver rx = BroadcastReceiver.__new__(BroadcastReceiver)
    rx.st = st
    rx.home = st.home
    rx.next = start
    rx.track = _tracking_origins()
    st.n_receivers += 1
    return rx


def broadcast(capacity):
    """A multi-producer, multi-consumer channel where every receiver gets every value:
    ``(BroadcastSender, BroadcastReceiver)``.

    Sending never waits.  The channel keeps the last ``capacity`` values; a receiver that falls
    further behind gets ``Lagged(skipped)`` once and then continues from the oldest value kept.

        tx, rx1 = pyloop.sync.broadcast(16)
        rx2 = tx.subscribe()
        tx.send("event")
        assert await rx1.recv() == await rx2.recv() == "event"
    """
    cdef Py_ssize_t cap = _check_capacity(capacity, False)
    cdef _Bcast st = _Bcast.__new__(_Bcast)
    st.ring = [None] * cap
    st.cap = cap
    st.waiters = []
    st.n_senders = 1
    st.home = _new_home()
    cdef BroadcastSender tx = BroadcastSender.__new__(BroadcastSender)
    tx.st = st
    return tx, _new_bcast_receiver(st, 0)
