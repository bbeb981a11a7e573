# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
# cython: always_allow_keywords=False, binding=False
"""Channels for pyloop.sync: mpsc (bounded, rendezvous, unbounded), oneshot, broadcast, watch.

They run on any asyncio loop.  Waiters are futures of the running loop (``loop.create_future()``), so
the only loop services used are futures and task wake-ups; on pyloop those are cheap, on stock asyncio
they cost what they cost there.

Why the mpsc operations are not ``async def``
--------------------------------------------
``tx.send(v)`` and ``rx.recv()`` return a small object (``_ChanOp``) that implements the coroutine
protocol by hand (``__await__`` returns itself; ``send``/``throw``/``close``, plus the ``am_send`` slot
that ``await`` calls first).  When the operation can complete at once -- the common case in a busy
pipeline -- the first ``am_send`` does the work and returns the result directly: no StopIteration, no
future, no trip through the loop.  Each endpoint also keeps its last awaited operation object and hands it
out again once nobody else refers to it, so a steady send+recv stream allocates nothing.  Only an operation
that must wait creates a future (``loop.create_future()`` of the running loop) and yields it to the
task.  The objects pass ``asyncio.iscoroutine`` (collections.abc.Coroutine), so
``asyncio.create_task(rx.recv())``, ``wait_for`` and ``TaskGroup.create_task`` accept them.

Like a coroutine, an operation that is never awaited (nor closed) warns ``RuntimeWarning: channel
operation Sender.send() was never awaited``: an un-awaited ``tx.send(v)`` did not send ``v``.  It
warns when it is collected, which is as soon as the caller drops it: the endpoint takes its own
reference to an operation object only when the object is first awaited, so until then the caller's
is the only one.  Channels created while tracemalloc traces or coroutine origins are tracked
(asyncio debug mode, ``-X dev``) record where each operation was created and add that to the warning.

Measured (``bench/compare.py --group toolbox``, the ``toolbox`` table of bench/RESULTS.md): a producer
task -> consumer task item through ``channel(1024)`` costs ~150 ns on a pyloop loop against ~900 ns for
``asyncio.Queue(1024)`` (callgrind: ~1,620 instructions per item, since an operation object is handed
to its caller until the first await so that dropping it un-awaited warns at once).

Cancellation: what a CancelledError means
-----------------------------------------
* from ``send``/``reserve``: the item was NOT sent (and no slot is held);
* from ``recv``: NO item was consumed.

Items only move when the task that owns them runs, with one exception, and each side is built on that:

* A waiting sender is woken with a *grant*: a slot of the buffer reserved for it (``reserved``).  It
  puts its item into the buffer only when it resumes.  If it is cancelled first, it hands the grant to
  the next waiting sender (or frees the slot): the item never left the sender.  A grant is exactly a
  ``Permit``; ``reserve()`` simply returns it to the caller.
* A waiting receiver is handed the value directly (the exception: the sender is running, the receiver
  is not).  If the receiver is cancelled (or its coroutine closed or collected) before it resumes, it
  gives the value back to the FRONT of the channel: to the next waiting receiver, else to the head of
  the buffer.  So the order is kept and nothing is lost or duplicated.  A give-back can leave the buffer
  briefly above capacity; senders just wait a little longer.

Rendezvous (capacity 0): a sender proceeds only when a receiver is waiting, and hands it the value; a
receiver that finds no value registers, which grants the first waiting sender, which then hands over.
So ``send`` returns once a receiver holds the value, and ``try_recv`` never takes from a sender that
is not running (it sees only values already handed over).

End of stream: the receiver sees ``Closed`` when the buffer is empty, no grant/permit is outstanding,
and either it was closed or every sender is closed.  A sender (or receiver) collected while still open
emits ResourceWarning and is then closed, as Tokio's drop does, so a forgotten sender cannot hang the
receiver forever.  A receiver that reached the end of the stream (every sender closed, nothing left to
receive) is not warned about: ``async for item in rx`` needs no ``close()``.
"""

cimport cython
from cpython.pythread cimport PyThread_get_thread_ident
from cpython.exc cimport PyErr_SetObject
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_Check

cdef extern from "Python.h":
    # Ring slots are written with the list macros and explicit references (no bounds checks: the
    # index is always masked to the list's length).
    PyObject* _list_get "PyList_GET_ITEM"(object, Py_ssize_t)
    void _list_set "PyList_SET_ITEM"(object, Py_ssize_t, PyObject*)
    void _decref "Py_DECREF"(PyObject*)
    Py_ssize_t _refcnt "Py_REFCNT"(PyObject*)
    # am_send (3.10+): lets `await` finish an operation by returning its result, with no
    # StopIteration set and fetched (PyIter_Send prefers it to tp_iternext).
    ctypedef int (*_sendfunc "sendfunc")(PyObject*, PyObject*, PyObject**) except -1
    ctypedef struct _AsyncMethods "PyAsyncMethods":
        _sendfunc am_send
    ctypedef struct _TypeWithAsync "PyTypeObject":
        _AsyncMethods* tp_as_async

