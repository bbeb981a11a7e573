"""Synchronisation primitives of ``pyloop.sync``: Semaphore, Notify, Barrier,
CancellationToken and RateLimiter.

They work on any asyncio loop.  Every waiter is a future of the running loop,
and every queue of waiters is served first come, first served: a large request
at the head is never overtaken by later small ones, so nobody starves.

Cancellation never loses anything.  A waiter that was granted something
(permits, a notification, tokens) and is cancelled before it resumes hands it
back, so the next waiter gets it.
"""

from __future__ import annotations

import asyncio
import collections
import math
import threading
from typing import Any, Awaitable, Deque, TypeVar

from ._channels import Closed

__all__ = [
    "Semaphore",
    "SemaphorePermit",
    "Notify",
    "Barrier",
    "BarrierWaitResult",
    "CancellationToken",
    "RateLimiter",
]

T = TypeVar("T")

# Loop times are seconds since boot as floats: differences below this are rounding.
_CLOCK_EPSILON = 1e-6


def _check_count(n: Any, what: str) -> int:
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError(f"{what} must be an int, got {type(n).__name__}")
    if n < 0:
        raise ValueError(f"{what} must be >= 0, got {n}")
    return n


def _settle(fut: asyncio.Future, result: Any) -> None:
    if not fut.done():
        fut.set_result(result)


# ---------------------------------------------------------------- Semaphore


class SemaphorePermit:
    """Permits held from a :class:`Semaphore`; give them back with :meth:`release`.

    A permit is a context manager (``with`` and ``async with``) that releases on
    exit::

        async with await sem.acquire_many(3):
            ...
    """

    __slots__ = ("_sem", "_n")

    def __init__(self, sem: "Semaphore", n: int) -> None:
        self._sem: Semaphore | None = sem
        self._n = n

    @property
    def permits(self) -> int:
        """How many permits this object holds (0 once released or forgotten)."""
        return self._n if self._sem is not None else 0

    def release(self) -> None:
        """Return the permits to the semaphore.  A second call does nothing."""
        sem, self._sem = self._sem, None
        if sem is not None:
            sem.release(self._n)

    def forget(self) -> None:
        """Drop the permits without returning them: the semaphore shrinks for good."""
        self._sem = None

    def __enter__(self) -> "SemaphorePermit":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    async def __aenter__(self) -> "SemaphorePermit":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<SemaphorePermit permits={self.permits}>"


