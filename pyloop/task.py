"""Tasks the Tokio way, on any asyncio loop: spawn, JoinSet, join, try_join, select.

    import pyloop.task as task

    handle = task.spawn(fetch(url))          # runs now; the runtime keeps it alive
    page = await handle                      # its result, or its exception

    async with task.JoinSet() as js:         # leaving the block aborts what is left
        for url in urls:
            js.spawn(fetch(url))
        async for page in js:                # results in completion order
            ...

    a, b = await task.join(left(), right())          # both run to the end
    a, b = await task.try_join(left(), right())      # the first error cancels the other
    won = await task.select(reply=fut, timeout=sleep(1))   # Selected(key='reply', value=...)

Why it is built this way
------------------------
* **Nothing spawned is lost.**  asyncio keeps only a weak reference to a task,
  so a task whose handle is dropped while it waits on a future nobody else
  holds can be garbage-collected mid-flight.  ``spawn`` keeps every unfinished
  task in a set attached to its loop, and drops it when it finishes.
* **Failures are not swallowed.**  A spawned task that fails while nobody holds
  its :class:`JoinHandle`, or whose handle is dropped without being awaited,
  is reported once through the loop's exception handler (asyncio's own
  "exception was never retrieved" log for that task is suppressed, so it is
  reported exactly once).  Awaiting the handle marks the failure retrieved.
* **Awaiting a handle never cancels the task.**  Cancelling the task that
  awaits a :class:`JoinHandle` only stops the waiting (Tokio detaches too);
  stopping the spawned task is :meth:`JoinHandle.abort`.
* **An aborted task is an error for whoever joins it, not a cancellation of
  them.**  Awaiting the handle of a task that ended cancelled raises
  :class:`TaskAborted`, an ``Exception``, not ``asyncio.CancelledError``: a
  ``CancelledError`` escaping from the joining task would make asyncio (and
  ``TaskGroup``, ``asyncio.timeout``) believe *that* task was cancelled.  The
  same holds for a branch of ``join``/``try_join``/``select`` that ends
  cancelled although the combinator did not cancel it.
* **Combinators clean up before they return.**  ``select`` and ``try_join``
  cancel the branches they no longer need *and wait for them*, so a loser's
  ``finally:`` has finished when the winner is returned; if the caller is
  cancelled meanwhile, the cancellation is delivered after that clean-up.
  Branches that fail while being cleaned up are reported through the loop's
  exception handler instead of being dropped.

Errors
------
:class:`TaskAborted` (an ``Exception``) is this module's own: awaiting a
:class:`JoinHandle` or a :class:`JoinSet` result of a task that ended
cancelled, and a combinator branch cancelled by someone else.  ``join`` raises
an ``ExceptionGroup`` (``BaseExceptionGroup`` if a branch raised a
``BaseException``) of every failure; ``try_join`` and ``select`` raise the
failing branch's own exception.  Something that is not awaitable is a
``TypeError``.  All of the toolbox's errors are listed together in
docs/ARCHITECTURE.md, "Errors".
"""

from __future__ import annotations

import asyncio
import inspect
import types
import weakref
from collections import deque
from typing import (
    Any,
    AsyncIterator,
    Awaitable,
    Callable,
    Deque,
    Generator,
    Generic,
    NamedTuple,
    TypeVar,
)

from pyloop._blocking import run_blocking
from pyloop._core import clock as _clock

__all__ = ["JoinHandle", "JoinSet", "Selected", "TaskAborted", "join", "select",
           "spawn", "spawn_blocking", "try_join", "yield_now"]

T = TypeVar("T")

_CancelledError = asyncio.CancelledError
_CoroutineType = types.CoroutineType
_REGISTRY_ATTR = "_pyloop_task_registry"


class TaskAborted(Exception):
    """Awaiting a task (or a combinator branch) that ended cancelled.

    Raised by ``await handle`` after :meth:`JoinHandle.abort`, by
    :meth:`JoinSet.join_next` for an aborted member, and by ``join``,
    ``try_join`` and ``select`` for a branch that someone else cancelled.  It
    is deliberately not an ``asyncio.CancelledError``: the task that joins is
    not being cancelled.

    >>> handle.abort()
    >>> try:
    ...     await handle
    ... except TaskAborted:
    ...     pass
    """


# ---- bookkeeping shared by JoinHandle and JoinSet ---------------------------

