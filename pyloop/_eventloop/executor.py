"""Thread-pool executor support: ``run_in_executor`` and its lifecycle."""

import concurrent.futures
import threading
from asyncio import coroutines as _aio_coroutines
from asyncio import futures as _aio_futures

from .._core import clock as _clock

_wrap_future = _aio_futures.wrap_future


class ExecutorMixin:
    """The executor part of the ``AbstractEventLoop`` API.

    Service of ``Loop``: state created by ``_init_executor``, released by
    ``_close_executor`` (from ``close()``).  Needs from the loop:
    ``is_closed``, ``get_debug``, ``create_future``, ``call_soon_threadsafe``
    and the virtual-clock seam (``pyloop._core.clock``).
    """

    def _init_executor(self):
        self._default_executor = None   # made by the first run_in_executor(None, ...)
        self._executor_shutdown_called = False

    def run_in_executor(self, executor, func, *args):
        """Run ``func(*args)`` in ``executor`` (the default thread pool if
        None) and return an asyncio Future for its result."""
        if self.is_closed():
            raise RuntimeError("Event loop is closed")
        if not callable(func) or (self.get_debug()
                                  and _aio_coroutines.iscoroutinefunction(func)):
            if (_aio_coroutines.iscoroutine(func)
                    or _aio_coroutines.iscoroutinefunction(func)):
                raise TypeError("coroutines cannot be used with run_in_executor()")
            raise TypeError(
                f"a callable object was expected by run_in_executor(), got {func!r}")
        if executor is None:
            executor = self._default_executor
            if executor is None:
                if self._executor_shutdown_called:
                    raise RuntimeError("Executor shutdown has been called")
                executor = concurrent.futures.ThreadPoolExecutor(
                    thread_name_prefix="pyloop")
                self._default_executor = executor
        fut = _wrap_future(executor.submit(func, *args), loop=self)
        # A paused virtual clock must not auto-advance while the call runs:
        # its result is work the loop is still waiting for.
        _clock.hold_until_done(self, fut)
        return fut

    def set_default_executor(self, executor):
        """Use ``executor`` (a ThreadPoolExecutor) for ``run_in_executor(None, ...)``."""
        if not isinstance(executor, concurrent.futures.ThreadPoolExecutor):
            raise TypeError("executor must be ThreadPoolExecutor")
        self._default_executor = executor

    async def shutdown_default_executor(self, timeout=None):
        """Wait for the default executor to finish its work and shut it down.

        The join runs on a helper thread so the loop keeps serving.  With a
        ``timeout`` (Python 3.12+ semantics) the wait is abandoned after that
        many seconds with a RuntimeWarning."""
        self._executor_shutdown_called = True
        executor = self._default_executor
        if executor is None:
            return
        done = self.create_future()
        # The join is blocking work the loop waits for: a paused clock must not auto-advance
        # over it (asyncio.Runner, 3.12+, joins with a 300 s timeout, which it would skip).
        _clock.hold_until_done(self, done)
        thread = threading.Thread(target=self._shutdown_executor_in_thread,
                                  args=(executor, done))
        thread.start()
        if timeout is None:
            try:
                await done
            finally:
                thread.join()
            return
        import asyncio
        try:
            await asyncio.wait_for(done, timeout)
        except TimeoutError:
            import warnings
            warnings.warn("The executor did not finish joining its threads "
                          f"within {timeout} seconds.", RuntimeWarning,
                          stacklevel=2)
            executor.shutdown(wait=False)
        else:
            thread.join()

    def _shutdown_executor_in_thread(self, executor, done):
        try:
            executor.shutdown(wait=True)
        except Exception as exc:
            outcome = (done.set_exception, exc)
        else:
            outcome = (done.set_result, None)
        # The loop may be closed at any moment from its own thread, also
        # between an is_closed() test and the call: the call is the test.
        setter, value = outcome
        try:
            self.call_soon_threadsafe(_set_if_pending, done, setter, value)
        except RuntimeError:
            pass    # closed: nobody is waiting for `done` any more

    def _close_executor(self):
        self._executor_shutdown_called = True
        executor = self._default_executor
        if executor is not None:
            self._default_executor = None
            executor.shutdown(wait=False)


def _set_if_pending(fut, setter, value):
    if not fut.done():
        setter(value)