class Semaphore:
    """A counting semaphore whose waiters are served in order (FIFO-fair).

    Unlike ``asyncio.Semaphore``, a waiter for several permits
    (:meth:`acquire_many`) keeps its place: later, smaller requests wait behind
    it.  Acquiring returns a :class:`SemaphorePermit`; ``async with sem:`` takes
    one permit for the block.  :meth:`close` wakes every waiter with
    :class:`Closed` and refuses later acquisitions.

    Example::

        sem = Semaphore(10)          # at most 10 requests in flight

        async def fetch(url):
            async with sem:
                return await http_get(url)
    """

    def __init__(self, permits: int = 1) -> None:
        self._permits = _check_count(permits, "permits")
        self._waiters: Deque[list] = collections.deque()   # [n, future]
        self._closed = False

    @property
    def available_permits(self) -> int:
        """Permits that can be taken right now without waiting."""
        return self._permits

    def is_closed(self) -> bool:
        """True once :meth:`close` has been called."""
        return self._closed

    def locked(self) -> bool:
        """True when an ``acquire()`` would have to wait."""
        return self._permits == 0 or bool(self._waiters)

    async def acquire(self) -> SemaphorePermit:
        """Wait for one permit and return it (see :meth:`acquire_many`)."""
        return await self.acquire_many(1)

    async def acquire_many(self, n: int) -> SemaphorePermit:
        """Wait until ``n`` permits are free, in arrival order, and take them.

        Raises :class:`Closed` if the semaphore is (or gets) closed while waiting.
        A cancelled waiter takes nothing: permits granted to it just before the
        cancellation go to the next waiter.
        """
        permit = self.try_acquire(n)
        if permit is not None:
            return permit
        fut = asyncio.get_running_loop().create_future()
        entry = [n, fut]
        self._waiters.append(entry)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                self.release(n)           # granted, then cancelled: hand them on
            else:
                try:
                    self._waiters.remove(entry)
                except ValueError:
                    pass
                self._wake()              # we may have been blocking the head
            raise
        return SemaphorePermit(self, n)

    def try_acquire(self, n: int = 1) -> SemaphorePermit | None:
        """Take ``n`` permits if that needs no waiting, else return None.

        Raises :class:`Closed` on a closed semaphore.
        """
        _check_count(n, "n")
        if self._closed:
            raise Closed("semaphore is closed")
        if not self._waiters and self._permits >= n:
            self._permits -= n
            return SemaphorePermit(self, n)
        return None

    def release(self, n: int = 1) -> None:
        """Give ``n`` permits back (what ``async with`` and permits do for you)."""
        self._permits += _check_count(n, "n")
        if self._waiters:
            self._wake()

    def add_permits(self, n: int) -> None:
        """Grow the semaphore by ``n`` permits."""
        self.release(n)

    def close(self) -> None:
        """Refuse new acquisitions and wake every waiter with :class:`Closed`.

        Permits already held stay valid and can still be released.
        """
        self._closed = True
        waiters, self._waiters = self._waiters, collections.deque()
        for _, fut in waiters:
            if not fut.done():
                fut.set_exception(Closed("semaphore is closed"))

    def _wake(self) -> None:
        waiters = self._waiters
        while waiters:
            n, fut = waiters[0]
            if fut.done():                # cancelled, not yet removed by its task
                waiters.popleft()
                continue
            if n > self._permits:
                break
            waiters.popleft()
            self._permits -= n
            fut.set_result(None)

    async def __aenter__(self) -> "Semaphore":
        if not self._closed and not self._waiters and self._permits:
            self._permits -= 1            # the common, uncontended case: no objects
        else:
            (await self.acquire_many(1)).forget()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release(1)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"permits={self._permits}"
        return f"<Semaphore {state} waiters={len(self._waiters)}>"


# ---------------------------------------------------------------- Notify


class Notify:
    """Wake one task or all waiting tasks, without data.

    :meth:`notify_one` wakes the oldest waiter; with nobody waiting it stores a
    single permit, so the next :meth:`notified` returns at once (a notification
    sent just before the receiver starts waiting is not lost).  Several
    ``notify_one`` calls with no waiter still store only one permit.
    :meth:`notify_waiters` wakes everyone waiting now and stores nothing.

    Example::

        notify = Notify()

        async def worker():
            while True:
                await notify.notified()
                drain_queue()

        add_to_queue(item); notify.notify_one()
    """

    def __init__(self) -> None:
        self._waiters: Deque[asyncio.Future] = collections.deque()
        self._permit = False

    async def notified(self) -> None:
        """Wait for a notification (or take the stored permit)."""
        if self._permit:
            self._permit = False
            return
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled() and fut.result() == "one":
                self.notify_one()         # pass the notification on
            else:
                try:
                    self._waiters.remove(fut)
                except ValueError:
                    pass
            raise

    def notify_one(self) -> None:
        """Wake the oldest waiter, or store a permit when nobody waits."""
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result("one")
                return
        self._permit = True

    def notify_waiters(self) -> None:
        """Wake every task waiting now; store nothing for later ones."""
        waiters, self._waiters = self._waiters, collections.deque()
        for fut in waiters:
            _settle(fut, "all")

    def __repr__(self) -> str:
        return f"<Notify waiters={len(self._waiters)} permit={self._permit}>"


# ---------------------------------------------------------------- Barrier


class BarrierWaitResult:
    """What :meth:`Barrier.wait` returns: exactly one task per round is the leader."""

    __slots__ = ("_leader",)

    def __init__(self, leader: bool) -> None:
        self._leader = leader

    def is_leader(self) -> bool:
        """True for exactly one of the tasks released together."""
        return self._leader

    def __repr__(self) -> str:
        return f"<BarrierWaitResult leader={self._leader}>"


