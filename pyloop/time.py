"""Time the Tokio way: sleep, deadlines, timeouts, intervals, and a virtual clock for tests.

    import pyloop.time as ptime

    await ptime.sleep(0.5)
    async with ptime.timeout(2.0):                # raises ptime.Elapsed after 2 s
        reply = await ask()
    reply = await ptime.timeout(2.0, ask())       # the same, for one awaitable
    async for deadline in ptime.interval(1.0):    # first tick at once, then every second
        heartbeat()

Everything but the virtual clock works on any asyncio loop.  Durations are
seconds (``int``/``float``, or a ``datetime.timedelta``); deadlines are in
``loop.time()`` units.  A negative or NaN duration, or a NaN deadline, raises
``ValueError``: asyncio quietly treats a negative delay as zero, which hides
arithmetic bugs.

Virtual time (pyloop loops only)
--------------------------------
``pause()`` freezes the loop's clock; from then on time moves only when a test
says so, and never while a callback runs, so timer-driven code becomes
deterministic and a test of an hour-long timeout takes milliseconds::

    async def test_gives_up_after_an_hour():
        ptime.pause()                             # auto-advance is on by default
        with pytest.raises(ptime.Elapsed):
            async with ptime.timeout(3600):
                await never()

* **auto-advance** (the default): when every task is waiting -- no callback
  is ready, a non-blocking poll finds no I/O and no ``spawn_blocking`` call
  is in flight -- the clock jumps to the next timer's deadline.  Beware real
  I/O with a paused clock: an answer that has not arrived yet is "nothing to
  do", so the clock may jump past a timeout that would not have expired in
  real time.
* ``await advance(dt)`` moves the clock forward by ``dt``, stepping from timer
  deadline to timer deadline and letting the program settle at each step (every
  task runs until it waits again), so an interval that should tick ten times in
  ``dt`` does tick ten times, each at its own deadline.
* ``resume()`` lets time flow again from where it got to (it never goes back:
  ``loop.time()`` stays ahead of ``time.monotonic()`` by the time skipped).

The clock belongs to the loop: pausing affects every task on it, and
``asyncio.sleep``/``wait_for``/``asyncio.timeout`` follow it too.

Errors
------
:class:`Elapsed` (a subclass of the built-in ``TimeoutError``) is this
module's own: a :func:`timeout` or :func:`timeout_at` deadline passed.  Bad
durations and deadlines are ``TypeError``/``ValueError`` (see above).
``RuntimeError`` means misuse: a :class:`Timeout` used outside a task, for a
second block or rescheduled once over, and the virtual-clock functions on a
loop that is not pyloop's or whose clock is not in the state they need.  All
of the toolbox's errors are listed together in docs/ARCHITECTURE.md, "Errors".
"""

from __future__ import annotations

import asyncio
import datetime
import enum
import inspect
import math
import numbers
import types
from typing import Any, AsyncIterator, Awaitable, Coroutine, Generator, TypeVar, overload

from pyloop._core import clock as _clock

__all__ = ["Elapsed", "Interval", "MissedTick", "Timeout", "advance", "interval",
           "is_paused", "pause", "paused", "resume", "sleep", "sleep_until",
           "timeout", "timeout_at"]

T = TypeVar("T")

_CancelledError = asyncio.CancelledError
_INF = math.inf


class Elapsed(TimeoutError):
    """A :func:`timeout` or :func:`timeout_at` deadline passed.

    A subclass of the built-in ``TimeoutError`` (which ``asyncio.TimeoutError``
    is), so existing ``except TimeoutError`` handlers catch it.
    """


# ---- argument checks -----------------------------------------------------------

def _seconds(value: Any, what: str) -> float:
    if isinstance(value, datetime.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, numbers.Real):
        seconds = float(value)
    else:
        raise TypeError(f"{what} must be a number of seconds or a timedelta, "
                        f"got {value!r}")
    if math.isnan(seconds):
        raise ValueError(f"{what} must not be NaN")
    if seconds < 0:
        raise ValueError(f"{what} must not be negative, got {value!r}")
    return seconds


