# mpsc channels: the shared state (_Chan), the awaitable operations (_ChanOp) and the endpoints.
# Included by _channels.pyx; read that module's docstring first (the cancellation rules).

# The state of one operation (_ChanOp.state).
cdef enum:
    ST_NEW = 0        # created, not yet awaited
    ST_WAITING = 1    # queued in a waiter deque, future pending
    ST_GRANTED = 2    # sender: a slot is reserved for it (chan.reserved counts it)
    ST_HANDED = 3     # receiver: a value was put into op.value for it
    ST_CLOSED = 4     # woken because the channel (or the sender handle) closed
    ST_DONE = 5       # finished: awaited to completion, failed, or abandoned

# What an operation does (_ChanOp.kind).
cdef enum:
    OP_SEND = 0
    OP_RESERVE = 1
    OP_RECV = 2
    OP_ANEXT = 3      # like OP_RECV, but the end of the stream is StopAsyncIteration

cdef enum:
    RING_MIN = 16     # the smallest ring a channel's buffer grows from

cdef class _SenderBase
cdef class Receiver


@cython.final
cdef class _Chan:
    """The state one mpsc channel's endpoints share."""
    cdef list ring                 # power-of-two ring of buffered values
    cdef Py_ssize_t head, count, mask
    cdef Py_ssize_t cap
    cdef bint unbounded
    cdef Py_ssize_t reserved       # grants and permits: slots promised to senders
    cdef Py_ssize_t n_senders      # open sender handles
    cdef bint rx_closed
    cdef object send_waiters       # deque of _ChanOp; cancelled ones are skipped lazily
    cdef object recv_waiters
    cdef Py_ssize_t n_send_waiting, n_recv_waiting   # live entries of those deques
    cdef bint track                # operations record their creation site (_tracking_origins)
    cdef _Home home                # the thread and loop it belongs to

    def __cinit__(self, Py_ssize_t cap, bint unbounded):
        cdef Py_ssize_t size = RING_MIN
        while size < cap and size < 1024:
            size <<= 1
        self.ring = [None] * size
        self.mask = size - 1
        self.cap = cap
        self.unbounded = unbounded
        self.send_waiters = _deque()
        self.recv_waiters = _deque()

    # -- the ring ----------------------------------------------------------------------------------
    cdef void _grow(self) except *:
        cdef Py_ssize_t size = self.mask + 1, i
        cdef list new = [None] * (size * 2)
        for i in range(self.count):
            new[i] = self.ring[(self.head + i) & self.mask]
        self.ring = new
        self.head = 0
        self.mask = size * 2 - 1

    cdef inline void _put(self, Py_ssize_t i, object v):
        cdef PyObject* old = _list_get(self.ring, i)
        Py_INCREF(v)
        _list_set(self.ring, i, <PyObject*>v)
        _decref(old)

    cdef inline void _push(self, object v) except *:
        if self.count > self.mask:
            self._grow()
        self._put((self.head + self.count) & self.mask, v)
        self.count += 1

    cdef inline void _push_front(self, object v) except *:
        if self.count > self.mask:
            self._grow()
        self.head = (self.head - 1) & self.mask
        self._put(self.head, v)
        self.count += 1

    cdef inline object _pop(self):
        cdef object v = <object>_list_get(self.ring, self.head)
        self._put(self.head, None)
        self.head = (self.head + 1) & self.mask
        self.count -= 1
        return v

    # -- accounting --------------------------------------------------------------------------------
    cdef inline bint _has_room(self):
        # A waiting receiver counts as one more slot: a sender hands its value straight to it.
        return self.unbounded or (
            self.cap + self.n_recv_waiting - self.count - self.reserved > 0)

    cdef inline bint _can_send_now(self):
        # Waiting senders go first (FIFO): a newcomer may not overtake them.
        return self.n_send_waiting == 0 and self._has_room()

    cdef inline bint _idle(self):
        return self.n_send_waiting == 0 and self.n_recv_waiting == 0

    cdef inline int check(self, str what) except -1:
        # The endpoints' thread check (see _Home); `what` names the call in the error.
        if not self.home.ours():
            self.home._bind(what, self._idle())
        return 0

    cdef inline bint _at_end(self):
        return self.count == 0 and self.reserved == 0 and (self.rx_closed or self.n_senders == 0)

    cdef _ChanOp _pop_waiter(self, object waiters, bint sender):
        # The first live waiter, or None.  A waiter whose future was cancelled (its task is about to
        # throw into it) is dropped here rather than served.
        cdef _ChanOp op
        while waiters:
            op = waiters.popleft()
            if op.state != ST_WAITING:
                continue
            if sender:
                self.n_send_waiting -= 1
            else:
                self.n_recv_waiting -= 1
            if op.fut.done():
                op.state = ST_DONE
                continue
            return op
        return None

    cdef void _deliver(self, object v) except *:
        # Put a value that is leaving a running sender into the channel.
        cdef _ChanOp op
        if self.n_recv_waiting:
            op = self._pop_waiter(self.recv_waiters, False)
            if op is not None:
                op.value = v
                op.state = ST_HANDED
                op.fut.set_result(None)
                return
        self._push(v)

    cdef void _give_back(self, object v) except *:
        # A receiver that was handed `v` will not take it: it goes back to the front.
        cdef _ChanOp op
        if self.n_recv_waiting:
            op = self._pop_waiter(self.recv_waiters, False)
            if op is not None:
                op.value = v
                op.state = ST_HANDED
                op.fut.set_result(None)
                return
        self._push_front(v)

    cdef void _grant(self) except *:
        # Room may have appeared: reserve slots for waiting senders, oldest first.
        cdef _ChanOp op
        while self.n_send_waiting and self._has_room():
            op = self._pop_waiter(self.send_waiters, True)
            if op is None:
                break
            op.state = ST_GRANTED
            self.reserved += 1
            op.fut.set_result(None)

    cdef void _release(self) except *:
        # A grant or permit is given up unused.
        self.reserved -= 1
        self._grant()
        self._wake_at_end()

    cdef void _wake_at_end(self) except *:
        cdef _ChanOp op
        if self.n_recv_waiting and self._at_end():
            while True:
                op = self._pop_waiter(self.recv_waiters, False)
                if op is None:
                    break
                op.state = ST_CLOSED
                op.fut.set_result(None)

    cdef void _fail_senders(self, object handle) except *:
        # Wake the waiting senders of `handle` (all of them when None) with Closed.
        cdef _ChanOp op
        cdef list keep = []
        if not self.n_send_waiting:
            return
        for op in self.send_waiters:
            if op.state != ST_WAITING:
                continue
            if handle is None or op.handle is handle:
                self.n_send_waiting -= 1
                if op.fut.done():
                    op.state = ST_DONE
                else:
                    op.state = ST_CLOSED
                    op.fut.set_result(None)
            else:
                keep.append(op)
        self.send_waiters = _deque(keep)

    cdef void _compact(self, object waiters) except *:
        # Lazily-skipped cancelled waiters pile up only when many waiters are cancelled while others
        # keep waiting; drop them now and then so the deque stays proportional to the live ones.
        cdef Py_ssize_t live = self.n_send_waiting if waiters is self.send_waiters else self.n_recv_waiting
        cdef _ChanOp op
        if len(waiters) > 2 * live + 64:
            kept = [op for op in waiters if op.state == ST_WAITING]
            waiters.clear()
            waiters.extend(kept)

    cdef void _sender_closed(self, object handle) except *:
        self._fail_senders(handle)
        self.n_senders -= 1
        self._wake_at_end()

    cdef void _receiver_closed(self) except *:
        if self.rx_closed:
            return
        self.rx_closed = True
        self._fail_senders(None)
        self._wake_at_end()


