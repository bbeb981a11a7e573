"""Ways to make asyncio use pyloop: a policy, ``install()`` and ``run()``."""

import asyncio
from typing import Any, Coroutine, TypeVar

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
    """Set ``EventLoopPolicy()`` as asyncio's event loop policy."""
    asyncio.set_event_loop_policy(EventLoopPolicy())


def run(main: Coroutine[Any, Any, _T], *, debug: bool | None = None) -> _T:
    """Run the coroutine ``main`` on a new pyloop loop and return its result.

    Like ``asyncio.run``: the loop is closed afterwards, remaining tasks are
    cancelled, async generators and the default executor are shut down, and
    Ctrl-C cancels ``main`` cleanly.
    """
    if asyncio.events._get_running_loop() is not None:
        # Refuse before a Runner creates (and then fails to clean up) a loop.
        raise RuntimeError(
            "pyloop.run() cannot be called from a running event loop")
    with asyncio.Runner(debug=debug, loop_factory=new_event_loop) as runner:
        return runner.run(main)