import asyncio
import collections
import collections.abc
import sys
import traceback
import tracemalloc
import warnings

from asyncio import _get_running_loop as _running_loop_or_none
from asyncio import get_running_loop as _get_running_loop

cdef object _deque = collections.deque
cdef object _CancelledError = asyncio.CancelledError


# ---- exceptions ---------------------------------------------------------------------------------

class Closed(Exception):
    """The other side of the channel is closed (or this endpoint is).

    Raised by a send when the receiver is closed, and by a receive at the end of the stream: every
    sender closed and every buffered value received.
    """


class Full(asyncio.QueueFull):
    """``try_send`` found no room in the channel's buffer (nor a waiting receiver)."""


class Empty(asyncio.QueueEmpty):
    """``try_recv`` found no value ready."""


class Lagged(Exception):
    """A broadcast receiver fell behind by more than the channel's capacity.

    ``skipped`` is the number of values it missed; the next receive continues from the oldest value
    the channel still holds.
    """

    def __init__(self, skipped):
        super().__init__(f"receiver lagged behind and skipped {skipped} value(s)")
        self.skipped = skipped


cdef inline void _set_stop(object value) noexcept:
    # The await's result.  A bare value is taken as StopIteration's value without building the
    # exception (see _PyGen_FetchStopIterationValue); a tuple would be unpacked as arguments, so it
    # is wrapped.  The caller then does a bare `raise StopIteration`, which Cython compiles to a
    # plain `return NULL` from __next__, keeping this error and adding no traceback.
    if PyTuple_Check(value) or isinstance(value, BaseException):
        value = StopIteration(value)
    PyErr_SetObject(StopIteration, value)


cdef object _make_exc(object typ, object val, object tb):
    # The exception `throw(typ, val, tb)` asks for, as generators interpret those arguments.
    if isinstance(typ, BaseException):
        exc = typ
    elif val is None:
        exc = typ()
    elif isinstance(val, BaseException):
        exc = val
    else:
        exc = typ(val)
    if tb is not None:
        exc = exc.with_traceback(tb)
    return exc


cdef inline Py_ssize_t _check_capacity(object capacity, bint allow_zero) except -1:
    if isinstance(capacity, bool) or not isinstance(capacity, int):
        raise TypeError(f"capacity must be an int, not {type(capacity).__name__}")
    if capacity < (0 if allow_zero else 1):
        raise ValueError(f"capacity must be >= {0 if allow_zero else 1}, got {capacity}")
    if capacity > (1 << 40):
        raise ValueError(f"capacity {capacity} is too large")
    return capacity


cdef inline void _warn_unclosed(object obj) noexcept:
    try:
        warnings.warn(f"unclosed {type(obj).__name__} {obj!r}", ResourceWarning, source=obj)
    except BaseException:
        pass   # -W error turns it into an exception; a finalizer must not raise


cdef bint _tracking_origins() noexcept:
    # Whether operations record where they were created, for the never-awaited warning: while
    # tracemalloc traces, or coroutines record their origin (asyncio debug mode, -X dev).  Checked
    # once per channel (at its creation), never per operation.
    try:
        return tracemalloc.is_tracing() or sys.get_coroutine_origin_tracking_depth() > 0
    except BaseException:
        return False


cdef object _capture_origin():
    # The creation site of an operation: the Python frames above the Cython call that made it.
    cdef int limit = tracemalloc.get_traceback_limit() if tracemalloc.is_tracing() else 0
    limit = max(limit, sys.get_coroutine_origin_tracking_depth(), 1)
    return traceback.extract_stack(limit=limit)


cdef void _warn_never_awaited(str what, str lost, object origin) noexcept:
    # Like CPython's "coroutine ... was never awaited": an operation collected without ever being
    # awaited did nothing.  Never raises: it runs from deallocation, possibly during interpreter
    # shutdown.
    try:
        msg = f"channel operation {what}() was never awaited{lost}"
        if origin is not None:
            msg += ("\nOperation created at (most recent call last)\n"
                    + "".join(traceback.format_list(origin)).rstrip())
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
    except BaseException:
        pass   # -W error, or the interpreter is shutting down: a finalizer must not raise