def _registry(loop: asyncio.AbstractEventLoop) -> set[asyncio.Future[Any]]:
    # The set lives on the loop (every asyncio-compatible loop has a __dict__),
    # so a loop abandoned with tasks still pending can be collected with them
    # instead of being pinned by a module-level set.
    live = getattr(loop, _REGISTRY_ATTR, None)
    if live is None:
        live = set()
        setattr(loop, _REGISTRY_ATTR, live)
    return live


def _report(loop: asyncio.AbstractEventLoop, message: str, exc: BaseException,
            fut: asyncio.Future[Any] | None = None) -> None:
    context: dict[str, Any] = {"message": message, "exception": exc}
    if fut is not None:
        context["future"] = fut
    loop.call_exception_handler(context)


class _Core:
    """What a spawned task's completion needs to know about its handle.

    The task's done callback holds this object, not the handle, so dropping
    the handle is observable (``JoinHandle.__del__``) while the task runs.
    """

    __slots__ = ("task", "live", "handle_alive", "retrieved", "reported", "waiters",
                 "on_finish")

    def __init__(self, task: asyncio.Task[Any], live: set[asyncio.Future[Any]]) -> None:
        self.task = task
        self.live = live
        self.handle_alive = True
        self.retrieved = False
        self.reported = False
        # Futures of the tasks awaiting the handle (a list only once needed).
        self.waiters: list[asyncio.Future[None]] | None = None
        self.on_finish: Callable[[], None] | None = None

    def done(self, task: asyncio.Task[Any]) -> None:
        self.live.discard(task)
        waiters = self.waiters
        if waiters:
            self.waiters = None
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
        on_finish = self.on_finish
        if on_finish is not None:
            self.on_finish = None        # it refers back to the handle: break the cycle
            on_finish()
        # task.exception() also tells asyncio the failure is taken care of:
        # from here on this module reports it, exactly once.
        if not task.cancelled() and task.exception() is not None:
            if not self.handle_alive:
                self.report()

    def failed(self) -> bool:
        task = self.task
        return task.done() and not task.cancelled() and task.exception() is not None

    def report(self) -> None:
        if self.reported or self.retrieved:
            return
        self.reported = True
        task = self.task
        _report(task.get_loop(),
                f"pyloop.task: task {task.get_name()!r} failed and nobody awaited its JoinHandle",
                task.exception(), task)  # type: ignore[arg-type]


def _waker(waiter: asyncio.Future[None]) -> Callable[[object], None]:
    # A done callback that tolerates its waiter being cancelled meanwhile: a
    # callback scheduled by the awaited future cannot be taken back.
    def wake(_: object) -> None:
        if not waiter.done():
            waiter.set_result(None)
    return wake


class JoinHandle(Generic[T]):
    """The handle of a spawned task: await it for the task's result.

    ``await handle`` returns the task's return value or raises its exception;
    it raises :class:`TaskAborted` if the task ended cancelled.  Cancelling
    the awaiting task does not cancel the spawned one.  A handle may be
    awaited any number of times, by any number of tasks.

    >>> handle = spawn(compute(3))
    >>> handle.name, handle.is_finished()
    ('compute-3', False)
    >>> await handle
    9
    """

    __slots__ = ("_core", "__weakref__")

    def __init__(self, core: _Core) -> None:
        self._core = core

    @property
    def name(self) -> str:
        """The task's name (``spawn(..., name=...)`` or asyncio's default)."""
        return self._core.task.get_name()

    def abort(self) -> bool:
        """Ask the task to stop: cancel it at its next ``await``.

        Returns False if it had already finished.  The task may still run its
        ``finally:`` blocks; await the handle to wait for that (it then raises
        :class:`TaskAborted`, unless the task finished anyway).
        """
        return self._core.task.cancel()

    def is_finished(self) -> bool:
        """True once the task finished: returned, raised or was cancelled."""
        return self._core.task.done()

    def cancelled(self) -> bool:
        """True if the task finished by being cancelled (aborted)."""
        return self._core.task.cancelled()

    def get_task(self) -> asyncio.Task[T]:
        """The underlying ``asyncio.Task`` (for asyncio APIs that want one)."""
        return self._core.task

    def _outcome(self) -> T:
        core = self._core
        task = core.task
        core.retrieved = True
        if task.cancelled():
            raise TaskAborted(f"task {task.get_name()!r} was aborted")
        return task.result()

    def __await__(self) -> Generator[Any, None, T]:
        core = self._core
        task = core.task
        if not task.done():
            # Await a private future, not the task: asyncio cancels the
            # future a cancelled task is waiting on, and the spawned task must
            # survive its joiner being cancelled.
            waiter = task.get_loop().create_future()
            if core.waiters is None:
                core.waiters = [waiter]
            else:
                core.waiters.append(waiter)
            try:
                yield from waiter
            finally:
                if not waiter.done() or waiter.cancelled():
                    waiters = core.waiters
                    if waiters is not None and waiter in waiters:
                        waiters.remove(waiter)
        return self._outcome()

    def __del__(self) -> None:
        core = self._core
        core.handle_alive = False
        if not core.retrieved:
            task = core.task
            if task.done() and not task.cancelled() and task.exception() is not None:
                core.report()

    def __repr__(self) -> str:
        task = self._core.task
        if not task.done():
            state = "running"
        elif task.cancelled():
            state = "aborted"
        elif task.exception() is not None:
            state = f"failed: {task.exception()!r}"
        else:
            state = "finished"
        return f"<JoinHandle {task.get_name()!r} {state}>"