class Barrier:
    """Let ``n`` tasks wait until all of them have arrived, then release them together.

    The barrier is reusable: after a round is released, the next ``n`` arrivals
    form the next round.  The last task to arrive is the round's leader.  A task
    cancelled while waiting leaves the round (its arrival no longer counts).

    Example::

        barrier = Barrier(3)

        async def worker(i):
            prepare(i)
            if (await barrier.wait()).is_leader():
                print("everyone is ready")
    """

    def __init__(self, n: int) -> None:
        _check_count(n, "n")
        if n < 1:
            raise ValueError("a barrier needs n >= 1 tasks")
        self._n = n
        self._waiters: list[asyncio.Future] = []

    @property
    def parties(self) -> int:
        """How many tasks make a round."""
        return self._n

    @property
    def n_waiting(self) -> int:
        """Tasks of the current round waiting now."""
        return len(self._waiters)

    async def wait(self) -> BarrierWaitResult:
        """Arrive and wait for the round to fill."""
        if len(self._waiters) + 1 >= self._n:
            waiters, self._waiters = self._waiters, []
            for fut in waiters:
                _settle(fut, None)
            return BarrierWaitResult(True)
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if not fut.done() or fut.cancelled():
                try:
                    self._waiters.remove(fut)
                except ValueError:
                    pass
            # A round that was already released stays released for this task
            # too; cancellation then only stops it from resuming.
            raise
        return BarrierWaitResult(False)

    def __repr__(self) -> str:
        return f"<Barrier {len(self._waiters)}/{self._n}>"


# ---------------------------------------------------------------- CancellationToken


