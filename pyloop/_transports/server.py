"""``pyloop.Server``: what ``create_server`` and ``create_unix_server`` return.

A Server owns its listening sockets and keeps track of the connections
accepted through it, so that ``wait_closed`` can wait for them.  The accept
loop itself lives in the event loop (``NetworkMixin._start_serving``); the
Server only tells the loop which sockets to watch and when to stop.

Lifecycle, which follows ``asyncio.base_events.Server`` of the running Python:

* created with listening sockets, serving or not (``start_serving=False``);
* ``close()`` stops accepting and closes the listening sockets; connections
  already accepted stay open (``close_clients``/``abort_clients`` end them on
  Pythons whose asyncio has them, 3.13+);
* ``wait_closed()`` returns once the server is closed *and* every accepted
  connection is gone.  Python 3.11's asyncio returned at once when the server
  was already closed, even with connections left; pyloop does what the
  running Python does.

Connections are tracked through ``_attach(transport)``/``_detach(transport)``,
which transports call when they are created and after ``connection_lost``.
Transports are held weakly, as asyncio 3.13 does, so that a transport the
application dropped can still be collected (and warn about being unclosed);
a transport that cannot be weakly referenced, or a caller that passes no
transport (asyncio's own transports before 3.13), is counted instead.
"""

import asyncio
import sys
import weakref
from asyncio import trsock as _trsock

# asyncio 3.12.1 fixed wait_closed() to wait for connections even when the
# server is already closed; earlier it returned at once.
_WAIT_CLOSED_WAITS_FOR_CLIENTS = sys.version_info >= (3, 12)
_HAS_CLOSE_CLIENTS = hasattr(asyncio.base_events.Server, "close_clients")


class Server(asyncio.AbstractServer):
    """A listening server created by ``loop.create_server`` and friends."""

    def __init__(self, loop, sockets, protocol_factory, ssl_context, backlog,
                 ssl_handshake_timeout, ssl_shutdown_timeout=None):
        self._loop = loop
        self._sockets = sockets          # list of sockets; None once closed
        self._clients = weakref.WeakSet()
        self._pinned_clients = set()     # transports without weakref support
        self._counted_clients = 0        # _attach() calls without a transport
        self._waiters = []               # None once wait_closed() may return
        self._protocol_factory = protocol_factory
        self._backlog = backlog
        self._ssl_context = ssl_context
        self._ssl_handshake_timeout = ssl_handshake_timeout
        self._ssl_shutdown_timeout = ssl_shutdown_timeout
        self._serving = False
        self._serving_forever_fut = None

    def __repr__(self):
        return f"<{type(self).__name__} sockets={self.sockets!r}>"

    # ---- connection tracking (called by transports) ---------------------

    @property
    def _active_count(self):
        """How many accepted connections are still alive."""
        return (len(self._clients) + len(self._pinned_clients)
                + self._counted_clients)

    def _attach(self, transport=None):
        if transport is None:
            self._counted_clients += 1
            return
        try:
            self._clients.add(transport)
        except TypeError:
            self._pinned_clients.add(transport)

    def _detach(self, transport=None):
        if transport is None:
            if self._counted_clients > 0:
                self._counted_clients -= 1
        else:
            self._clients.discard(transport)
            self._pinned_clients.discard(transport)
        if self._sockets is None and self._active_count == 0:
            self._wakeup()

    def _wakeup(self):
        waiters = self._waiters
        self._waiters = None
        if waiters is None:
            return
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _live_clients(self):
        return list(self._clients) + list(self._pinned_clients)

    # ---- serving --------------------------------------------------------

    def _start_serving(self):
        if self._serving:
            return
        if self._sockets is None:
            raise RuntimeError(f"server {self!r} is closed")
        self._serving = True
        for sock in self._sockets:
            sock.listen(self._backlog)
            self._loop._start_serving(
                self._protocol_factory, sock, self._ssl_context, self,
                self._backlog, self._ssl_handshake_timeout,
                self._ssl_shutdown_timeout)

    def get_loop(self):
        """Return the event loop the server belongs to."""
        return self._loop

    def is_serving(self):
        """Return True while the server accepts new connections."""
        return self._serving

    @property
    def sockets(self):
        """The listening sockets, as ``asyncio.trsock.TransportSocket``s
        (empty once the server is closed)."""
        if self._sockets is None:
            return ()
        return tuple(_trsock.TransportSocket(s) for s in self._sockets)

    def close(self):
        """Stop accepting and close the listening sockets.  Connections
        already accepted stay open.  Idempotent."""
        sockets = self._sockets
        if sockets is None:
            return
        self._sockets = None
        for sock in sockets:
            self._loop._stop_serving(sock)
        self._serving = False
        fut = self._serving_forever_fut
        if fut is not None and not fut.done():
            fut.cancel()
            self._serving_forever_fut = None
        if self._active_count == 0:
            self._wakeup()

    if _HAS_CLOSE_CLIENTS:
        def close_clients(self):
            """Close every accepted connection (``transport.close()``)."""
            for transport in self._live_clients():
                transport.close()

        def abort_clients(self):
            """Abort every accepted connection (``transport.abort()``)."""
            for transport in self._live_clients():
                transport.abort()

    async def start_serving(self):
        """Start accepting connections; does nothing if already serving."""
        self._start_serving()
        # One loop iteration, as asyncio: callers may rely on the yield.
        await asyncio.sleep(0)

    async def serve_forever(self):
        """Accept connections until cancelled; cancelling closes the server
        and waits for it to be closed."""
        if self._serving_forever_fut is not None:
            raise RuntimeError(
                f"server {self!r} is already being awaited on serve_forever()")
        if self._sockets is None:
            raise RuntimeError(f"server {self!r} is closed")
        self._start_serving()
        self._serving_forever_fut = self._loop.create_future()
        try:
            await self._serving_forever_fut
        except asyncio.CancelledError:
            try:
                self.close()
                await self.wait_closed()
            finally:
                raise
        finally:
            self._serving_forever_fut = None

    async def wait_closed(self):
        """Wait until the server is closed and its connections are gone.

        On Python 3.11 this returns at once if the server is already closed,
        as asyncio 3.11 does."""
        if self._waiters is None:
            return
        if not _WAIT_CLOSED_WAITS_FOR_CLIENTS and self._sockets is None:
            return
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        await waiter