@cython.final
@cython.freelist(64)
cdef class _ChanOp:
    """One pending ``send``/``reserve``/``recv`` of an mpsc channel: an awaitable that is its own
    coroutine-like iterator.  Await it once."""
    cdef _Chan chan
    cdef _SenderBase handle        # senders: whose send this is
    cdef object value              # the item to send / the value received
    cdef object fut                # waiter future, while it waits
    cdef int kind
    cdef int state
    cdef object origin             # creation site (a traceback.StackSummary) when the channel tracks
    cdef Receiver rx               # receives, until first stepped: the endpoint that made it (_step)

    def __await__(self):
        return self

    def __next__(self):
        cdef object r = self._step()
        if r is None:
            v = self.value
            if v is not None:
                self.value = None
                _set_stop(v)
            raise StopIteration
        return r

    def send(self, value):
        """Coroutine protocol: resume (``value`` is ignored, as a task only ever sends None)."""
        cdef object r = self._step()
        if r is None:
            v = self.value
            self.value = None
            raise StopIteration(v)
        return r

    def throw(self, typ, val=None, tb=None):
        """Coroutine protocol: abandon the operation (see the cancellation rules) and raise."""
        exc = _make_exc(typ, val, tb)
        self._abandon()
        raise exc

    def close(self):
        """Coroutine protocol: abandon the operation without raising."""
        self._abandon()

    def __dealloc__(self):
        # A task destroyed while its coroutine was suspended here: do what close() would.  Only the
        # states that hold something (a handed value, a grant) need it, and neither keeps `self`
        # referenced from the channel.
        if self.state == ST_HANDED or self.state == ST_GRANTED:
            try:
                self._abandon()
            except BaseException:
                pass
        elif self.state == ST_NEW and self.chan is not None:
            self._warn_unawaited()

    cdef void _warn_unawaited(self) noexcept:
        _warn_never_awaited(
            ("Sender.send", "Sender.reserve", "Receiver.recv", "Receiver.__anext__")[self.kind],
            ": the value was not sent" if self.kind == OP_SEND else "", self.origin)

    @property
    def __qualname__(self):
        # What asyncio shows for a task whose coroutine this is: "Receiver.recv()".
        return ("Sender.send", "Sender.reserve", "Receiver.recv", "Receiver.__anext__")[self.kind]

    @property
    def __name__(self):
        return self.__qualname__.partition(".")[2]

    def __repr__(self):
        return f"<pyloop.sync {self.__qualname__} operation, state {self.state}>"

    cdef inline object _step(self):
        cdef _Chan ch = self.chan
        if self.state == ST_NEW:
            # Awaited at last: from now on its endpoint keeps it, to hand it out again once the
            # caller drops it (see _reset_op).  Not before: an operation that is never awaited must
            # be freed, and so warn, as soon as the caller drops it.
            if self.kind <= OP_RESERVE:
                self.handle._op = self
                return self._start_send(ch)
            self.rx._op = self
            self.rx = None
            return self._start_recv(ch)
        if self.state == ST_WAITING:
            if not self.fut.done():
                return self._yield()       # resumed early by someone calling send(): wait on
            self._abandon()                # our future was cancelled but no throw() came
            raise _CancelledError()
        if self.state == ST_GRANTED:
            self.state = ST_DONE
            self.handle = None
            if self.kind == OP_SEND:
                ch.reserved -= 1
                v = self.value
                self.value = None
                ch._deliver(v)
                return None
            self.value = _new_permit(ch)   # the grant becomes the caller's permit
            return None
        if self.state == ST_HANDED:
            self.state = ST_DONE
            return None
        if self.state == ST_CLOSED:
            self.state = ST_DONE
            self.value = None
            h = self.handle
            self.handle = None
            self._raise_closed(ch, h)
        raise RuntimeError("a channel operation can be awaited only once")

    cdef inline object _start_send(self, _Chan ch):
        if self.handle.closed or ch.rx_closed:
            self.state = ST_DONE
            self.value = None
            h = self.handle
            self.handle = None
            self._raise_closed(ch, h)
        if ch._can_send_now():
            self.state = ST_DONE
            self.handle = None             # no endpoint <-> cached op cycle once finished
            if self.kind == OP_SEND:
                v = self.value
                self.value = None
                ch._deliver(v)
            else:
                ch.reserved += 1
                self.value = _new_permit(ch)
            return None
        r = self._wait(ch)                 # first: it may raise (no loop, another loop)
        ch._compact(ch.send_waiters)
        ch.send_waiters.append(self)
        ch.n_send_waiting += 1
        return r

    cdef inline object _start_recv(self, _Chan ch):
        if ch.count:
            self.state = ST_DONE
            self.value = ch._pop()
            if ch.n_send_waiting:
                ch._grant()
            return None
        if ch._at_end():
            self.state = ST_DONE
            self._raise_closed(ch, None)
        r = self._wait(ch)                 # first: it may raise (no loop, another loop)
        ch._compact(ch.recv_waiters)
        ch.recv_waiters.append(self)
        ch.n_recv_waiting += 1
        if ch.n_send_waiting:
            ch._grant()                    # rendezvous: a waiting receiver is room for one sender
        return r

    cdef object _wait(self, _Chan ch):
        # The future to wait on; called before the operation is registered as a waiter.
        self.state = ST_DONE               # if this raises, the operation ran (and failed)
        loop = _get_running_loop()
        if loop is not ch.home.loop:
            ch.home.check_loop(loop, self.__qualname__ + "()", ch._idle())
        self.fut = loop.create_future()
        self.state = ST_WAITING
        return self._yield()

    cdef object _yield(self):
        fut = self.fut
        fut._asyncio_future_blocking = True
        return fut

    cdef void _raise_closed(self, _Chan ch, _SenderBase h) except *:
        if self.kind == OP_ANEXT:
            raise StopAsyncIteration
        if self.kind == OP_RECV:
            raise Closed("channel closed: every sender is closed and the buffer is empty"
                         if not ch.rx_closed else "channel closed: the receiver is closed")
        if h is not None and h.closed:
            raise Closed("send on a closed sender")
        raise Closed("send on a channel whose receiver is closed")

    cdef void _abandon(self) except *:
        cdef _Chan ch = self.chan
        cdef int state = self.state
        self.state = ST_DONE
        self.handle = None
        self.rx = None
        if self.fut is not None and not self.fut.done():
            self.fut.cancel()
        if state == ST_WAITING:
            if self.kind <= OP_RESERVE:
                ch.n_send_waiting -= 1
            else:
                ch.n_recv_waiting -= 1
        elif state == ST_GRANTED:
            ch._release()
        elif state == ST_HANDED:
            v = self.value
            self.value = None
            ch._give_back(v)
        elif state == ST_NEW and self.kind == OP_SEND:
            self.value = None


