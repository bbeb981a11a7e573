# cython: language_level=3
"""The loop core: scheduling, timers and fd readiness, driven by csrc/.

One iteration (``_run_once``) is a list of named steps, as in libuv:

1. compute the poll timeout: 0 if callbacks are ready or ``stop()`` was
   called, else the time to the nearest live timer, else forever;
2. ``_poll``: one ``pl_reactor_wait`` (the GIL is released only when the wait
   can block) and dispatch of every ready fd to its reader/writer handle;
3. ``_expire_timers``: move timers whose deadline has passed to the ready queue;
4. ``_run_ready``: run the handles that were ready when this step began --
   callbacks scheduled while it runs wait for the next iteration, as asyncio
   guarantees.

Ownership rules (the only tricky part of this file):

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

Virtual time (``pyloop.time.pause``): every read of the loop's clock for
scheduling goes through ``_loop_now``, which returns the monotonic clock plus
an offset, or a frozen value while the clock is paused.  The offset is 0 until
the clock was first paused and resumed, so ``loop.time()`` agrees with
``time.monotonic()`` in every program that never pauses; after a resume, time
goes on from the virtual value it reached (it never runs backwards, so
deadlines computed while paused keep their meaning).  While paused, time moves
only when ``pyloop.time.advance`` moves it or, with auto-advance, when the loop
has nothing else to do (``_paused_timeout``): then it jumps straight to the
next timer's deadline.  The busy-poll throttle and debug-mode slow-callback
timing keep reading the real clock: they measure the machine, not the program.
"""

cimport cython
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_DECREF
from libc.errno cimport EINTR, ENOENT, EBADF
from libc.stdint cimport int64_t, uint32_t, INT64_MAX
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memset, strerror
from libc.math cimport ceil, isnan
from posix.unistd cimport getpid

from .includes.core cimport *
from .includes.python cimport PyContext_CopyCurrent, PyErr_CheckSignals
from ._handles cimport (LoopCore, Handle, TimerHandle, new_handle,
                        new_timer_handle)

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

logger = logging.getLogger('asyncio')

# Every live loop, so that a fork() can mark the child's copies: a copy shares
# its epoll/kqueue object with the parent and must not touch it.
_live_loops = _WeakSet()


def _mark_loops_forked():
    for loop in list(_live_loops):
        (<BaseLoop>loop)._forked = True


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_mark_loops_forked)

# How many kernel events one wait returns at most.  More ready fds than this
# are simply reported by the next (zero-timeout) wait: the reactor is
# level-triggered.
cdef enum:
    MAX_EVENTS = 1024

# While callbacks are ready the loop would poll the kernel with a zero
# timeout on every iteration -- one syscall per iteration, which doubled the
# cost of a call_soon chain.  Instead a busy loop polls when at least this
# long has passed since the last poll: I/O latency stays bounded by 50 us plus
# one callback, and a chain of cheap callbacks pays for ~1 poll per 200
# iterations.  The first iteration of every run, an iteration after stop(),
# and any iteration that could block always poll.
cdef int64_t BUSY_POLL_INTERVAL_NS = 50000


cdef inline int64_t _loop_now(BaseLoop loop) noexcept:
    # The one place scheduling reads the clock.  The branch is never taken
    # outside tests, so it predicts perfectly.
    if loop.clock_paused:
        return loop.clock_virtual_ns
    return pl_clock_now_ns() + loop.clock_offset_ns


cdef inline object _oserror(int err):
    return OSError(err, strerror(err).decode('utf-8', 'replace'))


cdef int _fileobj_to_fd(object fileobj) except -1:
    """Turn an fd or an object with fileno() into an fd, as selectors does."""
    cdef long fd
    if isinstance(fileobj, int):
        fd = fileobj
    else:
        try:
            fd = int(fileobj.fileno())
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f'Invalid file object: {fileobj!r}') from None
    if fd < 0:
        raise ValueError(f'Invalid file descriptor: {fd}')
    if fd > 0x7fffffff:
        # What selectors (and so asyncio) raise for an fd no C int can hold.
        raise OverflowError(f'file descriptor {fd} is out of range')
    return <int>fd


cdef inline int64_t _when_to_ns(double when):
    # Rounded up so that "deadline_ns <= now_ns" implies "when <= loop.time()":
    # a timer never runs before loop.time() reaches its when().
    cdef double ns
    if isnan(when):
        return INT64_MAX
    ns = ceil(when * 1e9)
    if ns >= <double>INT64_MAX:
        return INT64_MAX
    if ns <= -<double>INT64_MAX:
        return -INT64_MAX
    return <int64_t>ns