async def _await_it(aw: Awaitable[T]) -> T:
    return await aw


def _check_awaitable(aw: object, what: str) -> None:
    if not inspect.isawaitable(aw):
        raise TypeError(f"{what} needs an awaitable (a coroutine, a future, a "
                        f"JoinHandle...), got {aw!r}")


def _close_coroutines(aws: Any) -> None:
    # A rejected call must not leave its coroutines to warn "never awaited".
    for aw in aws:
        if inspect.iscoroutine(aw):
            aw.close()


def _spawn_on(loop: asyncio.AbstractEventLoop, aw: Awaitable[T],
              name: str | None) -> JoinHandle[T]:
    coro = aw if type(aw) is _CoroutineType or inspect.iscoroutine(aw) else _await_it(aw)
    task = loop.create_task(coro, name=name)
    live = _registry(loop)
    live.add(task)
    core = _Core(task, live)
    task.add_done_callback(core.done)
    return JoinHandle(core)


def _running_loop(what: str) -> asyncio.AbstractEventLoop:
    # asyncio's own "no running event loop" does not say which call needed one.
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(
            f"{what} needs a running event loop, and none is running in this thread: "
            f"call it from async code, e.g. inside `async def main()` started with "
            f"pyloop.run(main()) or asyncio.run(main())") from None


def _spawn(aw: Awaitable[T], name: str | None, what: str) -> JoinHandle[T]:
    try:
        if type(aw) is not _CoroutineType:
            _check_awaitable(aw, what)
        loop = _running_loop(what)
    except BaseException:
        _close_coroutines((aw,))
        raise
    return _spawn_on(loop, aw, name)


def spawn(aw: Awaitable[T], *, name: str | None = None) -> JoinHandle[T]:
    """Run ``aw`` (usually a coroutine) as a new task on the running loop.

    The task starts at the loop's next iteration and runs until it finishes,
    whether or not anyone keeps the returned :class:`JoinHandle`: the runtime
    holds a strong reference to it.  A failure nobody retrieves is reported
    through ``loop.call_exception_handler`` (see the module docs).

    >>> async def compute(x):
    ...     return x * x
    >>> handle = spawn(compute(3), name="compute-3")
    >>> await handle
    9
    """
    return _spawn(aw, name, "pyloop.task.spawn()")