cdef int _op_am_send(PyObject* self, PyObject* arg, PyObject** result) except -1:
    # 0 (PYGEN_RETURN) with the result, 1 (PYGEN_NEXT) with the future to yield, -1 on error.
    cdef _ChanOp op = <_ChanOp>self
    cdef object r = op._step()
    if r is None:
        r = op.value
        op.value = None
        Py_INCREF(r)
        result[0] = <PyObject*>r
        return 0
    Py_INCREF(r)
    result[0] = <PyObject*>r
    return 1


(<_TypeWithAsync*><PyObject*>_ChanOp).tp_as_async.am_send = _op_am_send


cdef inline _ChanOp _new_op(_Chan ch, _SenderBase handle, Receiver rx, object value, int kind):
    cdef _ChanOp op = _ChanOp.__new__(_ChanOp)
    op.chan = ch
    op.handle = handle
    op.rx = rx
    op.value = value
    op.kind = kind
    if ch.track:
        op.origin = _capture_origin()
    return op


cdef inline void _reclaim(PyObject* cached) except *:
    # An operation that holds a handed value or a grant and that nobody but its endpoint refers to
    # was abandoned without close() (its task -- whose own coroutine it was -- was destroyed while
    # pending).  Deallocation would give the value/slot back; the endpoint's reference delays that,
    # so the endpoint does it whenever it next looks at the channel.
    # `cached` is borrowed (a PyObject*), so no temporary reference inflates the count.
    cdef _ChanOp op
    if cached != <PyObject*>None and _refcnt(cached) == 1:
        op = <_ChanOp>cached
        if op.state == ST_HANDED or op.state == ST_GRANTED:
            op._abandon()


