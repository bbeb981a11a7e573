# Layout of the loop core.
from libc.stdint cimport int64_t, uint32_t
from cpython.object cimport PyObject

from pyloop._core.includes.core cimport (pl_reactor_t, pl_event_t, pl_ready_queue_t,
                                         pl_timer_heap_t, pl_wakeup_t, pl_metrics_t)
from pyloop._core.handles cimport LoopCore, Handle, TimerHandle


cdef struct FdWatch:
    PyObject *reader     # owned reference to a Handle, or NULL
    PyObject *writer     # owned reference to a Handle, or NULL
    PyObject *reader_obj  # owned: the file object add_reader was given (NULL for an fd number)
    PyObject *writer_obj  # the same for add_writer; see _registered_fd in loop_fds.pxi
    uint32_t events      # interest registered with the reactor (PL_EV_*)
    uint32_t token       # generation of the registration, see loop_fds.pxi
    uint32_t recv_hint   # bytes the fd's last sock_recv brought (loop_sock_io.pxi)
    bint internal        # the loop's own wakeup fd


cdef class BaseLoop(LoopCore):
    cdef pl_reactor_t *reactor
    cdef pl_ready_queue_t ready
    cdef pl_ready_queue_t graveyard   # handles dropped by the heap, to decref
    cdef pl_timer_heap_t timers
    cdef pl_wakeup_t wakeup
    cdef pl_event_t *events
    cdef int max_events
    cdef FdWatch *watches
    cdef int watches_len
    cdef uint32_t next_token
    cdef int64_t last_poll_ns
    # Blocked in pl_reactor_wait without the GIL -- or, between run_nowait()
    # steps, a host may be blocked on backend_fd() (see loop_embed.pxi).
    cdef bint waiting
    cdef bint wakeup_pending  # a thread already signalled this wait
    cdef bint _forked        # a copy inherited through fork(): hands off the kernel object
    cdef bint resources_ready

    # The clock (see "Virtual time" in loop_clock.pxi): loop time is the
    # monotonic clock plus clock_offset_ns, or clock_virtual_ns while paused.
    cdef bint clock_paused
    cdef bint clock_auto_advance
    cdef int64_t clock_offset_ns
    cdef int64_t clock_virtual_ns
    cdef int clock_holds     # blocking calls in flight: no auto-advance

    # readonly: asyncio's BaseEventLoop has a _closed that code in the wild
    # reads (uvloop's test_base.py); the same flag as is_closed().
    cdef readonly bint _closed
    cdef bint _stopping
    cdef object _thread_id
    cdef object _task_factory
    cdef int _pid
    cdef bint _coroutine_origin_tracking_enabled
    cdef int _coroutine_origin_tracking_saved_depth
    cdef public double slow_callback_duration
    cdef public object _current_handle
    cdef public object _transports   # fd -> transport (weak values)
    # sock_* operations whose READ interest is parked (loop_sock.pxi): those
    # parked in this iteration, and in the previous one.
    cdef list _sock_parked
    cdef list _sock_parked_prev
    cdef object _run_frame   # the Python frame that called run_forever, while it runs
    # Counters of the iteration for pyloop.monitor (csrc/pl_metrics.h), written
    # in the steps of loop_iteration.pxi; read through pyloop/_core/metrics.py.
    # A block of its own (pl_metrics_new), allocated first and freed last:
    # readable for as long as the loop object lives, closed or not.
    cdef pl_metrics_t *metrics

    cdef int _check_closed(self) except -1
    cdef int _check_not_forked(self) except -1
    cdef int _check_thread(self) except -1
    cdef int _check_callback(self, object callback, str method) except -1
    cdef Handle _call_soon(self, object callback, object args, object context)
    cdef TimerHandle _call_at(self, double when, object callback, object args,
                              object context)
    cdef int _push_ready(self, Handle handle) except -1
    cdef _add_watcher(self, object fileobj, object callback, object args,
                      bint writer, str method, object context=*)
    cdef _remove_watcher(self, object fileobj, bint writer)
    cdef int _release_resources(self) except -1
