# cython: language_level=3
"""Callback handles: what ``call_soon``/``call_later`` return.

``Handle`` and ``TimerHandle`` mirror ``asyncio.Handle``/``asyncio.TimerHandle``
(``cancel``, ``cancelled``, ``when``, ``get_context``, the same reprs) but are
C-level classes with freelists, so scheduling a callback allocates no Python
object beyond the handle itself, which comes from the freelist in steady state.

A handle runs its callback inside its ``contextvars.Context`` with
``PyContext_Enter``/``PyContext_Exit`` rather than ``Context.run``: the same
semantics without building a bound method and an argument tuple per call.

Empty contexts are made when needed, not copied up front.  asyncio copies the
caller's context for every callback scheduled without ``context=``.  When the
caller's context holds no variable, that copy is an empty context that only the
callback itself could ever fill, so the loop schedules the handle with no
context (``_context`` is None, see ``copy_current_context``) and the handle
runs in an empty context taken when it runs.  After the run, an empty context
that nothing else refers to is kept as the next one (``_spare_context``);
otherwise the handle keeps it, so ``get_context()`` returns the context the
callback ran in, as asyncio's does.  No context object then waits in the
queue: a thread that queues 100,000 callbacks no longer makes the cyclic GC
walk 100,000 pending contexts (contexts are GC-tracked, handles are not).
"""

cimport cython
from cpython.ref cimport PyObject, Py_REFCNT
from pyloop._core.includes.python cimport (PyContext_CopyCurrent, PyContext_Enter, PyContext_Exit,
                                           PyContext_New, PyContext_Type, PyThreadState_Get, lenfunc)

import sys
from asyncio import format_helpers as _format_helpers

_format_callback_source = _format_helpers._format_callback_source
_extract_stack = _format_helpers.extract_stack


# An empty context no one else refers to, ready for the next handle scheduled
# without one.  Taken (and put back) with the GIL held and no Python code
# running in between, so two loops in two threads never share it.
cdef object _spare_context = None


# len() of a Context, called through its type's slot: PyObject_Size's
# dispatch cost as much again as the count it returns, twice per callback.
cdef lenfunc _context_len = PyContext_Type.tp_as_mapping.mp_length


cdef object copy_current_context():
    """A copy of the current context, or None where it holds no variable."""
    cdef PyObject *current = PyThreadState_Get().context
    if current == NULL or _context_len(current) == 0:
        return None
    return PyContext_CopyCurrent()


cdef inline object _take_empty_context():
    global _spare_context
    context = _spare_context
    if context is None:
        return PyContext_New()
    _spare_context = None
    return context


cdef class LoopCore:
    """Base of ``pyloop.Loop`` known to the handles (internal)."""

    cdef void _on_timer_cancelled(self, TimerHandle timer) noexcept:
        pass


cdef Handle new_handle(object loop, object callback, object args, object context):
    cdef Handle h = Handle.__new__(Handle)
    h._callback = callback
    h._args = args
    h._context = context
    h._loop = loop
    return h


cdef TimerHandle new_timer_handle(object loop, double when, object callback,
                                  object args, object context):
    cdef TimerHandle h = TimerHandle.__new__(TimerHandle)
    h._callback = callback
    h._args = args
    h._context = context
    h._loop = loop
    h._when = when
    return h