def spawn_blocking(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> JoinHandle[T]:
    """Run ``fn(*args, **kwargs)`` on the blocking thread pool; return its handle.

    The call starts at once on ``pyloop``'s process-wide bounded pool (see
    ``pyloop._blocking``) with a copy of the caller's ``contextvars`` context.
    Await the handle for the return value or the exception.  Aborting the
    handle stops a call that has not started yet; one that is running in its
    thread runs to the end (threads cannot be interrupted), and its result is
    dropped.  Under a paused clock (``pyloop.time.pause``) auto-advance waits
    until the handle is finished (the call returned, or was aborted).

    >>> data = await spawn_blocking(pathlib.Path("big.bin").read_bytes)
    """
    if not callable(fn):
        raise TypeError(f"spawn_blocking() needs a callable, got {fn!r}")
    if inspect.iscoroutinefunction(fn):
        raise TypeError("spawn_blocking() runs plain functions; use spawn() for "
                        "a coroutine function")
    loop = _running_loop("pyloop.task.spawn_blocking()")
    handle = _spawn_on(loop, run_blocking(fn, *args, **kwargs), None)
    # On a pyloop loop a paused clock must not jump while the thread works.
    _clock.hold_until_done(loop, handle.get_task())
    return handle


@types.coroutine
def _one_turn() -> Generator[None, None, None]:
    # A bare yield is how a task gives the loop one turn (asyncio.sleep(0)
    # does the same, after checking its argument).
    yield


async def yield_now() -> None:
    """Let every other ready task run once before this one continues.

    >>> while busy():
    ...     crunch_a_bit()
    ...     await yield_now()
    """
    await _one_turn()


# ---- JoinSet -----------------------------------------------------------------

class JoinSet(Generic[T]):
    """A set of spawned tasks whose results come out in completion order.

    ``join_next()`` returns the result of the next task to finish (or raises
    its exception, or :class:`TaskAborted` for one that was aborted) and
    returns ``None`` once the set is empty -- test ``len(js)``, or use
    ``async for``, when a task's own result may be ``None``.  ``len(js)``
    counts the tasks not yet joined, finished or not.

    Used as ``async with JoinSet() as js:``, leaving the block -- normally or
    by an exception -- aborts the tasks left and waits for them (see
    :meth:`shutdown`).  A JoinSet garbage-collected with tasks still running
    aborts them.

    >>> async with JoinSet() as js:
    ...     for n in range(3):
    ...         js.spawn(compute(n))
    ...     results = sorted([r async for r in js])
    >>> results
    [0, 1, 4]
    """

    def __init__(self) -> None:
        self._running: set[JoinHandle[T]] = set()
        self._finished: Deque[JoinHandle[T]] = deque()
        self._waiters: Deque[asyncio.Future[None]] = deque()

    def spawn(self, aw: Awaitable[T], *, name: str | None = None) -> JoinHandle[T]:
        """Spawn ``aw`` as a member of this set (see :func:`spawn`).

        The returned handle may be used to abort that one task; its result
        still comes out of ``join_next``.
        """
        handle = _spawn(aw, name, "JoinSet.spawn()")
        self._running.add(handle)
        # Weakly: the loop's registry reaches this callback through the task,
        # and must not keep the set alive (dropping a JoinSet aborts it).
        ref = weakref.ref(self)

        def member_done() -> None:
            js = ref()
            if js is not None:
                js._member_done(handle)

        handle._core.on_finish = member_done
        return handle

    def _member_done(self, handle: JoinHandle[T]) -> None:
        if handle not in self._running:
            return          # discarded by shutdown() meanwhile
        self._running.discard(handle)
        self._finished.append(handle)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    def __len__(self) -> int:
        return len(self._running) + len(self._finished)

    def __bool__(self) -> bool:
        return bool(self._running or self._finished)

    def is_empty(self) -> bool:
        """True when no task is left to join."""
        return not self

    async def join_next(self) -> T | None:
        """Wait for the next task to finish; return its result.

        Raises what the task raised, or :class:`TaskAborted` if it was
        aborted.  Returns ``None`` at once if the set is empty.  Cancelling
        the caller leaves every task in the set.
        """
        while not self._finished:
            if not self._running:
                return None
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except _CancelledError:
                # Woken and cancelled at once: hand the wake-up on, or another
                # joiner would sleep while a result is waiting.
                if waiter.done() and not waiter.cancelled() and self._finished:
                    self._wake_one()
                raise
            finally:
                if not waiter.done():
                    waiter.cancel()
        return self._finished.popleft()._outcome()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def __aiter__(self) -> AsyncIterator[T]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[T]:
        while self:
            yield await self.join_next()  # type: ignore[misc]

    def abort_all(self) -> None:
        """Abort every task still running; they stay in the set until joined."""
        for handle in list(self._running):
            handle.abort()

    async def shutdown(self) -> None:
        """Abort every task, wait until all have finished, and empty the set.

        Results are dropped; a failure nobody joined is reported through the
        loop's exception handler.  If the caller is cancelled meanwhile, the
        tasks are still waited for, then the cancellation propagates.
        """
        cancelled = False
        # A loop, because a member's clean-up may spawn into the set.
        while self:
            self.abort_all()
            handles = list(self._running) + list(self._finished)
            cancelled |= await _drain([h.get_task() for h in handles])
            for handle in handles:
                self._running.discard(handle)
                try:
                    self._finished.remove(handle)
                except ValueError:
                    pass
                core = handle._core
                if core.failed():
                    core.report()
                core.retrieved = True
        if cancelled:
            raise _CancelledError()

    async def __aenter__(self) -> JoinSet[T]:
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        await self.shutdown()

    def __del__(self) -> None:
        for handle in list(getattr(self, "_running", ())):
            try:
                handle.abort()
            except RuntimeError:     # its loop is closed: nothing can run it
                pass

    def __repr__(self) -> str:
        return (f"<JoinSet running={len(self._running)} "
                f"finished={len(self._finished)}>")


# ---- combinators ---------------------------------------------------------------

class Selected(NamedTuple):
    """What :func:`select` returns: which branch won, and its value."""

    key: Any
    """The winner's position (positional form) or keyword (keyword form)."""
    value: Any
    """The winner's result."""


def _start(aws: tuple[Any, ...] | list[Any], what: str,
           loop: asyncio.AbstractEventLoop) -> list[asyncio.Future[Any]]:
    bad = [aw for aw in aws if not inspect.isawaitable(aw)]
    if bad:
        _close_coroutines(aws)
        _check_awaitable(bad[0], what)
    futs: list[asyncio.Future[Any]] = []
    for aw in aws:
        if inspect.iscoroutine(aw):
            futs.append(loop.create_task(aw))
        elif asyncio.isfuture(aw):
            futs.append(asyncio.ensure_future(aw, loop=loop))
        else:
            futs.append(loop.create_task(_await_it(aw)))
    return futs


async def _wait_all(pending: list[asyncio.Future[Any]],
                    stop: Callable[[asyncio.Future[Any]], bool] | None = None) -> asyncio.Future[Any] | None:
    """Wait until every future in ``pending`` is done; return None.

    With ``stop``, return early with the first future (in completion order)
    for which ``stop(future)`` is true.  The futures themselves are left
    alone: if the caller is cancelled, ``CancelledError`` propagates and they
    run on.  One gate future and a done callback on each, not a task per
    wait as ``asyncio.wait`` would make.
    """
    if not pending:
        return None
    gate = asyncio.get_running_loop().create_future()
    left = len(pending)
    hit: asyncio.Future[Any] | None = None

    def one_done(f: asyncio.Future[Any]) -> None:
        nonlocal left, hit
        left -= 1
        if stop is not None and hit is None and stop(f):
            hit = f
        if (not left or hit is not None) and not gate.done():
            gate.set_result(None)

    for f in pending:
        f.add_done_callback(one_done)
    try:
        await gate
    finally:
        for f in pending:
            f.remove_done_callback(one_done)
    return hit


async def _drain(futs: list[asyncio.Future[Any]]) -> bool:
    """Wait until every future in ``futs`` is done, even through cancellation.

    Returns True if the calling task was cancelled meanwhile: the caller
    re-raises that once its clean-up is complete.
    """
    cancelled = False
    while True:
        pending = [f for f in futs if not f.done()]
        if not pending:
            return cancelled
        try:
            await _wait_all(pending)
        except _CancelledError:
            cancelled = True


def _failure(fut: asyncio.Future[Any]) -> BaseException | None:
    if fut.cancelled():
        return TaskAborted("an awaitable passed to a pyloop.task combinator was cancelled")
    return fut.exception()


def _report_failures(loop: asyncio.AbstractEventLoop, futs: list[asyncio.Future[Any]],
                     what: str) -> None:
    # Branches that were being cancelled: cancellation is their expected end;
    # anything else they raised would otherwise vanish.
    for fut in futs:
        if fut.done() and not fut.cancelled() and fut.exception() is not None:
            _report(loop, f"pyloop.task.{what}: a branch failed while being cancelled",
                    fut.exception(), fut)  # type: ignore[arg-type]


async def _cancel_and_drain(futs: list[asyncio.Future[Any]], what: str) -> bool:
    for f in futs:
        f.cancel()
    cancelled = await _drain(futs)
    _report_failures(asyncio.get_running_loop(), futs, what)
    return cancelled


async def join(*aws: Awaitable[Any]) -> list[Any]:
    """Run every awaitable to completion, concurrently; return their results in order.

    Every branch runs to its end even if another fails.  If any failed, an
    ``ExceptionGroup`` of all the failures (in argument order) is raised once
    all have finished -- catch one kind with ``except* ValueError:``.  A branch
    that ends cancelled although ``join`` did not cancel it fails with
    :class:`TaskAborted`.  Cancelling the caller cancels every branch, waits
    for them, then propagates.

    >>> await join(fetch("a"), fetch("b"))
    [b'page a', b'page b']
    """
    loop = asyncio.get_running_loop()
    futs = _start(aws, "join()", loop)
    if await _drain_or_cancel(futs, "join"):
        raise _CancelledError()
    failures = [exc for exc in map(_failure, futs) if exc is not None]
    if failures:
        raise BaseExceptionGroup(
            f"join: {len(failures)} of {len(futs)} awaitables failed", failures)
    return [f.result() for f in futs]


async def _drain_or_cancel(futs: list[asyncio.Future[Any]], what: str) -> bool:
    # Wait for all; if the caller is cancelled, cancel the branches and wait
    # for them instead.  True if the caller was cancelled.
    try:
        await _wait_all([f for f in futs if not f.done()])
        return False
    except _CancelledError:
        await _cancel_and_drain(futs, what)
        return True


async def try_join(*aws: Awaitable[Any]) -> list[Any]:
    """Run the awaitables concurrently; the first failure cancels the rest.

    Returns the results in argument order if all succeed.  Otherwise the
    first failure (in completion order) is raised as is, after every other
    branch was cancelled and has finished.  A branch that ends cancelled
    although ``try_join`` did not cancel it fails with :class:`TaskAborted`.

    >>> user, perms = await try_join(load_user(uid), load_permissions(uid))
    """
    loop = asyncio.get_running_loop()
    futs = _start(aws, "try_join()", loop)
    first = next((f for f in futs if f.done() and _failure(f) is not None), None)
    if first is None:
        try:
            first = await _wait_all([f for f in futs if not f.done()],
                                    stop=lambda f: _failure(f) is not None)
        except _CancelledError:
            await _cancel_and_drain(futs, "try_join")
            raise
    if first is not None:
        others = [f for f in futs if f is not first]
        if await _cancel_and_drain(others, "try_join"):
            raise _CancelledError()
        exc = _failure(first)
        assert exc is not None
        raise exc
    return [f.result() for f in futs]


async def select(*aws: Awaitable[Any], **named: Awaitable[Any]) -> Selected:
    """Wait for the first of several awaitables; cancel and await the others.

    Pass the branches either positionally (``Selected.key`` is the winner's
    index) or by keyword (its keyword), not both.  The branch that finished
    first wins; if several finished in the same loop iteration, the first one
    in argument order wins.  Every other branch is cancelled and awaited
    before ``select`` returns (a loser's ``finally:`` has run to the end).
    If the winner raised, that exception is raised (after the clean-up).
    Futures and tasks passed in are cancelled when they lose; a
    :class:`JoinHandle` that loses is only no longer waited for.

    >>> got = await select(msg=inbox.get(), tick=asyncio.sleep(1))
    >>> if got.key == "msg":
    ...     handle(got.value)
    """
    if aws and named:
        _close_coroutines(aws)
        _close_coroutines(named.values())
        raise TypeError("select() takes its awaitables either positionally or by "
                        "keyword, not both")
    keys: list[Any]
    if named:
        keys = list(named)
        items: tuple[Any, ...] | list[Any] = list(named.values())
    else:
        items = aws
        keys = []
    if not items:
        raise ValueError("select() needs at least one awaitable")
    loop = asyncio.get_running_loop()
    futs = _start(items, "select()", loop)
    if not any(f.done() for f in futs):
        gate = loop.create_future()
        wake = _waker(gate)
        for f in futs:
            f.add_done_callback(wake)
        try:
            await gate
        except _CancelledError:
            await _cancel_and_drain(futs, "select")
            raise
    index = next(i for i, f in enumerate(futs) if f.done())
    winner = futs[index]
    losers = futs[:index] + futs[index + 1:]
    if await _cancel_and_drain(losers, "select"):
        raise _CancelledError()
    exc = _failure(winner)
    if exc is not None:
        raise exc
    return Selected(keys[index] if keys else index, winner.result())

