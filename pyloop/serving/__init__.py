"""Multi-core serving: one port, N worker processes, each running its own pyloop loop.

A Python process runs Python code on one core at a time; to use more cores a server runs
several processes on the same port.  ``serve`` does that:

    import asyncio, sys
    import pyloop

    async def start(sock):
        # Runs in every worker, on that worker's loop, with that worker's listening socket.
        loop = asyncio.get_running_loop()
        return await loop.create_server(MyProtocol, sock=sock)   # or start_server(handler, sock=sock)

    if __name__ == '__main__':
        sys.exit(pyloop.serve(start, host='0.0.0.0', port=8000, workers=4))

and for the common case of one ``asyncio.Protocol``:

    sys.exit(pyloop.serve_protocol(MyProtocol, '0.0.0.0', 8000, workers=4))

Web frameworks need no start function: ``serve`` takes what they give a user (an aiohttp
``web.Application`` or ``AppRunner``, a uvicorn ``Config`` or ``Server``, an ASGI app, or a
factory making one in each worker) and serves it on each worker's socket:

    sys.exit(pyloop.serve(app, host='0.0.0.0', port=8000, workers=4))   # aiohttp or ASGI app

How each is recognised and served is described in ``pyloop.serving._adapters``; the guide
docs/guides/serving.md has runnable programs.

The design in one paragraph: the calling process becomes a small supervisor.  It binds the
address once (so ``port=0`` picks one free port for all workers), forks ``workers``
processes and waits.  Each worker makes a new event loop (pyloop's unless ``loop_factory``
says otherwise), gets its own listening socket bound with ``SO_REUSEPORT`` (Linux: the
kernel spreads connections over the workers; elsewhere all workers accept from one socket
the parent bound), and calls ``start(sock)``, which returns the server it started.  When
every worker is serving, ``ready`` is called (by default a line on stderr:
``pyloop.serve: serving on 127.0.0.1:8000 with 4 workers (SO_REUSEPORT; pids ...)``).

Stopping: SIGTERM or SIGINT (Ctrl-C) to the parent sends every worker SIGTERM.  A worker
then closes its listening socket (new connections go nowhere: once all have closed, they are
refused) and waits for the connections it accepted to close, up to ``grace`` seconds, then
exits 0.  A request in flight is answered.  A second SIGTERM/SIGINT kills the workers at once.
``serve`` returns 0 when every worker stopped cleanly (closing connections left open when the
grace period ended counts as clean), and 1 when any worker failed: exited with an error, was
killed, failed to start (then the whole server stops), or was still running 10 s after its
grace period (the parent then kills it).  A worker that dies while serving is reported on stderr and, with
``restart=True``, replaced (with a backoff when it keeps crashing early).  Workers stop on
their own if the parent dies.

Names: this module is ``pyloop.serving``; ``pyloop.serve`` and ``pyloop.serve_protocol`` are
its two functions re-exported by the package, and ``from pyloop.serving import
current_worker, ServeInfo, Worker`` gives the rest.

Inside a worker, ``current_worker()`` says which worker this is and whether it is stopping;
HTTP servers use it to close idle keep-alive connections promptly on shutdown.

The process and signal machinery, and why it is built that way, is described in
``pyloop.serving._workers``.  POSIX only (it forks); call ``serve`` from the main thread, before
starting threads or an event loop in that process.

Errors: a worker's failure is reported on stderr and in the exit status (1), not raised.  ``serve``
raises ``RuntimeError`` where it cannot run (no ``os.fork``, inside a running event loop, off the main
thread), ``TypeError``/``ValueError`` for bad arguments (``TypeError`` listing what it serves for an
object it does not know) and ``OSError`` when the address cannot be resolved or bound.  Each message
says what to do instead.  This module defines no exception of its own; all of the toolbox's errors are listed
together in docs/ARCHITECTURE.md, "Errors".
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Callable
from ssl import SSLContext

from ._adapters import Adapted, Servable, adapt
from ._workers import (
    Listener,
    ServeInfo,
    ServerLike,
    Supervisor,
    Worker,
    WorkerPlan,
    current_worker,
    reuse_port_balances,
)

__all__ = ["serve", "serve_protocol", "current_worker", "ServeInfo", "Worker"]


def _default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class _DefaultHost(str):
    """serve()'s default host: equal to "127.0.0.1", but told apart from an explicit host= (a uvicorn
    Config's own address is used unless serve() is given one)."""

    __slots__ = ()