# ---- timer heap callbacks (run with the GIL held, inside heap calls) ------

cdef int _timer_is_cancelled(void *token, void *ctx) noexcept:
    return (<Handle>token)._cancelled


cdef void _timer_release(void *token, void *ctx) noexcept:
    # ctx is the loop's graveyard queue, not the loop: this also runs from
    # the loop's __dealloc__, where taking a reference to the loop would
    # resurrect and free it a second time.
    (<TimerHandle>token)._scheduled = False
    # Parked, not decref'd: see the module docstring.
    if pl_ready_queue_push(<pl_ready_queue_t *>ctx, token) < 0:
        # Out of memory: leaking one handle beats re-entering the heap.
        pass


cdef void _bury(BaseLoop loop) noexcept:
    cdef void *p
    while loop.graveyard.len:
        p = pl_ready_queue_pop(&loop.graveyard)
        (<Handle>p)._forget()
        Py_DECREF(<object>p)


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
_run_until_complete_cb = getattr(_aio_base_events, '_run_until_complete_cb',
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
        self._transports = _WeakValueDictionary()

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
        w = self._watch_for(self.wakeup.read_fd)
        w.internal = True
        self._set_interest(self.wakeup.read_fd, w, PL_EV_READ, True)

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
                'this event loop was created in another process (before a '
                'fork): its epoll/kqueue object is shared with the parent; '
                'create a new loop in the child')
        return 0

    def __dealloc__(self):
        self._release_resources()

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
            free(self.watches)
            self.watches = NULL
            self.watches_len = 0
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
            raise RuntimeError('Event loop is closed')
        return 0

    cdef int _check_thread(self) except -1:
        # Only in debug mode, as asyncio: a cheap guard against the most
        # common threading mistake.
        if self._thread_id is None:
            return 0
        if _get_ident() != self._thread_id:
            raise RuntimeError(
                'Non-thread-safe operation invoked on an event loop other '
                'than the current one')
        return 0

    cdef int _check_callback(self, object callback, str method) except -1:
        # Stricter than asyncio, which checks only in debug mode: a
        # non-callable can never succeed, so refusing it at once costs
        # nothing and saves a confusing report later.
        if callable(callback) and not (self._debug and _iscoroutinefunction(callback)):
            return 0
        if _iscoroutine(callback) or _iscoroutinefunction(callback):
            raise TypeError(f'coroutines cannot be used with {method}()')
        raise TypeError(
            f'a callable object was expected by {method}(), got {callback!r}')

    def _check_running(self):
        if self._thread_id is not None:
            raise RuntimeError('This event loop is already running')
        if _get_running_loop() is not None:
            raise RuntimeError(
                'Cannot run the event loop while another loop is running')

    # ---- scheduling -----------------------------------------------------

    cdef int _push_ready(self, Handle handle) except -1:
        # Checked here, not (only) by the caller: whatever ran between the
        # caller's _check_closed() and now may have let close() run (see
        # "Threads" in the module docstring).  Nothing below runs Python code.
        if not self.resources_ready:
            raise RuntimeError('Event loop is closed')
        Py_INCREF(handle)
        if pl_ready_queue_push(&self.ready, <void *>handle) < 0:
            Py_DECREF(handle)
            raise MemoryError()
        return 0

    cdef Handle _call_soon(self, object callback, object args, object context):
        cdef Handle handle
        if context is None:
            context = PyContext_CopyCurrent()
        handle = new_handle(self, callback, args, context)
        if self._debug:
            handle._source_traceback = _extract_stack(sys._getframe(0))
        self._push_ready(handle)
        return handle

    cdef TimerHandle _call_at(self, double when, object callback, object args,
                              object context):
        cdef TimerHandle timer
        if context is None:
            context = PyContext_CopyCurrent()
        timer = new_timer_handle(self, when, callback, args, context)
        if self._debug:
            timer._source_traceback = _extract_stack(sys._getframe(0))
        # The heap may have been destroyed while the lines above ran Python
        # code; from this check to the push nothing does.
        if not self.resources_ready:
            raise RuntimeError('Event loop is closed')
        Py_INCREF(timer)
        if pl_timer_heap_push(&self.timers, _when_to_ns(when), <void *>timer) < 0:
            Py_DECREF(timer)
            raise MemoryError()
        timer._scheduled = True
        return timer

    cdef void _on_timer_cancelled(self, TimerHandle timer) noexcept:
        if timer._scheduled and self.resources_ready:
            pl_timer_heap_note_cancelled(&self.timers)
            _bury(self)

    def _timer_handle_cancelled(self, handle):
        """Hook asyncio's own TimerHandle.cancel() calls; see _handles.pyx."""
        if isinstance(handle, TimerHandle):
            self._on_timer_cancelled(<TimerHandle>handle)

    def call_soon(self, callback, *args, context=None):
        """Arrange for ``callback(*args)`` to be called soon, in FIFO order."""
        self._check_closed()
        if self._debug:
            self._check_thread()
        self._check_callback(callback, 'call_soon')
        return self._call_soon(callback, args, context)

    def call_soon_threadsafe(self, callback, *args, context=None):
        """Like ``call_soon``, but safe to call from any thread: wakes the loop."""
        self._check_closed()
        self._check_callback(callback, 'call_soon_threadsafe')
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
            raise TypeError('delay must not be None')
        cdef double d = delay
        cdef double when = _loop_now(self) / 1e9 + d
        self._check_closed()
        if self._debug:
            self._check_thread()
        self._check_callback(callback, 'call_later')
        return self._call_at(when, callback, args, context)

    def call_at(self, when, callback, *args, context=None):
        """Arrange for ``callback(*args)`` to be called at loop time ``when``."""
        if when is None:
            raise TypeError('when cannot be None')
        cdef double w = when
        self._check_closed()
        if self._debug:
            self._check_thread()
        self._check_callback(callback, 'call_at')
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
            return _Task(coro, loop=self, name=name, context=context)
        if context is None:
            task = self._task_factory(self, coro)
        else:
            task = self._task_factory(self, coro, context=context)
        if name is not None:
            set_name = getattr(task, 'set_name', None)
            if set_name is not None:
                set_name(name)
        return task

    def set_task_factory(self, factory):
        """Set the factory ``create_task`` uses (``None`` for the default)."""
        if factory is not None and not callable(factory):
            raise TypeError('task factory must be a callable or None')
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
            raise RuntimeError('This event loop is already running')
        if self._closed:
            raise RuntimeError('Event loop is closed')
        self._thread_id = ident
        old_hooks = None
        try:
            self._set_coroutine_origin_tracking(self._debug)
            old_hooks = sys.get_asyncgen_hooks()
            sys.set_asyncgen_hooks(firstiter=self._asyncgen_firstiter_hook,
                                   finalizer=self._asyncgen_finalizer_hook)
            _set_running_loop(self)
            self.last_poll_ns = -BUSY_POLL_INTERVAL_NS   # first iteration polls
            while True:
                self._run_once()
                if self._stopping:
                    break
        finally:
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
            raise RuntimeError('Event loop stopped before Future completed.')
        return future.result()

    def stop(self):
        """Stop after the current iteration (or after one iteration, if the
        loop is not running yet)."""
        self._stopping = True

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
            raise RuntimeError('Cannot close a running event loop')
        if self._closed:
            return
        self._closed = True
        if self._debug:
            logger.debug('Close %r', self)
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

    # ---- one iteration --------------------------------------------------

    cdef int _run_once(self) except -1:
        cdef int64_t timeout = -1
        cdef int64_t now
        cdef const pl_timer_t *first
        if self._forked:
            # fork() was called from a callback of this very loop: the child
            # must not go on polling the epoll object it shares with the parent.
            self._check_not_forked()
        if self._stopping:
            timeout = 0
        elif self.ready.len:
            timeout = 0
            now = pl_clock_now_ns()
            if now - self.last_poll_ns < BUSY_POLL_INTERVAL_NS:
                timeout = -2      # skip this poll
        elif self.clock_paused:
            timeout = self._paused_timeout()
        elif self.timers.len:
            first = pl_timer_heap_peek(&self.timers)
            while self.graveyard.len:
                # Dropping cancelled timers can run Python code (a __del__)
                # that schedules timers: settle that before trusting `first`.
                _bury(self)
                first = pl_timer_heap_peek(&self.timers)
            if first != NULL:
                now = _loop_now(self)
                # Compare first: a deadline clamped near INT64_MIN would
                # overflow the subtraction into a very long wait.
                timeout = 0 if first.deadline_ns <= now else first.deadline_ns - now
        if timeout != -2:
            self._poll(timeout)
            self.last_poll_ns = pl_clock_now_ns()
        self._expire_timers()
        if self._debug:
            self._run_ready_debug()
        else:
            self._run_ready()
        return 0

    cdef int64_t _paused_timeout(self) except? -3:
        """The poll timeout of an idle iteration (nothing ready, not
        stopping) while the clock is paused: 0 if a timer is due, -1 to wait
        for I/O alone, or -2 when this already polled (and perhaps moved the
        clock to the next deadline, which auto-advance does when a zero-timeout
        poll finds nothing and no blocking call is in flight)."""
        cdef const pl_timer_t *first = NULL
        if self.timers.len:
            first = pl_timer_heap_peek(&self.timers)
            while self.graveyard.len:
                _bury(self)
                first = pl_timer_heap_peek(&self.timers)
        if first != NULL and first.deadline_ns <= self.clock_virtual_ns:
            return 0
        if not self.clock_auto_advance or self.clock_holds or first == NULL:
            # Time cannot move by itself: only I/O, another thread or a
            # blocking call's completion can wake the program.
            return -1
        self._poll(0)
        self.last_poll_ns = pl_clock_now_ns()
        if self.ready.len or self.clock_holds or not self.clock_paused:
            return -2
        first = pl_timer_heap_peek(&self.timers)
        while self.graveyard.len:
            _bury(self)
            first = pl_timer_heap_peek(&self.timers)
        if first != NULL and first.deadline_ns > self.clock_virtual_ns:
            self.clock_virtual_ns = first.deadline_ns
        return -2

    # Virtual time, for pyloop.time (pause/resume/advance).  Plain methods:
    # none of this is on a hot path.

    def _clock_pause(self, bint auto_advance):
        if self.clock_paused:
            raise RuntimeError('the clock is already paused')
        self.clock_virtual_ns = _loop_now(self)
        self.clock_auto_advance = auto_advance
        self.clock_paused = True

    def _clock_resume(self):
        if not self.clock_paused:
            raise RuntimeError('the clock is not paused')
        self.clock_offset_ns = self.clock_virtual_ns - pl_clock_now_ns()
        self.clock_paused = False

    def _clock_is_paused(self):
        return bool(self.clock_paused)

    def _clock_now_ns(self):
        return _loop_now(self)

    def _clock_set_ns(self, int64_t ns):
        """Move the paused clock forward to ``ns`` (never backwards)."""
        if not self.clock_paused:
            raise RuntimeError('the clock is not paused')
        if ns > self.clock_virtual_ns:
            self.clock_virtual_ns = ns

    def _clock_next_deadline_ns(self):
        """The deadline of the earliest live timer, or None."""
        cdef const pl_timer_t *first
        if not self.timers.len:
            return None
        first = pl_timer_heap_peek(&self.timers)
        while self.graveyard.len:
            _bury(self)
            first = pl_timer_heap_peek(&self.timers)
        return None if first == NULL else first.deadline_ns

    def _clock_hold(self):
        """A blocking call started: auto-advance waits until it is released."""
        self.clock_holds += 1

    def _clock_release(self):
        if self.clock_holds > 0:
            self.clock_holds -= 1

    def _ready_len(self):
        """How many callbacks are queued to run (for pyloop.time.advance)."""
        return self.ready.len

    cdef int _poll(self, int64_t timeout_ns) except -1:
        cdef int n, i
        cdef pl_event_t *ev
        cdef FdWatch *w
        cdef uint32_t bits
        if timeout_ns == 0:
            n = pl_reactor_wait(self.reactor, self.events, self.max_events, 0)
        else:
            self.waiting = True
            if self.ready.len:
                # A callback arrived after the timeout was computed but before
                # `waiting` was set (code run while computing it may release
                # the GIL): its sender saw no waiter and sent no wakeup.
                timeout_ns = 0
            with nogil:
                n = pl_reactor_wait(self.reactor, self.events, self.max_events,
                                    timeout_ns)
            self.waiting = False
            self.wakeup_pending = False
        if n < 0:
            if n == -EINTR:
                # Let Python run its signal handlers now (KeyboardInterrupt
                # propagates from here, as from asyncio's select()).
                PyErr_CheckSignals()
                return 0
            raise _oserror(-n)
        for i in range(n):
            ev = &self.events[i]
            if ev.fd < 0 or ev.fd >= self.watches_len:
                continue
            w = &self.watches[ev.fd]
            # A different token means the fd was unregistered and registered
            # again since the kernel queued this event: it is stale.
            if w.events == 0 or w.token != ev.token:
                continue
            if w.internal:
                pl_wakeup_drain(&self.wakeup)
                continue
            bits = ev.events
            if bits & (PL_EV_ERROR | PL_EV_HUP):
                # An error or hang-up is news for both directions; callbacks
                # find out what it is when they read or write.
                bits |= w.events
            if bits & PL_EV_READ and w.reader != NULL:
                if not (<Handle>w.reader)._cancelled:
                    self._push_ready(<Handle>w.reader)
            if bits & PL_EV_WRITE and w.writer != NULL:
                if not (<Handle>w.writer)._cancelled:
                    self._push_ready(<Handle>w.writer)
        return 0

    cdef int _expire_timers(self) except -1:
        cdef const pl_timer_t *first
        cdef pl_timer_t timer
        cdef int64_t now
        if self.timers.len == 0:
            return 0
        now = _loop_now(self)
        try:
            while True:
                first = pl_timer_heap_peek(&self.timers)
                if first == NULL or first.deadline_ns > now:
                    break
                pl_timer_heap_pop(&self.timers, &timer)
                (<TimerHandle>timer.token)._scheduled = False
                # The heap's reference moves to the ready queue.
                if pl_ready_queue_push(&self.ready, timer.token) < 0:
                    Py_DECREF(<object>timer.token)
                    raise MemoryError()
        finally:
            _bury(self)
        return 0

    cdef int _run_ready(self) except -1:
        cdef size_t ntodo = self.ready.len
        cdef void *p
        cdef Handle handle
        while ntodo:
            ntodo -= 1
            p = pl_ready_queue_pop(&self.ready)
            if p == NULL:
                break
            handle = <Handle>p
            Py_DECREF(handle)
            if handle._cancelled:
                continue
            handle.run_callback()
            if not handle._persistent:
                handle._forget()
        return 0

    cdef int _run_ready_debug(self) except -1:
        cdef size_t ntodo = self.ready.len
        cdef void *p
        cdef Handle handle
        cdef int64_t t0, dt
        while ntodo:
            ntodo -= 1
            p = pl_ready_queue_pop(&self.ready)
            if p == NULL:
                break
            handle = <Handle>p
            Py_DECREF(handle)
            if handle._cancelled:
                continue
            self._current_handle = handle
            try:
                t0 = pl_clock_now_ns()
                handle.run_callback()
                dt = pl_clock_now_ns() - t0
                if dt / 1e9 >= self.slow_callback_duration:
                    logger.warning('Executing %s took %.3f seconds',
                                   _format_handle_for_log(handle), dt / 1e9)
            finally:
                self._current_handle = None
            if not handle._persistent:
                handle._forget()
        return 0

    # ---- file descriptors -----------------------------------------------

    cdef FdWatch *_watch_for(self, int fd) except NULL:
        cdef int new_len
        cdef FdWatch *grown
        if fd >= self.watches_len:
            new_len = self.watches_len * 2
            if new_len < 64:
                new_len = 64
            if new_len <= fd:
                new_len = fd + 1
            grown = <FdWatch *>realloc(self.watches, new_len * sizeof(FdWatch))
            if grown == NULL:
                raise MemoryError()
            memset(&grown[self.watches_len], 0,
                   (new_len - self.watches_len) * sizeof(FdWatch))
            self.watches = grown
            self.watches_len = new_len
        return &self.watches[fd]

    cdef int _set_interest(self, int fd, FdWatch *w, uint32_t events,
                           bint strict, bint force=False) except -1:
        """Tell the reactor what we now want for fd.  With strict false,
        an fd the kernel no longer knows (closed behind our back) counts as
        unwatched instead of raising.  With force, tell the kernel even if
        our records say it already knows: the fd may have been closed and
        its number reused since, which the kernel forgot and we cannot see."""
        cdef int rc
        if events == w.events and not force:
            return 0
        if self._forked:
            # The kernel object belongs to the parent too: forget locally,
            # never epoll_ctl(DEL) the parent's registrations away.
            w.events = events
            return 0
        if events == 0:
            rc = pl_reactor_remove(self.reactor, fd)
            w.events = 0
            if rc < 0 and rc != -ENOENT and rc != -EBADF and strict:
                raise _oserror(-rc)
            return 0
        if w.events == 0:
            self.next_token += 1
            w.token = self.next_token
            rc = pl_reactor_add(self.reactor, fd, events, w.token)
        else:
            rc = pl_reactor_modify(self.reactor, fd, events, w.token)
        if rc < 0:
            if not strict and (rc == -EBADF or rc == -ENOENT):
                w.events = 0
                return 0
            raise _oserror(-rc)
        w.events = events
        return 0

    cdef _add_watcher(self, object fileobj, object callback, object args,
                      bint writer, str method):
        cdef int fd
        cdef FdWatch *w
        cdef Handle handle
        cdef PyObject *old
        self._check_closed()
        self._check_not_forked()
        fd = _fileobj_to_fd(fileobj)
        self._check_callback(callback, method)
        handle = new_handle(self, callback, args, PyContext_CopyCurrent())
        handle._persistent = True
        if self._debug:
            handle._source_traceback = _extract_stack(sys._getframe(0))
        # _watch_for may realloc a freed array and the reactor may be gone if
        # the code above (fileno(), allocations, a GC) let close() run.
        if not self.resources_ready:
            raise RuntimeError('Event loop is closed')
        w = self._watch_for(fd)
        if w.internal:
            raise ValueError(f'file descriptor {fd} is used by the event loop itself')
        self._set_interest(fd, w, w.events | (PL_EV_WRITE if writer else PL_EV_READ),
                           True, True)
        Py_INCREF(handle)
        if writer:
            old = w.writer
            w.writer = <PyObject *>handle
        else:
            old = w.reader
            w.reader = <PyObject *>handle
        if old != NULL:
            (<Handle>old)._cancel()
            Py_DECREF(<object>old)
        return None

    cdef _remove_watcher(self, object fileobj, bint writer):
        cdef int fd
        cdef FdWatch *w
        cdef PyObject *old
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
        self._set_interest(fd, w, w.events & ~(PL_EV_WRITE if writer else PL_EV_READ),
                           False)
        try:
            (<Handle>old)._cancel()
        finally:
            Py_DECREF(<object>old)
        return True

    cdef int _ensure_fd_no_transport(self, object fileobj) except -1:
        # A user callback stealing a transport's fd would silently break the
        # transport: refuse, as asyncio does.
        if not self._transports:
            return 0
        transport = self._transports.get(_fileobj_to_fd(fileobj))
        if transport is not None and not transport.is_closing():
            raise RuntimeError(
                f'File descriptor {fileobj!r} is used by transport {transport!r}')
        return 0

    def add_reader(self, fd, callback, *args):
        """Call ``callback(*args)`` whenever ``fd`` is readable."""
        self._ensure_fd_no_transport(fd)
        return self._add_watcher(fd, callback, args, False, 'add_reader')

    def remove_reader(self, fd):
        """Stop watching ``fd`` for reading; return True if it was watched."""
        if self._closed:
            return False
        try:
            _fileobj_to_fd(fd)
        except OverflowError:
            return False              # no such fd can be watched (asyncio agrees)
        self._ensure_fd_no_transport(fd)
        return self._remove_watcher(fd, False)

    def add_writer(self, fd, callback, *args):
        """Call ``callback(*args)`` whenever ``fd`` is writable."""
        self._ensure_fd_no_transport(fd)
        return self._add_watcher(fd, callback, args, True, 'add_writer')

    def remove_writer(self, fd):
        """Stop watching ``fd`` for writing; return True if it was watched."""
        if self._closed:
            return False
        try:
            _fileobj_to_fd(fd)
        except OverflowError:
            return False              # no such fd can be watched (asyncio agrees)
        self._ensure_fd_no_transport(fd)
        return self._remove_watcher(fd, True)

    # Unchecked variants, for transports watching their own fd.
    def _add_reader(self, fd, callback, *args):
        return self._add_watcher(fd, callback, args, False, 'add_reader')

    def _remove_reader(self, fd):
        return self._remove_watcher(fd, False)

    def _add_writer(self, fd, callback, *args):
        return self._add_watcher(fd, callback, args, True, 'add_writer')

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


cdef object _format_handle_for_log(Handle handle):
    # A task's step is best described by the task itself.
    owner = getattr(handle._callback, '__self__', None)
    if isinstance(owner, _Task):
        return repr(owner)
    return str(handle)