cdef inline _ChanOp _reset_op(_ChanOp op, _SenderBase handle, object value, int kind):
    # An endpoint keeps its last operation object once it has been awaited (_step).  When nothing
    # but the endpoint refers to it any more (refcount 1: the await finished and the caller dropped
    # it; the callers check that on the attribute itself, so no temporary reference is counted),
    # the endpoint lets go of it, and it is reset and handed out again: invisible to everyone, and
    # it saves an allocation, a GC track/untrack and a deallocation.  The caller then holds the
    # only reference until it awaits the operation, so one that is dropped un-awaited is freed at
    # once and warns then, as a coroutine does.  (Never ST_NEW here: the endpoint only keeps
    # operations that were stepped.)  A receive's caller then sets op.rx; a send's is None already
    # (cleared at its first step), which saves a store on the sending hot path.
    if op.state == ST_HANDED or op.state == ST_GRANTED:
        op._abandon()                  # its task was destroyed before resuming: see _reclaim
    if op.chan.track:
        op.origin = _capture_origin()
    op.state = ST_NEW
    op.kind = kind
    op.value = value
    op.handle = handle
    op.fut = None
    return op


collections.abc.Coroutine.register(_ChanOp)


# ---- permits ------------------------------------------------------------------------------------

@cython.final
cdef class Permit:
    """A reserved slot in a bounded channel, from ``await tx.reserve()``.

    ``permit.send(v)`` puts ``v`` into the channel at once and cannot fail: the room was taken when
    the permit was granted, so a task cancelled while waiting for room never holds an item it could
    lose.  An unused permit gives its slot back on ``release()`` or when it is collected.

        permit = await tx.reserve()      # may wait; cancellation-safe
        permit.send(make_item())         # synchronous, never blocks, never fails
    """
    cdef _Chan chan

    def __init__(self):
        raise TypeError("permits come from Sender.reserve()")

    def send(self, value) -> None:
        """Put ``value`` into the channel, using this permit's slot (once)."""
        cdef _Chan ch = self.chan
        if ch is None:
            raise asyncio.InvalidStateError("this permit was already used")
        ch.check("Permit.send()")
        self.chan = None
        ch.reserved -= 1
        ch._deliver(value)

    def release(self) -> None:
        """Give the slot back without sending (idempotent)."""
        cdef _Chan ch = self.chan
        if ch is not None:
            ch.check("Permit.release()")
            self.chan = None
            ch._release()

    def __dealloc__(self):
        cdef _Chan ch = self.chan
        if ch is not None:
            self.chan = None
            try:
                ch._release()      # no thread check: collection may happen in any thread
            except BaseException:
                pass

    def __repr__(self):
        return f"<Permit {'used' if self.chan is None else 'held'}>"


