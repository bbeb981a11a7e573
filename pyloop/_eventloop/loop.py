"""``pyloop.Loop``: the C core plus the Python-level services, as one class.

The hot paths (scheduling, timers, fd readiness, running callbacks) live in
the Cython ``BaseLoop`` and the stream transport in
``pyloop._transports.stream``; what runs rarely (connection set-up and
servers, datagram and pipe transports, subprocesses, signals, error
reporting, executors, async generator finalization, socket helpers) is plain
Python, one service per mixin and module.

Composition: each service mixin creates its state in ``_init_<service>()``,
called from ``Loop.__init__`` (no class-level defaults filled in lazily), and
releases what it holds in ``_close_<service>()``, called from
``_close_services`` when ``close()`` has released the C core.  Each mixin's
docstring says what it needs from the rest of the loop.  Inheriting
``asyncio.AbstractEventLoop`` last makes ``isinstance`` checks in asyncio and
third-party code succeed.
"""

import asyncio
import warnings

from .._core.loop import BaseLoop
from .._process.signals import SignalMixin
from .._process.subprocess import SubprocessMixin
from .._transports.connect import ConnectMixin
from .._transports.datagram import DatagramMixin
from .._transports.pipes import PipesMixin
from .._transports.sendfile import SendfileMixin
from .._transports.server import ServeMixin
from .._transports.stream import SocketTransport
from .._transports.tls import TLSMixin
from .asyncgens import AsyncGenMixin
from .dns import DNSMixin
from .exception_handler import ExceptionHandlingMixin
from .executor import ExecutorMixin
from .sock import SockMixin


class Loop(BaseLoop, ConnectMixin, ServeMixin, SendfileMixin, TLSMixin, DatagramMixin, PipesMixin,
           SubprocessMixin, SignalMixin, ExceptionHandlingMixin,
           ExecutorMixin, AsyncGenMixin, SockMixin, DNSMixin, asyncio.AbstractEventLoop):
    """A drop-in asyncio event loop whose core runs in C.

    Create one with ``pyloop.new_event_loop()``; use it like any asyncio loop
    (``run_until_complete``, ``asyncio.Runner(loop_factory=...)``, ...).
    """

    def __init__(self):
        # The init chain: BaseLoop's (the C core: ready ring, timer heap,
        # reactor, wakeup -- made in __cinit__ -- and debug mode), then each
        # service's own state, in one place.  close() releases the core and
        # then calls _close_services, which closes the services that hold
        # something.  Services without state (connect, sendfile, TLS,
        # datagram, pipes, sock_*, DNS) have no _init_.
        super().__init__()
        self._init_exception_handler()
        self._init_executor()
        self._init_asyncgens()
        self._init_serving()
        self._init_signals()
        self._init_subprocesses()

    def _make_socket_transport(self, sock, protocol, waiter=None, *,
                               extra=None, server=None):
        """The transport for a connected stream socket (owned from now on)."""
        return SocketTransport(self, sock, protocol, waiter, extra, server)

    def _close_services(self):
        self._close_serving()
        self._close_signals()
        self._close_subprocesses()
        self._close_executor()

    def __repr__(self):
        return (f"<{type(self).__name__} running={self.is_running()} "
                f"closed={self.is_closed()} debug={self.get_debug()}>")

    def __del__(self, _warn=warnings.warn):
        if not self.is_closed():
            _warn(f"unclosed event loop {self!r}", ResourceWarning, source=self)
            if not self.is_running():
                self.close()
