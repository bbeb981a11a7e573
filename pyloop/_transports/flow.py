"""Write flow control, one definition for every transport.

The stream transport (``stream.pyx``, Cython) keeps its water marks in C fields
and tests them inline; it takes its default, its loss-warning threshold and
``water_marks`` (run only by ``set_write_buffer_limits``) from here.  The
Python transports (datagram, pipes) use ``WriteFlowControl``.  Both report a
failing ``pause_writing``/``resume_writing`` with ``call_flow_callback``, which
runs only when the buffer crosses a mark, never per write.

Both callbacks run in a copy of the protocol's ``contextvars.Context`` (the
context the transport's other callbacks run in, see ``fd_transport``), as
uvloop does: they are triggered from inside the application's own calls
(``write`` in ``data_received``), where that very context may be entered
already, and a context cannot be entered twice.
"""

# asyncio's default high-water mark for a transport's write buffer; the low one
# is a quarter of it.
DEFAULT_HIGH_WATER = 64 * 1024

# asyncio logs a warning once a transport has been written to this many times
# after its connection was lost (asyncio.constants.LOG_THRESHOLD_FOR_CONNLOST_WRITES).
WRITES_AFTER_LOSS_BEFORE_WARNING = 5


def water_marks(high=None, low=None):
    """``(high, low)`` as ``set_write_buffer_limits`` takes them: high defaults
    to 64 KiB (or 4 * low), low to high / 4; ValueError unless
    high >= low >= 0.  asyncio accepts floats (``high=1e6`` is common); the
    marks are byte counts, so they come back as ints."""
    if high is None:
        high = DEFAULT_HIGH_WATER if low is None else 4 * low
    if low is None:
        low = high // 4
    if not high >= low >= 0:
        raise ValueError(
            f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
    return int(high), int(low)


def call_flow_callback(loop, transport, protocol, name, context=None):
    """Call ``protocol.<name>()`` (pause_writing or resume_writing), in a copy
    of ``context`` when one is given; a failure goes to the loop's exception
    handler instead of unwinding through the transport."""
    try:
        if context is None:
            getattr(protocol, name)()
        else:
            context.copy().run(getattr(protocol, name))
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        loop.call_exception_handler({
            "message": f"protocol.{name}() failed",
            "exception": exc,
            "transport": transport,
            "protocol": protocol,
        })


class WriteFlowControl:
    """High/low water marks and pause_writing/resume_writing for a Python
    transport.

    The transport provides ``get_write_buffer_size()``, ``_loop`` and
    ``_protocol``; its ``__init__`` calls ``_init_write_flow(context)`` with
    the protocol's context (None: whatever context is current); it calls
    ``_maybe_pause_protocol()`` after its buffer grew and
    ``_maybe_resume_protocol()`` after it shrank.
    """

    def _init_write_flow(self, context=None):
        self._protocol_paused = False
        self._flow_context = context
        self._high_water = DEFAULT_HIGH_WATER
        self._low_water = DEFAULT_HIGH_WATER // 4

    def set_write_buffer_limits(self, high=None, low=None):
        """Set the water marks; ``pause_writing`` is called at once if the
        buffer is already above the new high mark."""
        self._high_water, self._low_water = water_marks(high, low)
        self._maybe_pause_protocol()

    def get_write_buffer_limits(self):
        """Return ``(low, high)``."""
        return (self._low_water, self._high_water)

    def _maybe_pause_protocol(self):
        if self._protocol_paused or self.get_write_buffer_size() <= self._high_water:
            return
        self._protocol_paused = True
        call_flow_callback(self._loop, self, self._protocol, "pause_writing",
                           self._flow_context)

    def _maybe_resume_protocol(self):
        if self._protocol_paused and self.get_write_buffer_size() <= self._low_water:
            self._protocol_paused = False
            call_flow_callback(self._loop, self, self._protocol, "resume_writing",
                               self._flow_context)