# Handles are not tracked by the cyclic GC: allocating one per call_soon
# made the young-generation collector walk every pending handle (about 15%
# of a call_soon's cost).  That is safe because a handle only refers to its
# callback while the loop holds it: the loop drops the callback and its
# arguments when the handle has run (one-shot handles), is cancelled, or is
# discarded by close().  A cycle through a handle therefore exists only while
# the loop keeps the handle alive anyway.
#
# The freelist is sized for call_soon_threadsafe from a busy thread: the
# producer holds the GIL for a whole switch interval (5 ms) and queues ~50,000
# handles before the loop thread gets to run them.  With CPython's allocator
# those handles fill fresh arenas that are unmapped again when the batch has
# run, so every batch paid page faults and cold pools (going from 256 to
# 65,536: call_soon_threadsafe 203 -> 175 ns/op, medians of six processes of
# 500,000 calls; page faults 28,500 -> 11,500 per 3,000,000 calls).  The
# cost: a burst leaves up to 65,536 x 80 bytes (5 MiB) of handles kept for
# reuse.
@cython.no_gc
@cython.freelist(65536)
cdef class Handle:
    """A callback scheduled on the loop, as returned by ``loop.call_soon``.

    Compatible with :class:`asyncio.Handle`: ``cancel()``, ``cancelled()``,
    ``get_context()`` and the same ``repr``.
    """

    def __init__(self, callback, args, loop, context=None):
        import contextvars
        if context is None:
            context = contextvars.copy_context()
        self._callback = callback
        self._args = tuple(args) if args is not None else ()
        self._context = context
        self._loop = loop
        if loop is not None and loop.get_debug():
            self._source_traceback = _extract_stack(sys._getframe(1))

    def get_context(self):
        """Return the ``contextvars.Context`` the callback runs in."""
        if self._context is None:
            # Scheduled from an empty context: one that is still empty, or
            # that the callback left empty and referred to by no one.
            self._context = PyContext_New()
        return self._context

    def cancel(self):
        """Cancel the callback; a no-op if it already ran or was cancelled."""
        self._cancel()

    cdef int _cancel(self) except -1:
        if self._cancelled:
            return 0
        self._cancelled = True
        if isinstance(self._loop, LoopCore):
            debug = (<LoopCore>self._loop)._debug
        else:
            debug = self._loop is not None and self._loop.get_debug()
        if debug:
            # Keep the description of what was cancelled for debugging, since
            # the callback itself is dropped now.
            self._repr = repr(self)
        self._callback = None
        self._args = None
        return 0

    cdef void _forget(self) noexcept:
        """Drop the callback once the loop is done with this handle (see the
        no_gc note above)."""
        self._callback = None
        self._args = None

    def cancelled(self):
        """Return True if the callback was cancelled."""
        return self._cancelled

    def _repr_info(self):
        info = [type(self).__name__]
        if self._cancelled:
            info.append("cancelled")
        if self._callback is not None:
            info.append(_format_callback_source(self._callback, self._args))
        if self._source_traceback:
            frame = self._source_traceback[-1]
            info.append(f"created at {frame[0]}:{frame[1]}")
        return info

    def __repr__(self):
        if self._repr is not None:
            return self._repr
        return "<{}>".format(" ".join(self._repr_info()))

    def _run(self):
        """Run the callback now (asyncio-compatible private entry point)."""
        self.run_callback()

    cdef int run_callback(self) except -1:
        cdef object callback = self._callback
        cdef object args = self._args
        cdef object context = self._context
        cdef object error = None
        cdef bint fresh = context is None
        global _spare_context
        if fresh:
            context = _take_empty_context()
        PyContext_Enter(context)
        try:
            if args:
                callback(*args)
            else:
                callback()
        except BaseException as exc:
            error = exc
        PyContext_Exit(context)
        if fresh:
            # Only this frame refers to it and it is still empty: it is as
            # good as new.  Otherwise the handle keeps it for get_context().
            if Py_REFCNT(context) == 1 and _context_len(<PyObject *>context) == 0:
                if _spare_context is None:
                    _spare_context = context
            else:
                self._context = context
        if error is not None:
            if isinstance(error, (SystemExit, KeyboardInterrupt)):
                raise error
            self._report_exception(error)
        return 0

    cdef void _report_exception(self, object exc):
        # Called with no exception set; must not leak one.
        try:
            source = _format_callback_source(self._callback, self._args)
            context = {
                "message": f"Exception in callback {source}",
                "exception": exc,
                "handle": self,
            }
            if self._source_traceback:
                context["source_traceback"] = self._source_traceback
            self._loop.call_exception_handler(context)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException:
            pass


# No freelist here: Cython allows them only on base classes.
@cython.no_gc
cdef class TimerHandle(Handle):
    """A callback scheduled for a point in loop time, from ``call_later``/``call_at``.

    Compatible with :class:`asyncio.TimerHandle`: adds ``when()`` and ordering
    by deadline.
    """

    def __init__(self, when, callback, args, loop, context=None):
        super().__init__(callback, args, loop, context)
        self._when = when

    def when(self):
        """Return the loop time at which the callback is scheduled to run."""
        return self._when

    def cancel(self):
        """Cancel the timer; the loop forgets it without waiting for its deadline."""
        if self._cancelled:
            return
        if self._scheduled:
            if isinstance(self._loop, LoopCore):
                (<LoopCore>self._loop)._on_timer_cancelled(self)
            else:
                self._loop._timer_handle_cancelled(self)
        self._cancel()

    def _repr_info(self):
        info = Handle._repr_info(self)
        info.insert(2 if self._cancelled else 1, f"when={self._when}")
        return info

    def __hash__(self):
        return hash(self._when)

    def __richcmp__(self, other, int op):
        if not isinstance(other, TimerHandle):
            return NotImplemented
        cdef TimerHandle o = <TimerHandle>other
        if op == 0:
            return self._when < o._when
        if op == 1:
            return self._when < o._when or self is o or self == o
        if op == 4:
            return self._when > o._when
        if op == 5:
            return self._when > o._when or self is o or self == o
        equal = (self._when == o._when and self._callback == o._callback
                 and self._args == o._args and self._cancelled == o._cancelled)
        if op == 2:
            return equal
        return not equal