class _DefaultPort(int):
    """serve()'s default port (0), told apart from an explicit port= (see _DefaultHost)."""

    __slots__ = ()


_DEFAULT_HOST = _DefaultHost("127.0.0.1")
_DEFAULT_PORT = _DefaultPort(0)


def _address(adapted: Adapted, host: str | None, port: int) -> tuple[str | None, int]:
    """Where to listen: serve()'s host/port where given, else the uvicorn Config's, else the
    defaults (127.0.0.1, a free port)."""
    if adapted.has_address:
        if host is _DEFAULT_HOST:
            host = adapted.host
        if port is _DEFAULT_PORT:
            port = adapted.port if adapted.port is not None else 0
    return (None if host is None else str(host)), int(port)


def _default_loop_factory() -> asyncio.AbstractEventLoop:
    from .._eventloop.policy import new_event_loop
    factory: Callable[[], asyncio.AbstractEventLoop] = new_event_loop
    return factory()


def serve(start: Servable, *, host: str | None = _DEFAULT_HOST, port: int = _DEFAULT_PORT,
          workers: int | None = None, reuse_port: bool | None = None, backlog: int = 1024,
          grace: float = 30.0, restart: bool = False,
          ready: Callable[[ServeInfo], object] | None = None,
          loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None) -> int:
    """Serve ``host:port`` from ``workers`` processes until SIGTERM/SIGINT; return an exit status.

    ``start`` is what to serve, in each worker, on that worker's own new loop and listening
    socket:

    * an aiohttp ``web.Application``, or a ``web.AppRunner`` not set up yet (each worker sets it
      up and serves it on a ``web.SockSite``; an Application's runner gets
      ``shutdown_timeout=grace``);
    * a uvicorn ``Config`` or ``Server`` not started yet (each worker runs
      ``server.serve(sockets=[sock])``); the Config's host and port are the address unless
      ``host``/``port`` are given here, and a loop it names (``loop="asyncio"``,
      ``"pyloop:new_event_loop"``, ...) is the workers' loop unless ``loop_factory`` is given;
      its default ``"auto"`` means pyloop's loop here;
    * an ASGI app (``async def app(scope, receive, send)``, a Starlette or FastAPI instance),
      served by uvicorn with a default ``Config``;
    * an async function ``start(sock)`` that starts serving on the listening socket ``sock``
      (bound, listening, non-blocking) and returns the server: anything with ``close()`` and
      ``async wait_closed()``, such as what ``loop.create_server(..., sock=sock)`` or
      ``asyncio.start_server(..., sock=sock)`` return.  It may return any of the objects above
      instead, which are then served on ``sock``;
    * a factory: a function taking no argument (sync or async) that returns any of the above
      but a start function.  Each worker calls it, so what it makes (an app, its database pool)
      belongs to that worker's loop.

    Anything else is a ``TypeError`` that lists these.  The other arguments:

    * ``host``/``port``: the address; ``port=0`` picks a free port once for all workers
      (``ready`` receives it).  ``host=None`` binds every interface.  Default 127.0.0.1, port 0.
    * ``workers``: how many processes; default: the CPUs this process may run on.
    * ``reuse_port``: each worker has its own ``SO_REUSEPORT`` socket (the kernel balances
      connections) when True, all accept from one inherited socket when False; default:
      True on Linux, False elsewhere.
    * ``grace``: seconds a stopping worker waits for open connections before closing them.
    * ``restart``: replace a worker that dies while serving (it is reported either way).
    * ``ready``: called in the parent with a ``ServeInfo`` once every worker is serving;
      default: print ``pyloop.serve: serving on HOST:PORT with N workers (...)`` to stderr.
    * ``loop_factory``: makes each worker's loop; default ``pyloop.new_event_loop``.

    Returns 0 when every worker stopped cleanly after a stop signal, 1 when a worker failed
    (see the module docstring), so ``sys.exit(serve(...))`` gives the right exit status.
    Raises ``RuntimeError`` when called from a running event loop or another thread than the
    main one, ``OSError`` when the address cannot be bound.  An exception from ``ready``
    propagates, after the workers have been killed.

    Example::

        app = web.Application()                 # aiohttp
        app.router.add_get("/", hello)
        sys.exit(serve(app, port=8000, workers=4))

        sys.exit(serve(uvicorn.Config("main:app", port=8000), workers=4))

        async def start(sock):                  # anything asyncio can serve
            return await asyncio.start_server(handle_client, sock=sock)

        sys.exit(serve(start, port=8000, workers=2))
    """
    if workers is None:
        workers = _default_workers()
    if not isinstance(workers, int) or isinstance(workers, bool):
        raise TypeError(f"pyloop.serve(): workers must be an int, the number of worker processes "
                        f"(workers=4), not {type(workers).__name__} {workers!r}")
    if workers < 1:
        raise ValueError(f"pyloop.serve(): workers must be at least 1, got {workers}; leave it out "
                         f"to start one worker per CPU")
    if not isinstance(port, int) or isinstance(port, bool):
        raise TypeError(f"pyloop.serve(): port must be an int (0 picks a free port), not "
                        f"{type(port).__name__} {port!r}")
    if grace < 0:
        raise ValueError(f"pyloop.serve(): grace must be >= 0 seconds, got {grace}")
    if not hasattr(os, "fork"):
        raise RuntimeError("pyloop.serve() needs os.fork, which this platform lacks (it is POSIX "
                           "only): serve from one process with pyloop.run(), or under a process "
                           "manager")
    if asyncio.events._get_running_loop() is not None:
        raise RuntimeError("pyloop.serve() cannot be called from a running event loop: it blocks "
                           "until its workers stop, and each worker runs its own loop.  Call it "
                           "from synchronous code at the top of the program, as in "
                           '`if __name__ == "__main__": sys.exit(pyloop.serve(...))`, not from a '
                           "coroutine or asyncio.run()")
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("pyloop.serve() must be called from the main thread: it handles "
                           "SIGTERM and SIGINT for its workers, which only the main thread can.  "
                           "Call it at the top level of the program, not from a thread")
    adapted = adapt(start, float(grace))
    host, port = _address(adapted, host, port)
    if loop_factory is None:
        loop_factory = adapted.loop_factory or _default_loop_factory
    if reuse_port is None:
        reuse_port = reuse_port_balances()
    elif reuse_port and not hasattr(socket, "SO_REUSEPORT"):
        raise ValueError("pyloop.serve(): reuse_port=True is not supported on this platform (no "
                         "SO_REUSEPORT); leave reuse_port out to share one listening socket")
    listener = Listener(host, port, reuse_port, backlog)
    plan = WorkerPlan(start=adapted.start, listener=listener, grace=float(grace),
                      loop_factory=loop_factory)
    try:
        return Supervisor(plan, workers, restart, ready).run()
    finally:
        listener.close()


