# cython: language_level=3
"""The loop core: scheduling, timers and fd readiness, driven by csrc/.

``BaseLoop`` is one cdef class, and Cython cannot split a class body: this
file holds the class -- the lifetime of its C state, the thread rules,
scheduling, running -- and the parts it is built from are module-level cdef
functions taking the loop, one concern per file, included below:

* ``loop_iteration.pxi``: one iteration (``_run_once``) as a list of named
  steps -- poll timeout, ``_poll`` and fd dispatch, expire timers, run ready --
  and the busy-poll throttle;
* ``loop_timers.pxi``: deadlines, the timer heap's callbacks, the graveyard;
* ``loop_clock.pxi``: the loop's clock and virtual time (``pyloop.time.pause``),
  and the primitives behind ``clock.py``, the one door to them from above;
* ``loop_fds.pxi``: fd watches and their reactor registrations;
* ``loop_embed.pxi``: driving the loop from a host's event loop
  (``backend_fd``, ``backend_timeout``, ``run_nowait``: libuv's embedding API);
* ``loop_sock.pxi``: the ``sock_*`` coroutines (``loop.sock_recv``...), which
  wait on the fd watches with handles of their own; ``loop_sock_io.pxi``: the
  system calls they make on the fd;
* ``loop_metrics.pxi``: the counters the iteration keeps for ``pyloop.monitor``
  (read through ``metrics.py``, the seam) and the stall watch's primitives.

Ownership rules (the only tricky part of the loop core):

* the ready queue (a C ring) owns one reference to each queued Handle;
* the timer heap owns one reference to each TimerHandle in it; a timer moves
  from the heap to the ready queue with its reference;
* each ``FdWatch`` owns its reader and writer Handle.

Dropping a reference can run arbitrary Python code (a ``__del__`` of
something a handle's context kept alive), and that code may schedule more
timers.  The timer heap must not be re-entered while it is compacting, so the
heap's release callback does not decref: it parks the handle in
``graveyard`` and the loop empties the graveyard once the heap call returned.

Threads: who may touch what, and what keeps it alive
----------------------------------------------------
The C state of a loop -- the ready ring, the graveyard, the timer heap, the
``watches`` array, the reactor, its event buffer and the wakeup fds -- is
created in ``__cinit__`` and freed only by ``_release_resources`` (from
``close()`` or ``__dealloc__``), which clears ``resources_ready`` before it
frees anything.  The rules:

* Every touch of that state happens with the GIL held, with one exception:
  ``_poll`` waits in ``pl_reactor_wait`` without the GIL, reading the reactor
  and writing the event buffer.  Only the thread running the loop does that,
  and a running loop cannot be closed: ``run_forever`` claims the loop
  (``_thread_id``) and ``close()`` refuses while it is claimed.  The claim and
  ``close()``'s check-and-set of ``_closed`` each run no Python code between
  the test and the write, so the GIL serialises them: exactly one wins.
* Any thread may call in (``call_soon_threadsafe`` is the documented door, but
  ``call_soon``, ``call_later``, ``add_reader``... from a foreign thread must
  not crash either).  Any Python-level code -- a call, an allocation of a
  GC-tracked object (``PyContext_CopyCurrent``, a tuple), a decref -- can run
  a garbage collection, hence a ``__del__``, hence release the GIL and let
  another thread close the loop.  So ``_check_closed()`` at the top of a
  method proves nothing about the C state a few lines later.  The rule: the
  C call that touches loop state is preceded *immediately* by a test of
  ``resources_ready`` with no Python code in between (``_push_ready``, the
  heap push in ``_call_at``, ``_add_watcher`` before ``_watch_for``,
  ``_remove_watcher``, ``_on_timer_cancelled``, the wakeup write), and raises
  ``RuntimeError('Event loop is closed')``, as asyncio does, when it fails.
* The wakeup fd is written (``pl_wakeup_signal``) only with the GIL held, only
  after that test: close() closes the fd with the GIL held too, so a write
  can never land on a closed fd number, or on the number reused by a new loop
  or a file.  No nogil block signals it.
* What keeps a loop alive while a foreign thread is inside one of its methods
  is that thread's own reference (the bound method, ``self``): ``__dealloc__``
  cannot run while any method is on a stack.  ``__dealloc__`` itself runs no
  user code that could reach the loop (the handles it drops refer to it, so a
  loop with handles queued is not deallocated at all until it is closed).
* Reading ``len`` of the ring or the heap after release is safe: destroy
  leaves them empty.
"""

