# Layouts of the callback handles and of the loop base they report to.

cdef class Handle
cdef class TimerHandle


cdef class LoopCore:
    """C-level base of the Loop: what handles need from their loop."""
    cdef bint _debug
    cdef void _on_timer_cancelled(self, TimerHandle timer) noexcept


# readonly: the attributes of asyncio's handles that code in the wild reads
# (aiohttp's tests read a TimerHandle's _when, debuggers _callback).
cdef class Handle:
    cdef readonly object _callback
    cdef readonly object _args          # tuple
    cdef object _context       # contextvars.Context; None: an empty one, made when run
    cdef readonly object _loop
    cdef readonly bint _cancelled
    # Run many times (fd watchers): keeps its callback after running.
    cdef bint _persistent
    cdef object _repr
    cdef public object _source_traceback
    cdef object __weakref__

    cdef int run_callback(self) except -1
    cdef int _cancel(self) except -1
    cdef void _forget(self) noexcept
    cdef void _report_exception(self, object exc)


cdef class TimerHandle(Handle):
    cdef readonly double _when
    # True while the timer heap holds a reference to this handle.
    cdef readonly bint _scheduled


cdef object copy_current_context()
cdef Handle new_handle(object loop, object callback, object args, object context)
cdef TimerHandle new_timer_handle(object loop, double when, object callback,
                                  object args, object context)