def serve_protocol(protocol_factory: Callable[[], asyncio.BaseProtocol],
                   host: str | None = "127.0.0.1", port: int = 0, *,
                   workers: int | None = None, ssl: SSLContext | None = None,
                   reuse_port: bool | None = None, backlog: int = 1024, grace: float = 30.0,
                   restart: bool = False, ready: Callable[[ServeInfo], object] | None = None,
                   loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None) -> int:
    """Serve an ``asyncio.Protocol`` on ``host:port`` from ``workers`` processes.

    Shorthand for ``serve`` with a start function that calls
    ``loop.create_server(protocol_factory, sock=sock, ssl=ssl, backlog=backlog)``; the other
    arguments and the return value are ``serve``'s.

    Example::

        class Echo(asyncio.Protocol):
            def connection_made(self, transport):
                self.transport = transport

            def data_received(self, data):
                self.transport.write(data)

        sys.exit(serve_protocol(Echo, '127.0.0.1', 8888, workers=2))
    """
    if not callable(protocol_factory):
        raise TypeError(f"protocol_factory must be callable, not {protocol_factory!r}")

    async def start(sock: socket.socket) -> ServerLike:
        loop = asyncio.get_running_loop()
        return await loop.create_server(protocol_factory, sock=sock, ssl=ssl, backlog=backlog)

    return serve(start, host=host, port=port, workers=workers, reuse_port=reuse_port,
                 backlog=backlog, grace=grace, restart=restart, ready=ready,
                 loop_factory=loop_factory)


# Documented here, defined next to the machinery that uses them.
current_worker.__module__ = __name__
ServeInfo.__module__ = __name__
Worker.__module__ = __name__