from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_DECREF
from libc.errno cimport EINTR, ENOENT, EBADF
from libc.stdint cimport int64_t, uint32_t, INT64_MAX
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memset, strerror
from libc.math cimport ceil, isnan
from posix.unistd cimport getpid

from pyloop._core.includes.core cimport *
from pyloop._core.includes.python cimport PyContext_CopyCurrent, PyErr_CheckSignals
from pyloop._core.handles cimport (LoopCore, Handle, TimerHandle, copy_current_context,
                                   new_handle, new_timer_handle)

import os
import sys
import threading
import logging
from weakref import WeakValueDictionary as _WeakValueDictionary
from weakref import WeakSet as _WeakSet
from asyncio import events as _aio_events
from asyncio import coroutines as _aio_coroutines
from asyncio import futures as _aio_futures
from asyncio import tasks as _aio_tasks
from asyncio import constants as _aio_constants
from asyncio import format_helpers as _format_helpers
from asyncio import base_events as _aio_base_events

cdef object _Future = _aio_futures.Future
cdef object _Task = _aio_tasks.Task
cdef object _ensure_future = _aio_tasks.ensure_future
cdef object _isfuture = _aio_futures.isfuture
cdef object _get_future_loop = _aio_futures._get_loop
cdef object _set_running_loop = _aio_events._set_running_loop
cdef object _get_running_loop = _aio_events._get_running_loop
cdef object _iscoroutine = _aio_coroutines.iscoroutine
cdef object _iscoroutinefunction = _aio_coroutines.iscoroutinefunction
cdef object _extract_stack = _format_helpers.extract_stack
cdef object _get_ident = threading.get_ident

logger = logging.getLogger("asyncio")

# Every live loop, so that a fork() can mark the child's copies: a copy shares
# its epoll/kqueue object with the parent and must not touch it.
_live_loops = _WeakSet()


def _mark_loops_forked():
    for loop in list(_live_loops):
        (<BaseLoop>loop)._forked = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_mark_loops_forked)


cdef inline object _oserror(int err):
    return OSError(err, strerror(err).decode("utf-8", "replace"))


include "loop_timers.pxi"
include "loop_clock.pxi"
include "loop_iteration.pxi"
include "loop_fds.pxi"
include "loop_embed.pxi"
include "loop_sock_io.pxi"
include "loop_sock.pxi"
include "loop_metrics.pxi"


def _own_run_until_complete_cb(fut):
    if not fut.cancelled():
        exc = fut.exception()
        if isinstance(exc, (SystemExit, KeyboardInterrupt)):
            # run_forever() already finished because the exception escaped
            # from a callback; stopping now would leak into the next run.
            return
    _get_future_loop(fut).stop()


# asyncio's own function where it has one (the same code as above): libraries
# recognise the task that run_until_complete() drives by this done callback
# -- anyio's find_root_task() compares it with `is`, and ties its worker
# threads' lifetime to that task; with a look-alike it picked a longer-lived
# task and its worker threads outlived run_until_complete().
_run_until_complete_cb = getattr(_aio_base_events, "_run_until_complete_cb",
                                 _own_run_until_complete_cb)


