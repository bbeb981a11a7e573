"""Helpers to run third-party servers and clients on a chosen event loop.

Most libraries here want to own the loop; ``run`` hands them one through
``asyncio.Runner(loop_factory=...)`` and ``LoopThread`` keeps a second loop
(for example a pyloop server) running in a background thread while the test's
own loop (for example a stock asyncio client) drives it from the main thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any, Awaitable, Callable, Coroutine, TypeVar

T = TypeVar("T")

# Upper bound for one test's coroutine: a hang fails that test, not the session.
TEST_TIMEOUT = 45.0


def is_pyloop_loop(loop: asyncio.AbstractEventLoop | None = None) -> bool:
    """True when ``loop`` (default: the running loop) is a pyloop loop."""
    if loop is None:
        loop = asyncio.get_running_loop()
    return type(loop).__module__.startswith("pyloop")


def running_loop_kind() -> str:
    """``"pyloop"`` or ``"asyncio"``: which implementation runs the caller."""
    loop = asyncio.get_running_loop()
    if is_pyloop_loop(loop):
        return "pyloop"
    if type(loop).__module__.startswith("asyncio"):
        return "asyncio"
    return type(loop).__module__


def run(loop_factory: Callable[[], asyncio.AbstractEventLoop],
        main: Callable[[], Coroutine[Any, Any, T]], timeout: float = TEST_TIMEOUT) -> T:
    """Run ``main()`` to completion on a fresh loop from ``loop_factory``.

    The loop is closed afterwards (asyncgens and the default executor shut down
    first), exactly as ``asyncio.run`` does.
    """
    async def guarded() -> T:
        return await asyncio.wait_for(main(), timeout)

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(guarded())


class LoopThread:
    """A loop running forever in a daemon thread until ``close()``.

    Example::

        with LoopThread(pyloop.new_event_loop) as server_loop:
            port = server_loop.call(start_server())
            ...  # talk to it from this thread's loop
            server_loop.call(stop_server())
    """

    def __init__(self, loop_factory: Callable[[], asyncio.AbstractEventLoop]) -> None:
        self._factory = loop_factory
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="integration-loop", daemon=True)

    def _main(self) -> None:
        try:
            self.loop = self._factory()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        try:
            self.loop.run_forever()
        finally:
            try:
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
                self.loop.run_until_complete(self.loop.shutdown_default_executor())
            finally:
                asyncio.set_event_loop(None)
                self.loop.close()

    def start(self) -> "LoopThread":
        self._thread.start()
        if not self._ready.wait(TEST_TIMEOUT):
            raise TimeoutError("background loop did not start")
        if self._error is not None:
            raise self._error
        return self

    def submit(self, coro: Awaitable[T]) -> concurrent.futures.Future[T]:
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]

    def call(self, coro: Awaitable[T], timeout: float = TEST_TIMEOUT) -> T:
        """Run ``coro`` on the background loop and wait for its result here (blocking)."""
        return self.submit(coro).result(timeout)

    async def acall(self, coro: Awaitable[T], timeout: float = TEST_TIMEOUT) -> T:
        """Like ``call`` but awaitable from another loop."""
        return await asyncio.wait_for(asyncio.wrap_future(self.submit(coro)), timeout)

    def close(self) -> None:
        if self.loop is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(TEST_TIMEOUT)
        if self._thread.is_alive():
            raise TimeoutError("background loop did not stop")

    def __enter__(self) -> "LoopThread":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()