# ---- the loop an endpoint belongs to ------------------------------------------------------------
# A channel is bound to one thread and one event loop: the running loop when it is created, else the
# first one that uses it.  Its state is not locked, and its waiters are futures of that loop, so using
# it from another thread (or another loop) would race and lose wake-ups; that is refused in every mode
# with RuntimeError.  Synchronous code in another thread uses blocking_send()/blocking_recv().  A
# channel moves on to a new loop (and its thread) only once its loop has stopped and nothing waits on
# it: then no future of the old loop is left to resolve, so loops run in turn can share a channel.

@cython.final
cdef class _Home:
    """The thread and loop a channel is bound to (unbound: thread 0, loop None)."""
    cdef unsigned long thread
    cdef object loop

    cdef inline bint ours(self):
        # The fast test of check(): this thread, and a loop known.
        return self.thread == <unsigned long>PyThread_get_thread_ident() and self.loop is not None

    cdef inline int check(self, str what, bint idle) except -1:
        # Cheap on the common path: one thread-id compare (plus one pointer compare).  `idle`: no
        # operation of the channel waits.
        if self.thread != <unsigned long>PyThread_get_thread_ident() or self.loop is None:
            self._bind(what, idle)
        return 0

    cdef int _bind(self, str what, bint idle) except -1:
        cdef unsigned long me = <unsigned long>PyThread_get_thread_ident()
        if self.thread == 0:
            self.thread = me
        elif self.thread != me and idle and self.loop is not None and not self.loop.is_running():
            self.thread = me                    # its loop is gone: the channel moves on
            self.loop = None
        elif self.thread != me:
            raise RuntimeError(
                f"{what} used from thread {me}, but the channel belongs to thread {self.thread}"
                f"{'' if self.loop is None else ' and its event loop ' + repr(self.loop)}: channels"
                " are not thread-safe.  From synchronous code in another thread use"
                " blocking_send()/blocking_recv(), or hand the call to the channel's loop with"
                " loop.call_soon_threadsafe()")
        if self.loop is None:
            self.loop = _running_loop_or_none()
        return 0

    cdef bint handed_over(self, object call) except -1:
        # From a thread other than the channel's, while its loop runs: schedule `call` there.
        if (self.thread == 0 or self.thread == <unsigned long>PyThread_get_thread_ident()
                or self.loop is None or not self.loop.is_running()):
            return False
        self.loop.call_soon_threadsafe(call)
        return True

    cdef int check_loop(self, object loop, str what, bint idle) except -1:
        # A wait: the running loop must be the channel's (bound now if it had none, or if its old
        # loop stopped and nothing else waits).
        if loop is not self.loop:
            if self.loop is None or (idle and not self.loop.is_running()):
                self.loop = loop
            else:
                raise RuntimeError(
                    f"{what} awaited on {loop!r}, but the channel is bound to a different event"
                    f" loop, {self.loop!r}.  Create the channel on the loop that uses it, or hand"
                    " the call to its loop with loop.call_soon_threadsafe()")
        return 0

    cdef object blocking_loop(self, str what):
        # The loop a blocking_* call hands its operation to, or raise.
        if _running_loop_or_none() is not None:
            raise RuntimeError(
                f"{what} called from a thread that runs an event loop: it would block the loop."
                "  Await the asynchronous operation instead")
        if self.loop is None:
            raise RuntimeError(
                f"{what}: the channel is not bound to an event loop yet.  Create it in a"
                " coroutine running on the loop that uses it (or use it there first)")
        if self.thread == <unsigned long>PyThread_get_thread_ident():
            raise RuntimeError(
                f"{what} called from the thread of the channel's event loop: it would deadlock")
        return self.loop


cdef object _run_blocking(object loop, object coro):
    # Run `coro` as a task of `loop` (another thread's) and wait for its outcome here.  If this
    # wait is interrupted (KeyboardInterrupt), the task is cancelled: per the cancellation rules
    # the value was then not sent / not received, unless the operation had already completed.
    try:
        fut = asyncio.run_coroutine_threadsafe(coro, loop)
    except BaseException:
        coro.close()
        raise
    try:
        return fut.result()
    except BaseException:
        fut.cancel()
        raise


cdef _Home _new_home():
    cdef _Home h = _Home.__new__(_Home)
    h.loop = _running_loop_or_none()
    if h.loop is not None:
        h.thread = <unsigned long>PyThread_get_thread_ident()
    return h


include "_channels_mpsc.pxi"
include "_channels_waitop.pxi"
include "_channels_oneshot.pxi"
include "_channels_broadcast.pxi"
include "_channels_watch.pxi"
