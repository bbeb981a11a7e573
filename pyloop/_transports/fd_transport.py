"""Pieces shared by the Python-level fd transports (datagram, pipes).

Transport registry
------------------
A transport that owns a file descriptor records itself in
``loop._transports``, a ``weakref.WeakValueDictionary`` mapping fd -> transport
(the attribute name asyncio's selector loop uses), which ``BaseLoop`` creates.
The loop's public ``add_reader``/``add_writer``/``remove_*`` refuse an fd that
a live transport owns (``RuntimeError``, as asyncio does): a user callback
stealing a transport's fd would silently break the transport.  Entries are
never deleted by hand: a closed transport answers ``is_closing()`` and no
longer blocks its fd, and a dead one drops out of the weak dictionary.

Because the public methods refuse a transport's fd, the transports themselves
go through the unchecked ``loop._add_reader`` & co. when the loop has them;
``fd_ops`` picks whichever exists.

``FdTransport`` is the base both transports share: the protocol, the closing
state, the fatal-error report and the end (``connection_lost``, then the
owned socket or pipe is closed).  Write flow control is in ``flow``.

The protocol's context
----------------------
As in uvloop, every callback of a transport's protocol runs in one
``contextvars.Context``, the transport's ``_context``: a copy of the context
current when the transport was made.  The fd watches run their callback
through ``_context.run`` (``watch_read``/``watch_write``), and what the
transport schedules for the protocol is scheduled with ``context=_context``
(``call_in_context``), so that whoever calls ``close()``, ``abort()`` or
``resume_reading()`` does not lend its own context to the callbacks that
follow.  Callbacks the application's own calls trigger at once
(``pause_writing`` from ``write``, ``error_received`` from ``sendto``) run in
a copy of ``_context``: the caller may be one of the protocol's callbacks,
with ``_context`` entered already, and a context cannot be entered twice.
"""

import logging
import warnings

logger = logging.getLogger("asyncio")


def register_transport(loop, fd, transport):
    """Record that ``transport`` owns ``fd`` on ``loop``."""
    loop._transports[fd] = transport


def fd_ops(loop):
    """(add_reader, remove_reader, add_writer, remove_writer) for a transport's
    own fd: the loop's unchecked ``_add_reader`` & co. when it has them."""
    return (getattr(loop, "_add_reader", None) or loop.add_reader,
            getattr(loop, "_remove_reader", None) or loop.remove_reader,
            getattr(loop, "_add_writer", None) or loop.add_writer,
            getattr(loop, "_remove_writer", None) or loop.remove_writer)


def watch_read(transport, callback):
    """Call ``callback()`` in the transport's ``_context`` whenever its fd is
    readable."""
    transport._add_reader(transport._fileno, transport._context.run, callback)


def watch_write(transport, callback):
    """Call ``callback()`` in the transport's ``_context`` whenever its fd is
    writable."""
    transport._add_writer(transport._fileno, transport._context.run, callback)


def call_in_context(transport, callback, *args):
    """Schedule ``callback(*args)`` in the transport's ``_context``."""
    transport._loop.call_soon(callback, *args, context=transport._context)


def wake_waiter(waiter):
    """Complete a creation waiter unless its creator gave up on it."""
    if not waiter.done():
        waiter.set_result(None)


class FdTransport:
    """The protocol, the end and the owned object of an fd transport.

    A subclass names in ``_OWNED`` the attribute that holds the socket or
    pipe it owns (None until owned and after the end: ``__del__`` may run on
    a half-built instance), and provides ``_loop``, ``_protocol``,
    ``_context`` (the protocol's, see above), ``_closing`` and
    ``_close(exc)`` (drop everything, schedule ``_call_connection_lost``).
    """

    _OWNED = None

    def get_protocol(self):
        return self._protocol

    def set_protocol(self, protocol):
        self._protocol = protocol

    def is_closing(self):
        return self._closing

    def _is_expected_error(self, exc):
        """Errors that only end the connection (logged in debug mode) rather
        than go to the loop's exception handler."""
        return isinstance(exc, OSError)

    def _fatal_error(self, exc, message):
        if self._is_expected_error(exc):
            if self._loop.get_debug():
                logger.debug("%r: %s", self, message, exc_info=True)
        else:
            self._loop.call_exception_handler({
                "message": message,
                "exception": exc,
                "transport": self,
                "protocol": self._protocol,
            })
        self._close(exc)

    def _call_connection_lost(self, exc):
        try:
            self._protocol.connection_lost(exc)
        finally:
            getattr(self, self._OWNED).close()
            setattr(self, self._OWNED, None)
            self._protocol = None
            self._loop = None
            self._add_reader = self._remove_reader = None
            self._add_writer = self._remove_writer = None

    def __del__(self, _warn=warnings.warn):
        owned = getattr(self, self._OWNED)
        if owned is not None:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            owned.close()


class ReadingControl:
    """``pause_reading``/``resume_reading``/``is_reading`` for an fd transport.

    The transport provides ``_loop``, ``_fileno``, ``_context``, ``_closing``,
    ``_paused``, ``_reader_on`` (whether its reader is registered),
    ``_add_reader``/``_remove_reader`` (from ``fd_ops``) and ``_read_ready``
    (run in ``_context``).
    """

    def is_reading(self):
        """Return True if the transport is receiving."""
        return not self._paused and not self._closing

    def pause_reading(self):
        """Stop delivering data to the protocol until ``resume_reading``."""
        if not self.is_reading():
            return
        self._paused = True
        self._stop_reading()
        if self._loop.get_debug():
            logger.debug("%r pauses reading", self)

    def resume_reading(self):
        """Deliver data again after ``pause_reading``."""
        if self._closing or not self._paused:
            return
        self._paused = False
        self._start_reading()
        if self._loop.get_debug():
            logger.debug("%r resumes reading", self)

    def _start_reading(self):
        if self.is_reading():
            watch_read(self, self._read_ready)
            self._reader_on = True

    def _stop_reading(self):
        if self._reader_on:
            self._reader_on = False
            self._remove_reader(self._fileno)