def _deadline(value: Any, what: str = "deadline") -> float:
    if not isinstance(value, numbers.Real):
        raise TypeError(f"{what} must be a loop.time() value, got {value!r}")
    when = float(value)
    if math.isnan(when):
        raise ValueError(f"{what} must not be NaN")
    return when


def _close(aw: object) -> None:
    if isinstance(aw, types.CoroutineType):
        aw.close()


@types.coroutine
def _one_turn() -> Generator[None, None, None]:
    yield


def _set_done(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


# ---- sleeping ----------------------------------------------------------------

async def sleep(delay: float | datetime.timedelta) -> None:
    """Suspend the calling task for ``delay`` seconds.

    ``sleep(0)`` gives other ready tasks one turn; ``sleep(math.inf)`` waits
    until cancelled (without setting a timer).

    >>> await sleep(0.25)
    >>> await sleep(datetime.timedelta(milliseconds=250))
    """
    seconds = _seconds(delay, "delay")
    if seconds == 0:
        await _one_turn()
    elif seconds == _INF:
        await asyncio.get_running_loop().create_future()
    else:
        await asyncio.sleep(seconds)


async def sleep_until(deadline: float) -> None:
    """Suspend the calling task until ``loop.time()`` reaches ``deadline``.

    A deadline in the past returns at the loop's next iteration.

    >>> loop = asyncio.get_running_loop()
    >>> start = loop.time()
    >>> for i in range(1, 4):
    ...     await sleep_until(start + i)       # no drift, unlike sleep(1) x3
    """
    when = _deadline(deadline)
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    if when == _INF:
        await fut
        return
    handle = loop.call_at(when, _set_done, fut)
    try:
        await fut
    finally:
        handle.cancel()


# ---- timeouts ------------------------------------------------------------------

# How long a chain of awaited tasks Timeout's tie rule follows (see _recheck);
# far more than real code nests, it only bounds the walk.
_TIE_CHAIN_MAX = 64


class _State(enum.Enum):
    CREATED = "created"
    ENTERED = "active"
    EXPIRING = "expiring"
    EXPIRED = "expired"
    EXITED = "finished"


class Timeout:
    """A deadline for the block it guards; made by :func:`timeout` / :func:`timeout_at`.

    When the deadline passes, the task running the block is cancelled and the
    ``async with`` raises :class:`Elapsed` in its place.  Only the
    cancellation this object caused becomes ``Elapsed``: a cancellation from
    outside (``task.cancel()``), or one by an enclosing timeout that expired
    at the same moment, propagates unchanged -- the bookkeeping is asyncio's
    ``Task.cancelling()``/``uncancel()``, as in ``asyncio.timeout``, so the two
    nest in each other freely.

    The value wins a tie, as in Tokio (whose ``Timeout`` polls the inner
    future before the deadline): when what the block awaits became ready in
    the same loop iteration as the deadline -- ``timeout(1, sleep(1))`` on a
    paused clock, where both timers are due at the same instant -- the task
    first gets the step that delivers it (through a chain of awaited tasks
    too); the block is cancelled only if it is still running after that
    step.  A block that waits for something not ready is cancelled one loop
    turn after the deadline's timer; one that is merely runnable (a bare
    ``sleep(0)``, Tokio's ``yield_now``) at once.

    >>> async with timeout(5.0) as t:
    ...     await connect()
    ...     t.reschedule(t.deadline + 5.0)   # more time for the handshake
    ...     await handshake()
    """

    __slots__ = ("_deadline", "_loop", "_task", "_handle", "_state", "_cancelling", "_tie_depth")

    def __init__(self, deadline: float | None, loop: asyncio.AbstractEventLoop) -> None:
        self._deadline = deadline
        self._loop = loop
        self._task: asyncio.Task[Any] | None = None
        self._handle: asyncio.TimerHandle | asyncio.Handle | None = None
        self._state = _State.CREATED
        self._cancelling = 0
        self._tie_depth = _TIE_CHAIN_MAX

    @property
    def deadline(self) -> float | None:
        """The deadline in ``loop.time()`` units, or None for no deadline."""
        return self._deadline

    def when(self) -> float | None:
        """The deadline (the name ``asyncio.Timeout`` uses)."""
        return self._deadline

    def expired(self) -> bool:
        """True once the deadline passed while the block was running."""
        return self._state in (_State.EXPIRING, _State.EXPIRED)

    def reschedule(self, deadline: float | None) -> None:
        """Move the deadline (``loop.time()`` units; None: no deadline).

        Allowed before the block starts and while it runs, not after it
        expired or finished.
        """
        if deadline is not None:
            deadline = _deadline(deadline)
        if self._state in (_State.EXPIRING, _State.EXPIRED):
            raise RuntimeError("cannot reschedule a timeout that already expired")
        if self._state is _State.EXITED:
            raise RuntimeError("cannot reschedule a timeout whose block has finished")
        self._deadline = deadline
        if self._state is not _State.ENTERED:
            return
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if deadline is None or deadline == _INF:
            return
        loop = self._loop
        if deadline <= loop.time():
            self._handle = loop.call_soon(self._on_deadline)
        else:
            self._handle = loop.call_at(deadline, self._on_deadline)

    # A tie between the deadline and the value goes to the value (Tokio polls
    # the inner future first).  In asyncio terms "the value is ready" means
    # the future the task waits on is done and the task's wake-up step is
    # queued: a task.cancel() then would land on that step and throw the
    # result away.  So the deadline only starts a decision, taken one loop
    # turn later (_recheck), once every callback of the deadline's own
    # iteration has run (a timer due at the same instant that completes the
    # future comes after this one).  Then, if the task waits on a done future,
    # or on a task that waits on a done future (a chain of awaited tasks,
    # ``depth`` links long), the decision waits one more turn for the
    # completion to travel up; it must get one link closer each turn, so the
    # grace is bounded by the chain's length and a task that keeps making
    # fresh progress (a ping-pong with another task) is still cancelled.  A
    # task that is merely runnable (a bare ``sleep(0)``) is cancelled at once,
    # as Tokio's yield_now is Pending.  The awaited future is Task._fut_waiter,
    # which asyncio's Task (C and Python) has; other task classes get no grace.

    def _ready_depth(self) -> int | None:
        # How many awaited tasks lie between our task and a done future, or
        # None if the chain of awaits ends in a pending future.
        fut = getattr(self._task, "_fut_waiter", None)
        depth = 0
        while fut is not None and depth < _TIE_CHAIN_MAX:
            if fut.done():
                return depth
            fut = getattr(fut, "_fut_waiter", None)
            depth += 1
        return None

    def _on_deadline(self) -> None:
        if getattr(self._task, "_fut_waiter", None) is None:
            self._expire()
            return
        self._tie_depth = _TIE_CHAIN_MAX
        self._handle = self._loop.call_soon(self._recheck)

    def _recheck(self) -> None:
        depth = self._ready_depth()
        if depth is None or depth >= self._tie_depth:
            self._expire()
            return
        self._tie_depth = depth
        self._handle = self._loop.call_soon(self._recheck)

    def _expire(self) -> None:
        assert self._task is not None
        self._handle = None
        self._state = _State.EXPIRING
        self._task.cancel()

    async def __aenter__(self) -> Timeout:
        if self._state is not _State.CREATED:
            raise RuntimeError("a Timeout can guard one block only")
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("pyloop.time.timeout() must be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        self._state = _State.ENTERED
        self.reschedule(self._deadline)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: Any) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._state is _State.EXPIRING:
            self._state = _State.EXPIRED
            assert self._task is not None
            # uncancel() first, always: our cancel() must be taken back even
            # if the block swallowed the CancelledError.
            if (self._task.uncancel() <= self._cancelling and exc_type is not None
                    and issubclass(exc_type, _CancelledError)):
                raise Elapsed(f"deadline {self._deadline} passed") from exc
        elif self._state is _State.ENTERED:
            self._state = _State.EXITED
        return None

    def __repr__(self) -> str:
        return f"<Timeout {self._state.value} deadline={self._deadline}>"


async def _bounded(guard: Timeout, aw: Awaitable[T]) -> T:
    async with guard:
        return await aw


def _make_timeout(deadline: float | None, aw: Any) -> Any:
    guard = Timeout(deadline, asyncio.get_running_loop())
    if aw is None:
        return guard
    if not inspect.isawaitable(aw):
        raise TypeError(f"timeout() needs an awaitable, got {aw!r}")
    return _bounded(guard, aw)


@overload
def timeout(delay: float | datetime.timedelta | None) -> Timeout: ...
@overload
def timeout(delay: float | datetime.timedelta | None,
            aw: Awaitable[T]) -> Coroutine[Any, Any, T]: ...


def timeout(delay: Any, aw: Any = None) -> Any:
    """A deadline ``delay`` seconds from now, raising :class:`Elapsed`.

    Two forms:

    * ``async with timeout(delay):`` guards a block (see :class:`Timeout`);
    * ``await timeout(delay, aw)`` awaits ``aw`` under the deadline and returns
      its result (``aw`` is cancelled when the deadline passes).

    When ``aw`` (or the block) becomes ready at the deadline's instant, the
    value wins, as in Tokio (see :class:`Timeout`).  ``delay=None`` means no
    deadline (one can be set later with ``reschedule``).  Must be called with
    a running loop.

    >>> async with timeout(1.5):
    ...     await slow()
    >>> body = await timeout(1.5, response.read())
    """
    try:
        if delay is None:
            deadline: float | None = None
        else:
            seconds = _seconds(delay, "delay")
            deadline = _INF if seconds == _INF else asyncio.get_running_loop().time() + seconds
        return _make_timeout(deadline, aw)
    except BaseException:
        _close(aw)
        raise


@overload
def timeout_at(deadline: float | None) -> Timeout: ...
@overload
def timeout_at(deadline: float | None, aw: Awaitable[T]) -> Coroutine[Any, Any, T]: ...


def timeout_at(deadline: Any, aw: Any = None) -> Any:
    """Like :func:`timeout`, with an absolute deadline in ``loop.time()`` units.

    >>> loop = asyncio.get_running_loop()
    >>> async with timeout_at(loop.time() + 10):
    ...     await first_step()
    ...     await second_step()                 # both within the same 10 s
    """
    try:
        return _make_timeout(None if deadline is None else _deadline(deadline), aw)
    except BaseException:
        _close(aw)
        raise


# ---- intervals -----------------------------------------------------------------

class MissedTick(enum.Enum):
    """What an :class:`Interval` does after ticks were missed (the task was late).

    With period 10 and ticks due at 0, 10, 20, 30, ..., a task that takes its
    tick at 0 and asks for the next one only at 35 gets:

    * ``BURST``: ticks due at 10, 20, 30 at once, then 40, 50, ... -- catch up
      so the count of ticks is right;
    * ``DELAY``: a tick at once, then 45, 55, ... -- every gap is at least a
      period;
    * ``SKIP``: a tick at once, then 40, 50, ... -- stay on the original grid,
      dropping the missed ticks.
    """

    BURST = "burst"
    DELAY = "delay"
    SKIP = "skip"


# A wake-up this much after its deadline is the timer's ordinary lateness (a
# loaded machine, a long callback), not a missed tick: treating it as missed
# would make DELAY drift by that much on every tick.  Tokio uses 5 ms as well.
_MISSED_SLACK = 0.005


class Interval:
    """Ticks every ``period`` seconds; made by :func:`interval`.

    ``await iv.tick()`` waits for the next tick and returns its scheduled time
    (``loop.time()`` units); ``async for deadline in iv`` does the same
    forever.  Cancelling a ``tick()`` loses no tick.
    """

    __slots__ = ("_loop", "_period", "_next", "missed_tick")

    def __init__(self, loop: asyncio.AbstractEventLoop, start: float, period: float,
                 missed_tick: MissedTick) -> None:
        self._loop = loop
        self._period = period
        self._next = start
        self.missed_tick = missed_tick
        """The policy applied after missed ticks; may be changed at any time."""

    @property
    def period(self) -> float:
        """Seconds between ticks."""
        return self._period

    @property
    def next_deadline(self) -> float:
        """When the next tick is due (``loop.time()`` units)."""
        return self._next

    async def tick(self) -> float:
        """Wait for the next tick; return the time it was due."""
        loop = self._loop
        due = self._next
        if loop.time() < due:
            await sleep_until(due)
        now = loop.time()
        period = self._period
        if now - due <= _MISSED_SLACK:
            self._next = due + period
        elif self.missed_tick is MissedTick.BURST:
            self._next = due + period
        elif self.missed_tick is MissedTick.DELAY:
            self._next = now + period
        else:
            # The first grid point after now (the grid: due + k * period).
            self._next = now + period - math.fmod(now - due, period)
        return due

    def reset(self) -> None:
        """Restart the schedule: the next tick is one period from now."""
        self._next = self._loop.time() + self._period

    def __aiter__(self) -> AsyncIterator[float]:
        return self

    async def __anext__(self) -> float:
        return await self.tick()

    def __repr__(self) -> str:
        return (f"<Interval period={self._period} next={self._next} "
                f"missed_tick={self.missed_tick.name}>")


def interval(period: float | datetime.timedelta, *,
             missed_tick: MissedTick = MissedTick.BURST,
             start: float | None = None) -> Interval:
    """An :class:`Interval` ticking every ``period`` seconds from ``start``.

    ``start`` is the first tick's deadline in ``loop.time()`` units (default:
    now, so the first ``tick()`` completes at once, as in Tokio).  Must be
    called with a running loop.

    >>> iv = interval(0.5, missed_tick=MissedTick.SKIP)
    >>> async for deadline in iv:
    ...     await poll_sensor()
    """
    seconds = _seconds(period, "period")
    if seconds == 0 or seconds == _INF:
        raise ValueError(f"period must be positive and finite, got {period!r}")
    if not isinstance(missed_tick, MissedTick):
        raise TypeError(f"missed_tick must be a MissedTick, got {missed_tick!r}")
    loop = asyncio.get_running_loop()
    first = loop.time() if start is None else _deadline(start, "start")
    if first == _INF:
        raise ValueError("start must be finite")
    return Interval(loop, first, seconds, missed_tick)


# ---- virtual time ----------------------------------------------------------------

# How many loop turns advance() waits, at one clock step, for the program to
# settle (every task waiting on something) before moving on regardless.  A
# legitimate chain of wake-ups (a timer wakes a task that feeds a queue that
# wakes another ...) settles in a handful; the cap only stops a task that
# spins with sleep(0) from turning advance() into a hang.
_SETTLE_TURNS = 1000
# Deadlines are float seconds rounded up to whole nanoseconds, so "t0 + 10" computed
# by call_later can land a nanosecond past the same instant reached by advancing
# 9.999 s and then 0.001 s.  advance() counts a timer within this slack after its
# target as due at the target, so advancing by the delay always fires the timer.
_ADVANCE_SLACK_NS = 1000


def _virtual_loop(loop: asyncio.AbstractEventLoop | None) -> asyncio.AbstractEventLoop:
    if loop is None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError("virtual time needs a running pyloop loop: call this "
                               "from async code started with pyloop.run(main()), or "
                               "pass loop=") from None
    _clock.require(loop)
    return loop


def pause(auto_advance: bool = True, *, loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Freeze the clock of a pyloop loop (the running one by default).

    With ``auto_advance`` the clock jumps to the next timer whenever the loop
    has nothing else to do; without it, only :func:`advance` moves it.
    Raises RuntimeError if the clock is already paused or the loop is not a
    pyloop loop.

    >>> pause()
    >>> start = asyncio.get_running_loop().time()
    >>> await asyncio.sleep(3600)                  # returns at once
    >>> asyncio.get_running_loop().time() - start
    3600.0
    """
    _clock.pause(_virtual_loop(loop), bool(auto_advance))


def resume(*, loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Let the clock run again, from the time it reached while paused.

    Raises RuntimeError if it is not paused.
    """
    _clock.resume(_virtual_loop(loop))


def is_paused(*, loop: asyncio.AbstractEventLoop | None = None) -> bool:
    """True if the loop's clock is paused (never, for a non-pyloop loop)."""
    if loop is None:
        loop = asyncio.get_running_loop()
    return _clock.is_paused(loop)


async def _settle(loop: asyncio.AbstractEventLoop) -> None:
    # Give the loop turns until nothing but this task is ready and no timer
    # is due: every other task is waiting for something.
    for _ in range(_SETTLE_TURNS):
        await _one_turn()
        if _clock.ready_len(loop) == 0:
            due = _clock.next_deadline_ns(loop)
            if due is None or due > _clock.now_ns(loop):
                return


async def advance(dt: float | datetime.timedelta) -> None:
    """Move the paused clock ``dt`` seconds forward, firing timers on the way.

    The clock stops at each timer deadline up to the new time, in order, and
    the program settles there (every task runs until it waits again) before
    the clock moves on; then ``advance`` returns.  Needs a paused clock.

    >>> pause(auto_advance=False)
    >>> iv = interval(1.0)
    >>> ticker = pyloop.task.spawn(count_ticks(iv))
    >>> await advance(10)                          # exactly 11 ticks: 0, 1, ..., 10
    """
    seconds = _seconds(dt, "dt")
    if seconds == _INF:
        raise ValueError("dt must be finite")
    loop = _virtual_loop(None)
    if not _clock.is_paused(loop):
        raise RuntimeError("advance() needs a paused clock: call pyloop.time.pause() first")
    target = _clock.now_ns(loop) + round(seconds * 1e9)
    await _settle(loop)
    while _clock.is_paused(loop):
        due = _clock.next_deadline_ns(loop)
        if due is None or due > target + _ADVANCE_SLACK_NS or due <= _clock.now_ns(loop):
            # Nothing more before the target -- or a timer is due that the
            # settling could not get to (a task keeps the loop busy): jump.
            break
        _clock.set_ns(loop, due)
        await _settle(loop)
    if _clock.is_paused(loop):
        _clock.set_ns(loop, target)
        await _settle(loop)


class paused:
    """``with paused():`` (or ``async with``) pauses the clock for the block.

    The clock is resumed on the way out, unless the block resumed it itself.

    >>> with paused():
    ...     async with timeout(60):
    ...         await ask_slow_server()     # a fake that sleeps 30 s: instant
    """

    def __init__(self, auto_advance: bool = True, *,
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._auto_advance = auto_advance
        self._loop = loop
        self._bound: asyncio.AbstractEventLoop | None = None

    def __enter__(self) -> paused:
        self._bound = _virtual_loop(self._loop)
        _clock.pause(self._bound, bool(self._auto_advance))
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bound is not None and _clock.is_paused(self._bound):
            _clock.resume(self._bound)

    async def __aenter__(self) -> paused:
        return self.__enter__()

    async def __aexit__(self, *exc: Any) -> None:
        self.__exit__()
