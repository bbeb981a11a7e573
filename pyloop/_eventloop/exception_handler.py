"""Exception handling of the loop: ``call_exception_handler`` and friends.

Everything that goes wrong outside a Future -- a callback raising, a transport
failing, an async generator refusing to close -- is described as a context
dict and handed to ``call_exception_handler``, which asks the user's handler or
logs through the ``asyncio`` logger, as stock asyncio does, so log filters and
test fixtures written for asyncio keep working.
"""

import logging
import sys
import traceback

logger = logging.getLogger("asyncio")

# From 3.12 asyncio runs a custom handler in the contextvars context of the task, future or
# handle the report is about (CPython gh-96704), so the handler sees what the failing code set.
_HANDLER_IN_ITS_CONTEXT = sys.version_info >= (3, 12)

# Context keys printed specially (or not at all) by the default handler.
_SKIPPED_KEYS = frozenset({"message", "exception"})


class ExceptionHandlingMixin:
    """The exception-handler part of the ``AbstractEventLoop`` API.

    Service of ``Loop``: state created by ``_init_exception_handler``.
    Needs from the loop: ``_current_handle`` (``BaseLoop``'s handle being
    run, whose creation traceback the default handler logs in debug mode).
    """

    def _init_exception_handler(self):
        self._exception_handler = None  # None: default_exception_handler

    def get_exception_handler(self):
        """Return the custom exception handler, or None for the default."""
        return self._exception_handler

    def set_exception_handler(self, handler):
        """Set ``handler(loop, context)`` as the loop's exception handler
        (None restores the default)."""
        if handler is not None and not callable(handler):
            raise TypeError(
                f"A callable object or None is expected, got {handler!r}")
        self._exception_handler = handler

    def default_exception_handler(self, context):
        """Log ``context`` (message, exception with traceback, and every other
        key) at ERROR level on the ``asyncio`` logger."""
        message = context.get("message") or "Unhandled exception in event loop"
        exception = context.get("exception")
        if exception is not None:
            exc_info = (type(exception), exception, exception.__traceback__)
        else:
            exc_info = False

        current = self._current_handle
        if ("source_traceback" not in context and current is not None
                and getattr(current, "_source_traceback", None)):
            context["handle_traceback"] = current._source_traceback

        lines = [message]
        for key in sorted(context):
            if key in _SKIPPED_KEYS:
                continue
            value = context[key]
            if key == "source_traceback":
                tb = "".join(traceback.format_list(value))
                value = "Object created at (most recent call last):\n" + tb.rstrip()
            elif key == "handle_traceback":
                tb = "".join(traceback.format_list(value))
                value = "Handle created at (most recent call last):\n" + tb.rstrip()
            else:
                value = repr(value)
            lines.append(f"{key}: {value}")
        logger.error("\n".join(lines), exc_info=exc_info)

    def call_exception_handler(self, context):
        """Report an error described by ``context`` to the exception handler.

        Never raises, except ``SystemExit``/``KeyboardInterrupt``: a failing
        custom handler is itself reported through the default handler."""
        handler = self._exception_handler
        if handler is None:
            try:
                self.default_exception_handler(context)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:
                logger.error("Exception in default exception handler",
                             exc_info=True)
            return
        try:
            run_in = _context_of(context) if _HANDLER_IN_ITS_CONTEXT else None
            if run_in is not None:
                run_in.run(handler, self, context)
            else:
                handler(self, context)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            try:
                self.default_exception_handler({
                    "message": "Unhandled error in exception handler",
                    "exception": exc,
                    "context": context,
                })
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:
                logger.error("Exception in default exception handler while "
                             "handling an unexpected error in a custom "
                             "exception handler", exc_info=True)


def _context_of(context):
    """The contextvars context of what ``context`` reports on: its task, else its future
    (a Task is sometimes given as the future), else its handle; None if it has none."""
    for key in ("task", "future", "handle"):
        thing = context.get(key)
        if thing is not None:
            get_context = getattr(thing, "get_context", None)
            ctx = get_context() if get_context is not None else None
            return ctx if hasattr(ctx, "run") else None
    return None