cdef class BaseLoop(LoopCore):
    """The C part of ``pyloop.Loop``; not meant to be used on its own."""

    def __cinit__(self, *args, **kwargs):
        cdef pl_timer_ops_t ops
        cdef int rc
        self.reactor = NULL
        self.events = NULL
        self.watches = NULL
        self.watches_len = 0
        self.wakeup.read_fd = -1
        self.wakeup.write_fd = -1
        self.resources_ready = False
        self.slow_callback_duration = 0.1
        self._pid = getpid()
        self.metrics = pl_metrics_new()
        if self.metrics == NULL:
            raise MemoryError()
        self._transports = _WeakValueDictionary()
        self._sock_parked = []
        self._sock_parked_prev = []

        rc = pl_ready_queue_init(&self.ready, 256)
        if rc < 0:
            raise MemoryError()
        rc = pl_ready_queue_init(&self.graveyard, 16)
        if rc < 0:
            pl_ready_queue_destroy(&self.ready)
            raise MemoryError()
        ops.is_cancelled = _timer_is_cancelled
        ops.release = _timer_release
        ops.ctx = <void *>&self.graveyard
        rc = pl_timer_heap_init(&self.timers, &ops)
        if rc < 0:
            pl_ready_queue_destroy(&self.graveyard)
            pl_ready_queue_destroy(&self.ready)
            raise MemoryError()
        self.resources_ready = True

        self.events = <pl_event_t *>malloc(MAX_EVENTS * sizeof(pl_event_t))
        if self.events == NULL:
            self._release_resources()
            raise MemoryError()
        self.max_events = MAX_EVENTS
        rc = pl_reactor_open(&self.reactor)
        if rc < 0:
            self._release_resources()
            raise _oserror(-rc)
        rc = pl_wakeup_open(&self.wakeup)
        if rc < 0:
            self._release_resources()
            raise _oserror(-rc)
        w = _watch_for(self, self.wakeup.read_fd)
        w.internal = True
        _set_interest(self, self.wakeup.read_fd, w, PL_EV_READ, True)

    def __init__(self):
        self._debug = _aio_coroutines._is_debug_mode()
        try:
            _live_loops.add(self)
        except TypeError:       # a bare BaseLoop has no weakref slot
            pass

    cdef int _check_not_forked(self) except -1:
        if self._forked or getpid() != self._pid:
            self._forked = True
            raise RuntimeError(
                "this event loop was created in another process (before a "
                "fork): its epoll/kqueue object is shared with the parent; "
                "create a new loop in the child")
        return 0

    def __dealloc__(self):
        self._release_resources()
        pl_metrics_free(self.metrics)
        self.metrics = NULL

    cdef int _release_resources(self) except -1:
        """Drop every handle and free the C state.  Runs no Python code
        before the structures are consistent again."""
        cdef void *p
        cdef int fd
        cdef PyObject *obj
        if not self.resources_ready:
            return 0
        self.resources_ready = False
        while self.ready.len:
            p = pl_ready_queue_pop(&self.ready)
            if not (<Handle>p)._persistent:
                (<Handle>p)._forget()
            Py_DECREF(<object>p)
        pl_ready_queue_destroy(&self.ready)
        pl_timer_heap_destroy(&self.timers)
        _bury(self)
        pl_ready_queue_destroy(&self.graveyard)
        if self.watches != NULL:
            for fd in range(self.watches_len):
                obj = self.watches[fd].reader
                self.watches[fd].reader = NULL
                if obj != NULL:
                    (<Handle>obj)._forget()
                    Py_DECREF(<object>obj)
                obj = self.watches[fd].writer
                self.watches[fd].writer = NULL
                if obj != NULL:
                    (<Handle>obj)._forget()
                    Py_DECREF(<object>obj)
                obj = _swap_watch_obj(&self.watches[fd], False, NULL)
                if obj != NULL:
                    Py_DECREF(<object>obj)
                obj = _swap_watch_obj(&self.watches[fd], True, NULL)
                if obj != NULL:
                    Py_DECREF(<object>obj)
            free(self.watches)
            self.watches = NULL
            self.watches_len = 0
        # The parked sock_* operations were in the watches: let go of them.
        del self._sock_parked[:]
        del self._sock_parked_prev[:]
        if self.reactor != NULL:
            pl_reactor_close(self.reactor)
            self.reactor = NULL
        pl_wakeup_close(&self.wakeup)
        if self.events != NULL:
            free(self.events)
            self.events = NULL
        return 0

    # ---- checks ---------------------------------------------------------

    cdef int _check_closed(self) except -1:
        if self._closed:
            raise RuntimeError("Event loop is closed")
        return 0

    cdef int _check_thread(self) except -1:
        # Only in debug mode, as asyncio: a cheap guard against the most
        # common threading mistake.
        if self._thread_id is None:
            return 0
        if _get_ident() != self._thread_id:
            raise RuntimeError(
                "Non-thread-safe operation invoked on an event loop other "
                "than the current one")
        return 0

    cdef int _check_callback(self, object callback, str method) except -1:
        # Stricter than asyncio, which checks only in debug mode: a
        # non-callable can never succeed, so refusing it at once costs
        # nothing and saves a confusing report later.
        if callable(callback) and not (self._debug and _iscoroutinefunction(callback)):
            return 0
        if _iscoroutine(callback) or _iscoroutinefunction(callback):
            raise TypeError(f"coroutines cannot be used with {method}()")
        raise TypeError(
            f"a callable object was expected by {method}(), got {callback!r}")

    def _check_running(self):
        if self._thread_id is not None:
            raise RuntimeError("This event loop is already running")
        if _get_running_loop() is not None:
            raise RuntimeError(
                "Cannot run the event loop while another loop is running")

    # ---- scheduling -----------------------------------------------------

    cdef int _push_ready(self, Handle handle) except -1:
        # Checked here, not (only) by the caller: whatever ran between the
        # caller's _check_closed() and now may have let close() run (see
        # "Threads" in the module docstring).  Nothing below runs Python code.
        if not self.resources_ready:
            raise RuntimeError("Event loop is closed")
        Py_INCREF(handle)
        if pl_ready_queue_push(&self.ready, <void *>handle) < 0:
            Py_DECREF(handle)
            raise MemoryError()
        return 0

    cdef Handle _call_soon(self, object callback, object args, object context):
        cdef Handle handle
        if context is None:
            context = copy_current_context()     # None: empty (see handles.pyx)
        handle = new_handle(self, callback, args, context)
        if self._debug:
            handle._source_traceback = _extract_stack(sys._getframe(0))
        self._push_ready(handle)
        return handle

    cdef TimerHandle _call_at(self, double when, object callback, object args,
                              object context):
        cdef TimerHandle timer
        if context is None:
            context = copy_current_context()
        timer = new_timer_handle(self, when, callback, args, context)
        if self._debug:
            timer._source_traceback = _extract_stack(sys._getframe(0))
        # The heap may have been destroyed while the lines above ran Python
        # code; from this check to the push nothing does.
        if not self.resources_ready:
            raise RuntimeError("Event loop is closed")
        Py_INCREF(timer)
        if pl_timer_heap_push(&self.timers, _when_to_ns(when), <void *>timer) < 0:
            Py_DECREF(timer)
            raise MemoryError()
        timer._scheduled = True
        self.metrics.timers_scheduled += 1
        return timer

    cdef void _on_timer_cancelled(self, TimerHandle timer) noexcept:
        if timer._scheduled and self.resources_ready:
            self.metrics.timers_cancelled += 1
            pl_timer_heap_note_cancelled(&self.timers)
            _bury(self)

    def _timer_handle_cancelled(self, handle):
        """Hook asyncio's own TimerHandle.cancel() calls; see handles.pyx."""
        if isinstance(handle, TimerHandle):
            self._on_timer_cancelled(<TimerHandle>handle)

    def call_soon(self, callback, *args, context=None):
        """Arrange for ``callback(*args)`` to be called soon, in FIFO order."""
        self._check_closed()
        if self._debug:
            self._check_thread()
        self._check_callback(callback, "call_soon")
        return self._call_soon(callback, args, context)

    def call_soon_threadsafe(self, callback, *args, context=None):
        """Like ``call_soon``, but safe to call from any thread: wakes the loop."""
        self._check_closed()
        self._check_callback(callback, "call_soon_threadsafe")
        handle = self._call_soon(callback, args, context)
        # Only a loop blocked in the reactor needs the (syscall) wakeup.
        # `waiting` is written by the loop thread with the GIL held, right
        # before it releases the GIL to wait, and we read it with the GIL
        # held: a loop that is not waiting will see the new handle when it
        # next computes its timeout.
        # One wakeup per wait is enough: later callers find it pending.
        # A waiting loop is running, and a running loop cannot be closed, so
        # the wakeup fd is open; resources_ready says so again for the
        # reader's benefit (the write must never reach a closed, or reused,
        # fd number).  No Python code runs between the push and the write.
        if self.waiting and not self.wakeup_pending and self.resources_ready:
            self.wakeup_pending = True
            pl_wakeup_signal(&self.wakeup)
        return handle

    def call_later(self, delay, callback, *args, context=None):
        """Arrange for ``callback(*args)`` to be called after ``delay`` seconds."""
        if delay is None:
            raise TypeError("delay must not be None")
        cdef double d = delay
        cdef double when = _loop_now(self) / 1e9 + d
        self._check_closed()
        if self._debug:
            self._check_thread()
        self._check_callback(callback, "call_later")
        return self._call_at(when, callback, args, context)

    def call_at(self, when, callback, *args, context=None):
        """Arrange for ``callback(*args)`` to be called at loop time ``when``."""
        if when is None:
            raise TypeError("when cannot be None")
        cdef double w = when
        self._check_closed()
        if self._debug:
            self._check_thread()
        self._check_callback(callback, "call_at")
        return self._call_at(w, callback, args, context)

    def time(self):
        """Return the loop's clock in seconds: ``time.monotonic()``, unless
        the clock was paused for a test (``pyloop.time.pause``)."""
        return _loop_now(self) / 1e9

    def _write_to_self(self):
        """Wake the loop from another thread (asyncio-compatible name)."""
        if self.resources_ready:
            pl_wakeup_signal(&self.wakeup)

    # ---- futures and tasks ----------------------------------------------

    def create_future(self):
        """Create an ``asyncio.Future`` attached to this loop."""
        return _Future(loop=self)

    def create_task(self, coro, *, name=None, context=None):
        """Schedule a coroutine as a task; honours ``set_task_factory``."""
        self._check_closed()
        if self._task_factory is None:
            task = _Task(coro, loop=self, name=name, context=context)
            if _track_task_births:
                _note_task_birth(task)
            return task
        if context is None:
            task = self._task_factory(self, coro)
        else:
            task = self._task_factory(self, coro, context=context)
        if name is not None:
            set_name = getattr(task, "set_name", None)
            if set_name is not None:
                set_name(name)
        if _track_task_births:
            _note_task_birth(task)
        return task

    def set_task_factory(self, factory):
        """Set the factory ``create_task`` uses (``None`` for the default)."""
        if factory is not None and not callable(factory):
            raise TypeError("task factory must be a callable or None")
        self._task_factory = factory

    def get_task_factory(self):
        """Return the task factory, or ``None`` for the default."""
        return self._task_factory

    # ---- running --------------------------------------------------------

    def run_forever(self):
        """Run until ``stop()`` is called."""
        self._check_closed()
        self._check_running()
        self._check_not_forked()
        ident = _get_ident()
        # Claim the loop: the checks above ran Python code, which may have let
        # another thread close or run it.  From the re-check to the claim no
        # Python code runs, so this and close() (which checks and sets in one
        # step too) are serialised by the GIL; from here on close() refuses.
        if self._thread_id is not None:
            raise RuntimeError("This event loop is already running")
        if self._closed:
            raise RuntimeError("Event loop is closed")
        self._thread_id = ident
        # Left set by run_nowait() steps (a host may wait on backend_fd());
        # from here the loop's own wait says when it waits.
        self.waiting = False
        old_hooks = None
        try:
            self._set_coroutine_origin_tracking(self._debug)
            old_hooks = sys.get_asyncgen_hooks()
            sys.set_asyncgen_hooks(firstiter=self._asyncgen_firstiter_hook,
                                   finalizer=self._asyncgen_finalizer_hook)
            _set_running_loop(self)
            self.last_poll_ns = -BUSY_POLL_INTERVAL_NS   # first iteration polls
            # Where callbacks are called from, for a stall report's stack
            # (this method has no Python frame of its own).
            self._run_frame = sys._getframe(0)
            pl_metrics_run_begin(self.metrics, pl_clock_now_ns())
            while True:
                _run_once(self)
                if self._stopping:
                    break
        finally:
            if self._sock_parked or self._sock_parked_prev:
                # An exception ended the run mid-iteration: nothing runs until
                # the next run, so sock_* registrations parked for the next
                # operation go now (loop_sock.pxi).
                _sock_flush_parked(self, True)
            if self.metrics.running:
                pl_metrics_run_end(self.metrics, pl_clock_now_ns())
            self._run_frame = None
            self._stopping = False
            self._thread_id = None
            _set_running_loop(None)
            self._set_coroutine_origin_tracking(False)
            if old_hooks is not None:
                sys.set_asyncgen_hooks(*old_hooks)

    def run_until_complete(self, future):
        """Run until ``future`` (a future, task or coroutine) is done; return
        its result or raise its exception."""
        self._check_closed()
        self._check_running()
        self._check_not_forked()
        new_task = not _isfuture(future)
        future = _ensure_future(future, loop=self)
        if new_task:
            # The task is ours; if the loop stops early nobody can await it,
            # so do not warn that it was destroyed pending.
            future._log_destroy_pending = False
        future.add_done_callback(_run_until_complete_cb)
        try:
            self.run_forever()
        except BaseException:
            if new_task and future.done() and not future.cancelled():
                # Mark the exception retrieved: it is propagating right now.
                future.exception()
            raise
        finally:
            future.remove_done_callback(_run_until_complete_cb)
        if not future.done():
            raise RuntimeError("Event loop stopped before Future completed.")
        return future.result()

    def stop(self):
        """Stop after the current iteration (or after one iteration, if the
        loop is not running yet)."""
        self._stopping = True

    # ---- embedding in a host's event loop (loop_embed.pxi) ------------------

    def backend_fd(self):
        """The fd of the loop's reactor (epoll, kqueue), for a host event loop
        to poll: it is readable when an fd the loop watches is ready, or
        ``call_soon_threadsafe`` woke the loop.  Timers and ready callbacks
        are not fd events: wait at most ``backend_timeout()``, then call
        ``run_nowait()`` (libuv's ``uv_backend_fd``)."""
        self._check_closed()
        if not self.resources_ready:
            raise RuntimeError("Event loop is closed")
        return pl_reactor_fd(self.reactor)

    def backend_timeout(self):
        """How long a host may wait on ``backend_fd()`` before the next
        ``run_nowait()``, in seconds: 0.0 if callbacks are ready, a timer is
        due or ``stop()`` was called, the time to the next timer, or ``None``
        when there is no timer (wait for the fd alone).  Ask before every
        wait: asking also makes ``call_soon_threadsafe`` wake the backend fd.
        Round up when converting to a coarser unit (libuv's
        ``uv_backend_timeout``)."""
        self._check_closed()
        cdef int64_t ns = _embed_timeout_ns(self)
        return None if ns < 0 else ns / 1e9

    def run_nowait(self):
        """Run one iteration without blocking: poll the fds with timeout 0,
        fire due timers, run the callbacks that were ready (libuv's
        ``uv_run(UV_RUN_NOWAIT)``).  The loop is running during the step
        (``asyncio.get_running_loop()`` returns it) and not between steps; a
        ``stop()`` is consumed by the step.  Raises RuntimeError if the loop
        is running or closed.  Returns True if work is already waiting (the
        next ``backend_timeout()`` is 0)."""
        return _embed_run_nowait(self)

    def is_running(self):
        """Return True while ``run_forever`` is on the stack."""
        return self._thread_id is not None

    def is_closed(self):
        """Return True once ``close()`` was called."""
        return self._closed

    def close(self):
        """Close the loop: drop pending callbacks, release the reactor, shut
        the default executor down without waiting.  Idempotent."""
        # The check and the flag in one step (no Python code in between):
        # run_forever() claims the loop the same way, so exactly one wins.
        if self._thread_id is not None:
            raise RuntimeError("Cannot close a running event loop")
        if self._closed:
            return
        self._closed = True
        if self._debug:
            logger.debug("Close %r", self)
        self._release_resources()
        self._close_services()

    def _close_services(self):
        pass

    def get_debug(self):
        """Return True if debug mode is on."""
        return self._debug

    def set_debug(self, enabled):
        """Turn debug mode on or off (slow-callback warnings, source
        tracebacks, thread checks, coroutine origin tracking)."""
        self._debug = bool(enabled)
        if self._thread_id is not None:
            self.call_soon_threadsafe(self._set_coroutine_origin_tracking,
                                      self._debug)

    def _set_coroutine_origin_tracking(self, enabled):
        if bool(enabled) == bool(self._coroutine_origin_tracking_enabled):
            return
        if enabled:
            self._coroutine_origin_tracking_saved_depth = (
                sys.get_coroutine_origin_tracking_depth())
            sys.set_coroutine_origin_tracking_depth(
                _aio_constants.DEBUG_STACK_DEPTH)
        else:
            sys.set_coroutine_origin_tracking_depth(
                self._coroutine_origin_tracking_saved_depth)
        self._coroutine_origin_tracking_enabled = enabled

    # ---- file descriptors -----------------------------------------------

    cdef _add_watcher(self, object fileobj, object callback, object args,
                      bint writer, str method, object context=None):
        # ``context``: the one every event's callback runs in.  add_reader and
        # add_writer give a copy of the caller's (asyncio); a transport gives
        # its protocol's, so each event enters it at no extra cost.
        cdef int fd
        cdef FdWatch *w
        cdef Handle handle
        cdef PyObject *old
        cdef PyObject *old_obj
        self._check_closed()
        self._check_not_forked()
        fd = _fileobj_to_fd(fileobj)
        self._check_callback(callback, method)
        if context is None:
            context = PyContext_CopyCurrent()
        handle = new_handle(self, callback, args, context)
        handle._persistent = True
        if self._debug:
            handle._source_traceback = _extract_stack(sys._getframe(0))
        # _watch_for may realloc a freed array and the reactor may be gone if
        # the code above (fileno(), allocations, a GC) let close() run.
        if not self.resources_ready:
            raise RuntimeError("Event loop is closed")
        w = _watch_for(self, fd)
        if w.internal:
            raise ValueError(f"file descriptor {fd} is used by the event loop itself")
        # Level-triggered: a callback may leave data unread and expects to
        # be called again (only the sock_* operations ask for PL_EV_EDGE).
        _set_interest(self, fd, w,
                      (w.events | (PL_EV_WRITE if writer else PL_EV_READ)) & ~PL_EV_EDGE,
                      True, True)
        Py_INCREF(handle)
        if writer:
            old = w.writer
            w.writer = <PyObject *>handle
        else:
            old = w.reader
            w.reader = <PyObject *>handle
        old_obj = _swap_watch_obj(w, writer, NULL if isinstance(fileobj, int) else <PyObject *>fileobj)
        if old_obj != NULL:
            Py_DECREF(<object>old_obj)
        if old != NULL:
            (<Handle>old)._cancel()
            Py_DECREF(<object>old)
        return None

    cdef _remove_watcher(self, object fileobj, bint writer):
        cdef int fd
        cdef FdWatch *w
        cdef PyObject *old
        cdef PyObject *old_obj
        if self._closed:
            return False
        fd = _fileobj_to_fd(fileobj)
        if not self.resources_ready or fd >= self.watches_len:
            return False
        w = &self.watches[fd]
        old = w.writer if writer else w.reader
        if old == NULL:
            return False
        if writer:
            w.writer = NULL
        else:
            w.reader = NULL
        old_obj = _swap_watch_obj(w, writer, NULL)
        _set_interest(self, fd, w, w.events & ~(PL_EV_WRITE if writer else PL_EV_READ),
                      False)
        try:
            (<Handle>old)._cancel()
        finally:
            Py_DECREF(<object>old)
            if old_obj != NULL:
                Py_DECREF(<object>old_obj)
        return True

    def add_reader(self, fd, callback, *args):
        """Call ``callback(*args)`` whenever ``fd`` is readable."""
        _ensure_fd_no_transport(self, fd)
        return self._add_watcher(fd, callback, args, False, "add_reader")

    def remove_reader(self, fd):
        """Stop watching ``fd`` for reading; return True if it was watched."""
        return _remove_user_watcher(self, fd, False)

    def add_writer(self, fd, callback, *args):
        """Call ``callback(*args)`` whenever ``fd`` is writable."""
        _ensure_fd_no_transport(self, fd)
        return self._add_watcher(fd, callback, args, True, "add_writer")

    def remove_writer(self, fd):
        """Stop watching ``fd`` for writing; return True if it was watched."""
        return _remove_user_watcher(self, fd, True)

    # Unchecked variants, for transports watching their own fd.
    def _add_reader(self, fd, callback, *args):
        return self._add_watcher(fd, callback, args, False, "add_reader")

    def _remove_reader(self, fd):
        return self._remove_watcher(fd, False)

    def _add_writer(self, fd, callback, *args):
        return self._add_watcher(fd, callback, args, True, "add_writer")

    def _remove_writer(self, fd):
        return self._remove_watcher(fd, True)

    def _fd_watched(self, fd):
        """(reader handle, writer handle) of fd, for tests and diagnostics."""
        cdef int f = _fileobj_to_fd(fd)
        if self._closed or f >= self.watches_len:
            return (None, None)
        w = &self.watches[f]
        return (<object>w.reader if w.reader != NULL else None,
                <object>w.writer if w.writer != NULL else None)
