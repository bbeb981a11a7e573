"""Ways to make asyncio use pyloop: a policy, ``install()`` and ``run()``."""

import asyncio
import warnings
from typing import Any, Callable, Coroutine, TypeVar

from .loop import Loop

_T = TypeVar("_T")


def new_event_loop() -> Loop:
    """Return a new ``pyloop.Loop``."""
    return Loop()


class EventLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """An asyncio event loop policy whose loops are ``pyloop.Loop``.

    ``asyncio.set_event_loop_policy(pyloop.EventLoopPolicy())`` makes
    ``asyncio.run()`` and ``asyncio.new_event_loop()`` use pyloop.
    """

    def _loop_factory(self) -> Loop:
        return Loop()

    def new_event_loop(self) -> Loop:
        """Return a new ``pyloop.Loop``."""
        return Loop()


def install() -> None:
    """Set ``EventLoopPolicy()`` as asyncio's event loop policy.

    Call it before ``asyncio.run()``: loops created from then on are pyloop's.
    Called while a loop that is not pyloop's runs in this thread (inside
    ``asyncio.run(main())``), it still sets the policy but warns
    (``RuntimeWarning``): a running loop cannot be replaced, so the code that
    runs now stays on asyncio's loop, which is almost surely not what the
    caller meant.  It warns rather than raises because that is how asyncio
    treats a call that does what it says but probably not what was meant
    (a coroutine never awaited, a transport never closed), and because
    setting the policy for loops made later (the next ``asyncio.run``, loops
    of other threads) is legitimate.
    """
    running = asyncio.events._get_running_loop()
    if running is not None and not isinstance(running, Loop):
        warnings.warn(
            f"pyloop.install() was called inside a running "
            f"{type(running).__module__}.{type(running).__qualname__}, which it cannot "
            f"replace: only loops created from now on are pyloop's.  Call "
            f"pyloop.install() before asyncio.run(main()), or run main with "
            f"pyloop.run(main()) or asyncio.Runner(loop_factory=pyloop.new_event_loop)",
            RuntimeWarning, stacklevel=2)
    asyncio.set_event_loop_policy(EventLoopPolicy())


def run(main: Coroutine[Any, Any, _T], *, loop_factory: Callable[[], Loop] | None = None,
        debug: bool | None = None) -> _T:
    """Run the coroutine ``main`` on a new pyloop loop and return its result.

    Like ``asyncio.run``: the loop is closed afterwards, remaining tasks are
    cancelled, async generators and the default executor are shut down, and
    Ctrl-C cancels ``main`` cleanly.

    ``loop_factory`` makes the loop, as for ``uvloop.run`` and (3.12+)
    ``asyncio.run``: ``new_event_loop`` when None; a factory of a ``Loop``
    subclass, or one that configures the loop it makes.  Like ``uvloop.run``,
    it must make a pyloop loop: anything else is closed and refused with
    TypeError (``asyncio.Runner(loop_factory=...)`` runs any loop).
    """
    if asyncio.events._get_running_loop() is not None:
        # Refuse before a Runner creates (and then fails to clean up) a loop.
        raise RuntimeError(
            "pyloop.run() cannot be called from a running event loop: "
            "await the coroutine instead, or spawn it with pyloop.task.spawn()")
    make = new_event_loop if loop_factory is None else loop_factory

    def make_pyloop_loop() -> Loop:
        # Called by the Runner when it first needs its loop; raising here leaves
        # the Runner with nothing to clean up.
        loop = make()
        if not isinstance(loop, Loop):
            close = getattr(loop, "close", None)
            if callable(close):
                close()
            raise TypeError(
                f"pyloop.run() runs on a pyloop loop, but loop_factory made a "
                f"{type(loop).__module__}.{type(loop).__qualname__}: pass a factory of "
                f"pyloop.Loop (or of a subclass), or use asyncio.Runner(loop_factory=...) "
                f"for other loops")
        return loop

    with asyncio.Runner(debug=debug, loop_factory=make_pyloop_loop) as runner:
        return runner.run(main)