class CancellationToken:
    """A flag that tells cooperating tasks to stop, with parent/child scoping.

    :meth:`cancel` can be called from any thread; everything awaiting
    :meth:`cancelled` wakes up.  A :meth:`child_token` is cancelled with its
    parent, but cancelling the child leaves the parent alone, so one request's
    work can be stopped without stopping the whole server.

    Example::

        token = CancellationToken()

        async def worker(tok):
            while not tok.is_cancelled():
                await do_some_work()

        async def server():
            result = await token.run_until_cancelled(serve_forever())
            # None here means the token fired first and serve_forever was cancelled
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cancelled = False
        self._waiters: list[asyncio.Future] = []
        self._children: list[CancellationToken] = []

    def is_cancelled(self) -> bool:
        """True once this token (or an ancestor) has been cancelled."""
        return self._cancelled

    def cancel(self) -> None:
        """Cancel this token and all its children.  Safe from any thread; idempotent."""
        with self._lock:
            if self._cancelled:
                return
            self._cancelled = True
            waiters, self._waiters = self._waiters, []
            children, self._children = self._children, []
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for fut in waiters:
            loop = fut.get_loop()
            if loop is running:
                _settle(fut, None)
            else:
                # Another thread may close that loop at any moment, also
                # between an is_closed() test and the call: the call is the
                # test.  One closed loop must not keep the other waiters (and
                # the children) from being woken.
                try:
                    loop.call_soon_threadsafe(_settle, fut, None)
                except RuntimeError:
                    pass    # closed: its waiters will never run again
        for child in children:
            child.cancel()

    def child_token(self) -> "CancellationToken":
        """A new token cancelled when this one is (but not the other way round)."""
        child = CancellationToken()
        with self._lock:
            if not self._cancelled:
                self._children.append(child)
                return child
        child.cancel()
        return child

    async def cancelled(self) -> None:
        """Wait until the token is cancelled (returns at once if it already is)."""
        if self._cancelled:
            return
        fut = asyncio.get_running_loop().create_future()
        with self._lock:
            if self._cancelled:
                return
            self._waiters.append(fut)
        try:
            await fut
        finally:
            if not fut.done() or fut.cancelled():
                with self._lock:
                    try:
                        self._waiters.remove(fut)
                    except ValueError:
                        pass

    async def run_until_cancelled(self, aw: Awaitable[T]) -> T | None:
        """Run ``aw`` until it finishes or the token is cancelled, whichever is first.

        Returns ``aw``'s result, or None when the token won; in that case ``aw``
        has been cancelled and awaited before this returns.
        """
        if self._cancelled:
            # Never start work that is already called off.
            if asyncio.iscoroutine(aw):
                aw.close()
            elif asyncio.isfuture(aw):
                aw.cancel()
            return None
        task = asyncio.ensure_future(aw)
        waiter = asyncio.ensure_future(self.cancelled())
        try:
            await asyncio.wait((task, waiter), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            waiter.cancel()
            await asyncio.gather(task, waiter, return_exceptions=True)
            raise
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        if task.done():
            return task.result()
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not task.cancelled() or (current is not None and current.cancelling()):
                raise                     # our caller is being cancelled too
            return None
        # It finished after all (it ignored or absorbed the cancellation).
        return task.result()

    def __repr__(self) -> str:
        return f"<CancellationToken cancelled={self._cancelled}>"


# ---------------------------------------------------------------- RateLimiter


class RateLimiter:
    """A token bucket: at most ``rate`` acquisitions per ``per`` seconds, bursts up to ``burst``.

    The bucket starts full.  :meth:`acquire` waits until enough tokens have
    accumulated; waiters are served in arrival order, so a request for many
    tokens is not overtaken by a stream of small ones.  Time is the running
    loop's ``time()``, so pyloop's virtual clock drives it in tests.

    Example::

        limiter = RateLimiter(100, per=1.0, burst=10)   # 100/s, bursts of 10

        async def call_api():
            await limiter.acquire()
            return await http_get(...)
    """

    def __init__(self, rate: float, *, per: float = 1.0, burst: int | None = None) -> None:
        if not isinstance(rate, (int, float)) or isinstance(rate, bool):
            raise TypeError(f"rate must be a number, got {type(rate).__name__}")
        if not isinstance(per, (int, float)) or isinstance(per, bool):
            raise TypeError(f"per must be a number, got {type(per).__name__}")
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"rate must be a positive finite number, got {rate!r}")
        if not (per > 0 and math.isfinite(per)):
            raise ValueError(f"per must be a positive finite number, got {per!r}")
        if burst is None:
            burst = max(1, int(rate))
        _check_count(burst, "burst")
        if burst < 1:
            raise ValueError("burst must be >= 1")
        self._rate = float(rate)
        self._per = float(per)
        self._burst = burst
        self._interval = self._per / self._rate   # seconds per token
        # Generic cell rate algorithm: `_tat` is when the bucket would be full
        # again given every token handed out or promised so far.  A request is
        # allowed once `_tat + n * interval - burst * interval <= now`.
        self._tat: float | None = None

    @property
    def rate(self) -> float:
        """Tokens added per ``per`` seconds."""
        return self._rate

    @property
    def burst(self) -> int:
        """The bucket's capacity."""
        return self._burst

    def _reserve(self, n: int, now: float) -> tuple[float, float]:
        _check_count(n, "n")
        if n > self._burst:
            raise ValueError(f"cannot acquire {n} tokens at once: burst is {self._burst}")
        tat = now if self._tat is None or self._tat < now else self._tat
        new_tat = tat + n * self._interval
        allowed_at = new_tat - self._burst * self._interval
        # Float rounding must not turn "exactly allowed now" into "wait 1e-10 s".
        if allowed_at - now < _CLOCK_EPSILON:
            allowed_at = now
        return new_tat, allowed_at

    def try_acquire(self, n: int = 1) -> bool:
        """Take ``n`` tokens if they are there now; never waits."""
        now = asyncio.get_running_loop().time()
        new_tat, allowed_at = self._reserve(n, now)
        if allowed_at <= now:
            self._tat = new_tat
            return True
        return False

    async def acquire(self, n: int = 1) -> None:
        """Wait until ``n`` tokens are available and take them.

        A cancelled waiter gives its reservation back.
        """
        loop = asyncio.get_running_loop()
        now = loop.time()
        new_tat, allowed_at = self._reserve(n, now)
        self._tat = new_tat
        if allowed_at <= now:
            return
        try:
            await asyncio.sleep(allowed_at - now)
        except asyncio.CancelledError:
            # Delaying or dropping a promised grant never overspends the bucket.
            assert self._tat is not None
            self._tat -= n * self._interval
            raise

    def __repr__(self) -> str:
        return f"<RateLimiter rate={self._rate:g}/{self._per:g}s burst={self._burst}>"
