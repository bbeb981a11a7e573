"""Async generator finalization: the hooks the loop installs while running.

Python calls ``firstiter`` when an async generator first runs and
``finalizer`` when an unfinished one is garbage-collected; the loop then
schedules its ``aclose()``.  ``shutdown_asyncgens`` closes every generator
still alive, so their ``finally`` blocks run before the loop closes.
"""

import warnings
import weakref


class AsyncGenMixin:
    """The async-generator part of the ``AbstractEventLoop`` API.

    Service of ``Loop``: state created by ``_init_asyncgens``.  Needs from
    the loop: ``is_closed``, ``call_soon_threadsafe``, ``create_task`` and
    ``call_exception_handler``; ``run_forever`` installs the two hooks.
    """

    def _init_asyncgens(self):
        self._asyncgens = weakref.WeakSet()     # every async generator started on this loop
        self._asyncgens_shutdown_called = False

    def _asyncgen_firstiter_hook(self, agen):
        if self._asyncgens_shutdown_called:
            warnings.warn(
                f"asynchronous generator {agen!r} was scheduled after "
                f"loop.shutdown_asyncgens() call",
                ResourceWarning, source=self)
        self._asyncgens.add(agen)

    def _asyncgen_finalizer_hook(self, agen):
        self._asyncgens.discard(agen)
        if self.is_closed():
            return
        # Runs in whichever thread collected the generator; the loop may be
        # closed between the test above and the call.
        closing = agen.aclose()
        try:
            self.call_soon_threadsafe(self.create_task, closing)
        except RuntimeError:
            closing.close()     # never scheduled: no "never awaited" warning

    async def shutdown_asyncgens(self):
        """Close every async generator that is still suspended."""
        self._asyncgens_shutdown_called = True
        agens = self._asyncgens
        if not len(agens):
            return
        closing = list(agens)
        agens.clear()
        import asyncio
        results = await asyncio.gather(*[ag.aclose() for ag in closing],
                                       return_exceptions=True)
        for result, agen in zip(results, closing):
            if isinstance(result, Exception):
                self.call_exception_handler({
                    "message": f"an error occurred during closing of "
                               f"asynchronous generator {agen!r}",
                    "exception": result,
                    "asyncgen": agen,
                })