cdef Permit _new_permit(_Chan ch):
    cdef Permit p = Permit.__new__(Permit)
    p.chan = ch
    return p


# ---- endpoints ----------------------------------------------------------------------------------

cdef class _SenderBase:
    cdef _Chan chan
    cdef readonly bint closed
    cdef object _op                # the last operation object, for _reuse_op

    def __init__(self):
        raise TypeError(f"{type(self).__name__} objects come from channel()/unbounded_channel()")

    def close(self) -> None:
        """Close this sender (idempotent).  Once every sender is closed and the buffer is drained,
        the receiver sees the end of the stream.  Sends already waiting on this sender fail with
        Closed; a slot already granted (a Permit) stays usable.  Called from another thread while
        the channel's loop runs, the close is handed to that loop (and done soon after)."""
        if not self.closed:
            if self.chan.home.handed_over(self.close):
                return
            self.chan.check(f"{type(self).__name__}.close()")
            self.closed = True
            _reclaim(<PyObject*>self._op)
            self.chan._sender_closed(self)

    def is_closed(self) -> bool:
        """True when this sender is closed or the receiver is."""
        return self.closed or self.chan.rx_closed

    def clone(self):
        """A new sender on the same channel, closed separately."""
        if self.closed:
            raise Closed("cannot clone a closed sender")
        cdef _SenderBase other = type(self).__new__(type(self))
        other.chan = self.chan
        self.chan.n_senders += 1
        return other

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info):
        self.close()

    def __del__(self):
        if not self.closed and self.chan is not None:
            _warn_unclosed(self)
            try:
                if self.chan.home.handed_over(self.close):
                    return                 # collected in another thread: closed on the loop
            except BaseException:
                pass
            self.closed = True
            try:
                self.chan._sender_closed(self)
            except BaseException:
                pass


