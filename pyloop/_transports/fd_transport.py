"""Pieces shared by the Python-level fd transports (datagram, pipes).

Transport registry
------------------
A transport that owns a file descriptor records itself in
``loop._transports``, a ``weakref.WeakValueDictionary`` mapping fd -> transport
(the attribute name asyncio's selector loop uses).  ``transport_registry(loop)``
creates it on first use, so the loop class does not have to.  The loop's public
``add_reader``/``add_writer``/``remove_*`` are meant to call
``ensure_fd_no_transport(loop, fd)`` and refuse an fd that a live transport owns
(``RuntimeError``, as asyncio does): a user callback stealing a transport's fd
would silently break the transport.  Entries are never deleted by hand: a closed
transport answers ``is_closing()`` and no longer blocks its fd, and a dead one
drops out of the weak dictionary.

Because the public methods refuse a transport's fd, the transports themselves
go through the unchecked ``loop._add_reader`` & co. when the loop has them (it
must, once the public ones check); ``fd_ops`` picks whichever exists.

Write flow control
------------------
``WriteFlowControl`` keeps the high/low water marks and calls the protocol's
``pause_writing``/``resume_writing`` when the buffer crosses them, reporting a
failing callback to the loop's exception handler instead of letting it unwind
through the transport.
"""

import logging
import weakref

logger = logging.getLogger("asyncio")

# asyncio logs a warning once a transport has been written to this many times
# after its connection was lost (asyncio.constants.LOG_THRESHOLD_FOR_CONNLOST_WRITES).
WRITES_AFTER_LOSS_BEFORE_WARNING = 5

# asyncio's default high-water mark for a transport's write buffer; the low one
# is a quarter of it.
DEFAULT_HIGH_WATER = 64 * 1024


def transport_registry(loop):
    """Return ``loop._transports`` (fd -> transport, weak values), creating it."""
    try:
        return loop._transports
    except AttributeError:
        registry = weakref.WeakValueDictionary()
        loop._transports = registry
        return registry


def register_transport(loop, fd, transport):
    """Record that ``transport`` owns ``fd`` on ``loop``."""
    transport_registry(loop)[fd] = transport


def fd_to_int(fd):
    """An fd or an object with ``fileno()`` as an int, with selectors' error."""
    if isinstance(fd, int):
        return fd
    try:
        return int(fd.fileno())
    except (AttributeError, TypeError, ValueError):
        raise ValueError(f"Invalid file object: {fd!r}") from None


def ensure_fd_no_transport(loop, fd):
    """Raise RuntimeError if a transport that is not closing owns ``fd``.

    Meant for ``add_reader``/``add_writer``/``remove_reader``/``remove_writer``.
    """
    registry = getattr(loop, "_transports", None)
    if not registry:
        return
    transport = registry.get(fd_to_int(fd))
    if transport is not None and not transport.is_closing():
        raise RuntimeError(
            f"File descriptor {fd!r} is used by transport {transport!r}")


def fd_ops(loop):
    """(add_reader, remove_reader, add_writer, remove_writer) for a transport's
    own fd: the loop's unchecked ``_add_reader`` & co. when it has them."""
    return (getattr(loop, "_add_reader", None) or loop.add_reader,
            getattr(loop, "_remove_reader", None) or loop.remove_reader,
            getattr(loop, "_add_writer", None) or loop.add_writer,
            getattr(loop, "_remove_writer", None) or loop.remove_writer)


def wake_waiter(waiter):
    """Complete a creation waiter unless its creator gave up on it."""
    if not waiter.done():
        waiter.set_result(None)


class WriteFlowControl:
    """High/low water marks and pause_writing/resume_writing for a transport.

    The transport provides ``get_write_buffer_size()``, ``_loop`` and
    ``_protocol``; it calls ``_maybe_pause_protocol()`` after its buffer grew and
    ``_maybe_resume_protocol()`` after it shrank.
    """

    _protocol_paused = False
    _high_water = DEFAULT_HIGH_WATER
    _low_water = DEFAULT_HIGH_WATER // 4

    def _set_write_buffer_limits(self, high=None, low=None):
        if high is None:
            high = DEFAULT_HIGH_WATER if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(
                f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high_water = high
        self._low_water = low

    def set_write_buffer_limits(self, high=None, low=None):
        """Set the water marks; ``pause_writing`` is called at once if the
        buffer is already above the new high mark."""
        self._set_write_buffer_limits(high, low)
        self._maybe_pause_protocol()

    def get_write_buffer_limits(self):
        """Return ``(low, high)``."""
        return (self._low_water, self._high_water)

    def _maybe_pause_protocol(self):
        if self._protocol_paused or self.get_write_buffer_size() <= self._high_water:
            return
        self._protocol_paused = True
        self._call_flow_callback("pause_writing")

    def _maybe_resume_protocol(self):
        if self._protocol_paused and self.get_write_buffer_size() <= self._low_water:
            self._protocol_paused = False
            self._call_flow_callback("resume_writing")

    def _call_flow_callback(self, name):
        protocol = self._protocol
        try:
            getattr(protocol, name)()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._loop.call_exception_handler({
                "message": f"protocol.{name}() failed",
                "exception": exc,
                "transport": self,
                "protocol": protocol,
            })


class ReadingControl:
    """``pause_reading``/``resume_reading``/``is_reading`` for an fd transport.

    The transport provides ``_loop``, ``_fileno``, ``_closing``, ``_paused``,
    ``_reader_on`` (whether its reader is registered), ``_add_reader``/
    ``_remove_reader`` (from ``fd_ops``) and ``_read_ready``.
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
            self._add_reader(self._fileno, self._read_ready)
            self._reader_on = True

    def _stop_reading(self):
        if self._reader_on:
            self._reader_on = False
            self._remove_reader(self._fileno)