@cython.final
cdef class Sender(_SenderBase):
    """The sending half of a bounded channel (see ``channel``)."""

    @property
    def capacity(self) -> int:
        return self.chan.cap

    def send(self, value):
        """Send ``value``, waiting for room (or, with capacity 0, for a receiver).  Awaitable.

        Raises Closed if this sender or the receiver is closed.  If the await is cancelled, the
        value was not sent.
        """
        self.chan.check("Sender.send()")
        if self._op is not None and _refcnt(<PyObject*>self._op) == 1:
            op = self._op
            self._op = None                # the caller's alone until awaited (_reset_op)
            return _reset_op(<_ChanOp>op, self, value, OP_SEND)
        return _new_op(self.chan, self, None, value, OP_SEND)

    def blocking_send(self, value) -> None:
        """Send ``value`` from synchronous code in another thread, blocking until it is sent.

        The send runs on the channel's event loop (handed over with ``loop.call_soon_threadsafe``);
        its outcome is this call's: it raises Closed if the channel is closed.  Raises RuntimeError
        when called from a thread that runs an event loop (it would block it; await ``send``), or
        before the channel is bound to a loop.  If the loop never runs the send, this blocks.
        """
        return _run_blocking(self.chan.home.blocking_loop("Sender.blocking_send()"),
                             _send_coro(self, value))

    def try_send(self, value) -> None:
        """Send ``value`` now, or raise Full (no room) or Closed."""
        cdef _Chan ch = self.chan
        ch.check("Sender.try_send()")
        if self.closed:
            raise Closed("send on a closed sender")
        if ch.rx_closed:
            raise Closed("send on a channel whose receiver is closed")
        if not ch._can_send_now():
            raise Full("channel is full")
        ch._deliver(value)

    def reserve(self):
        """Wait for room and return a Permit holding it.  Awaitable; cancellation-safe."""
        self.chan.check("Sender.reserve()")
        if self._op is not None and _refcnt(<PyObject*>self._op) == 1:
            op = self._op
            self._op = None                # the caller's alone until awaited (_reset_op)
            return _reset_op(<_ChanOp>op, self, None, OP_RESERVE)
        return _new_op(self.chan, self, None, None, OP_RESERVE)

    def try_reserve(self) -> Permit:
        """A Permit now, or raise Full or Closed."""
        cdef _Chan ch = self.chan
        ch.check("Sender.try_reserve()")
        if self.closed:
            raise Closed("reserve on a closed sender")
        if ch.rx_closed:
            raise Closed("reserve on a channel whose receiver is closed")
        if not ch._can_send_now():
            raise Full("channel is full")
        ch.reserved += 1
        return _new_permit(ch)

    def __repr__(self):
        return f"<Sender capacity={self.chan.cap}{' closed' if self.closed else ''}>"


@cython.final
cdef class UnboundedSender(_SenderBase):
    """The sending half of an unbounded channel (see ``unbounded_channel``)."""

    def send(self, value) -> None:
        """Send ``value`` now (never waits).  Raises Closed if this sender or the receiver is closed."""
        cdef _Chan ch = self.chan
        ch.check("UnboundedSender.send()")
        if self.closed:
            raise Closed("send on a closed sender")
        if ch.rx_closed:
            raise Closed("send on a channel whose receiver is closed")
        ch._deliver(value)

    def blocking_send(self, value) -> None:
        """Send ``value`` from synchronous code in another thread: it is handed to the channel's
        event loop, and this call returns once the loop has sent it (raising Closed if the channel
        is closed).  RuntimeError from a thread that runs an event loop; there call ``send``."""
        return _run_blocking(self.chan.home.blocking_loop("UnboundedSender.blocking_send()"),
                             _send_now_coro(self, value))

    def try_send(self, value) -> None:
        """The same as ``send`` (which never waits): for code written against ``Sender``."""
        self.send(value)

    def __repr__(self):
        return f"<UnboundedSender{' closed' if self.closed else ''}>"


@cython.final
cdef class Receiver:
    """The receiving half of an mpsc channel.  ``async for value in rx`` reads to the end of the
    stream; ``async with rx`` closes it on exit."""
    cdef _Chan chan
    cdef readonly bint closed
    cdef object _op                # the last operation object, for _reuse_op

    def __init__(self):
        raise TypeError("Receiver objects come from channel()/unbounded_channel()")

    def recv(self):
        """The next value, waiting for one.  Awaitable.

        Raises Closed at the end of the stream.  If the await is cancelled, no value was consumed.
        """
        self.chan.check("Receiver.recv()")
        if self._op is not None and _refcnt(<PyObject*>self._op) == 1:
            op = self._op
            self._op = None                # the caller's alone until awaited (_reset_op)
            op = _reset_op(<_ChanOp>op, None, None, OP_RECV)
            (<_ChanOp>op).rx = self
            return op
        return _new_op(self.chan, None, self, None, OP_RECV)

    def blocking_recv(self):
        """The next value, from synchronous code in another thread, blocking until one comes.

        The receive runs on the channel's event loop (handed over with
        ``loop.call_soon_threadsafe``).  Raises Closed at the end of the stream, RuntimeError when
        called from a thread that runs an event loop (await ``recv``) or before the channel is
        bound to a loop.
        """
        return _run_blocking(self.chan.home.blocking_loop("Receiver.blocking_recv()"),
                             _recv_coro(self))

    def try_recv(self):
        """The next value now, or raise Empty (none ready) or Closed (end of the stream)."""
        cdef _Chan ch = self.chan
        ch.check("Receiver.try_recv()")
        _reclaim(<PyObject*>self._op)
        if ch.count:
            v = ch._pop()
            if ch.n_send_waiting:
                ch._grant()
            return v
        if ch._at_end():
            raise Closed("channel closed: every sender is closed and the buffer is empty"
                         if not ch.rx_closed else "channel closed: the receiver is closed")
        raise Empty("channel is empty")

    def close(self) -> None:
        """Refuse further sends (waiting and later senders get Closed); values already buffered,
        and slots already granted to senders, can still be received.  Idempotent.  Called from
        another thread while the channel's loop runs, the close is handed to that loop."""
        if not self.closed:
            if self.chan.home.handed_over(self.close):
                return
            self.chan.check("Receiver.close()")
            self.closed = True
            _reclaim(<PyObject*>self._op)
            self.chan._receiver_closed()

    def is_closed(self) -> bool:
        """True once the stream has ended for good: closed (or every sender gone) and drained."""
        return self.chan._at_end()

    @property
    def capacity(self):
        """The buffer size (None for an unbounded channel)."""
        return None if self.chan.unbounded else self.chan.cap

    def __len__(self):
        return self.chan.count

    def __aiter__(self):
        return self

    def __anext__(self):
        self.chan.check("Receiver.__anext__()")
        if self._op is not None and _refcnt(<PyObject*>self._op) == 1:
            op = self._op
            self._op = None                # the caller's alone until awaited (_reset_op)
            op = _reset_op(<_ChanOp>op, None, None, OP_ANEXT)
            (<_ChanOp>op).rx = self
            return op
        return _new_op(self.chan, None, self, None, OP_ANEXT)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info):
        self.close()

    def __del__(self):
        if not self.closed and self.chan is not None:
            if not self.chan._at_end():    # drained to the end of the stream: nothing was left
                _warn_unclosed(self)
            try:
                if self.chan.home.handed_over(self.close):
                    return                 # collected in another thread: closed on the loop
            except BaseException:
                pass
            self.closed = True
            try:
                self.chan._receiver_closed()
            except BaseException:
                pass

    def __repr__(self):
        return f"<Receiver buffered={self.chan.count}{' closed' if self.closed else ''}>"


async def _send_coro(tx, value):
    await tx.send(value)


async def _send_now_coro(tx, value):
    tx.send(value)


async def _recv_coro(rx):
    return await rx.recv()


def channel(capacity):
    """A bounded multi-producer, single-consumer channel: ``(Sender, Receiver)``.

    ``capacity`` values can be buffered; ``await tx.send(v)`` waits while the buffer is full.
    Capacity 0 makes a rendezvous channel: a send completes only when a receiver takes the value.
    Waiting senders and receivers are served in FIFO order.

        tx, rx = pyloop.sync.channel(100)
        async with tx:
            await tx.send("hello")
        async for item in rx:        # ends when every sender is closed and the buffer is drained
            print(item)
    """
    cdef Py_ssize_t cap = _check_capacity(capacity, True)
    cdef _Chan ch = _Chan(cap, False)
    cdef Sender tx = Sender.__new__(Sender)
    cdef Receiver rx = Receiver.__new__(Receiver)
    tx.chan = ch
    rx.chan = ch
    ch.n_senders = 1
    ch.track = _tracking_origins()
    ch.home = _new_home()
    return tx, rx


def unbounded_channel():
    """An unbounded multi-producer, single-consumer channel: ``(UnboundedSender, Receiver)``.

    ``tx.send(v)`` never waits (memory is the limit); the receiver is the same as ``channel``'s.

        tx, rx = pyloop.sync.unbounded_channel()
        tx.send(1)
        assert await rx.recv() == 1
    """
    cdef _Chan ch = _Chan(0, True)
    cdef UnboundedSender tx = UnboundedSender.__new__(UnboundedSender)
    cdef Receiver rx = Receiver.__new__(Receiver)
    tx.chan = ch
    rx.chan = ch
    ch.n_senders = 1
    ch.track = _tracking_origins()
    ch.home = _new_home()
    return tx, rx
