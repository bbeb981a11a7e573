"""gunicorn workers that run their server on a pyloop loop.

    gunicorn -k pyloop.gunicorn.AiohttpWorker -w 4 app:make_app     # aiohttp.web
    gunicorn -k pyloop.gunicorn.UvicornWorker -w 4 app:asgi_app     # any ASGI app

gunicorn's arbiter forks the workers, hands them the listening sockets it
bound, restarts the ones that die and replaces them all on ``SIGHUP``; each
worker serves with one pyloop loop.  The signals mean what they mean to every
gunicorn worker: ``SIGTERM`` (from the arbiter on ``kill -TERM`` or after a
``SIGHUP``) stops accepting, lets the requests in flight finish (within
``--graceful-timeout``) and exits; ``SIGQUIT``/``SIGINT`` exit at once;
``SIGUSR1`` reopens the log files.  A worker whose arbiter died exits too.

No request that reached a worker is lost to its graceful shutdown.  aiohttp's
and uvicorn's own shutdowns close every connection that has no request under
way *yet* -- including one accepted a moment before whose request is already
in the kernel's buffer, unread; the client sees a reset or an empty reply
(with their own gunicorn workers, 1 to 20 requests in 10 reloads failed under
4 clients issuing requests back to back, on asyncio and uvloop alike; none
with these workers in 50 reloads of each, 20 of them with a CPU hog beside).
These workers first stop accepting (the listening socket stays open: the
connections queued in it go to the other workers), give the connections
already accepted half a second to send their request (a client that has just
connected is about to), let every connection read what has arrived, and only
then hand over to the framework's shutdown, which now sees those requests
under way.  What remains is HTTP/1.1's own race: a client that connected but
sends nothing within the grace, or that reuses an idle keep-alive connection
just as it is closed, must retry (RFC 9112, 9.3.1).

* :class:`AiohttpWorker` is aiohttp's own ``GunicornWebWorker`` -- the app is an
  ``aiohttp.web.Application`` or an async function returning one (or an
  ``AppRunner``) -- with pyloop as the worker's event loop policy, as aiohttp's
  ``GunicornUVLoopWebWorker`` does for uvloop.
* :class:`UvicornWorker` runs an ASGI app with ``uvicorn.Server`` on a pyloop
  loop.  It is written here on gunicorn's base ``Worker`` rather than on
  ``uvicorn.workers.UvicornWorker``, which uvicorn deprecated in favour of the
  separate ``uvicorn-worker`` package: pyloop does not depend on either.  Set
  uvicorn options that gunicorn has no flag for by subclassing and extending
  ``CONFIG_KWARGS`` (``http``, ``lifespan``, ``ws``, ...).

This module needs gunicorn, plus aiohttp for one worker and uvicorn for the
other.  None of them is a dependency of pyloop: ``import pyloop.gunicorn``
always works, and each worker class is built the first time it is looked up
(which is what ``gunicorn -k`` does), importing what it needs then.

Errors
------
Looking up a worker whose packages are not installed raises ``ImportError``
naming them (gunicorn reports it and exits).  A worker that cannot start its
server exits with gunicorn's ``WORKER_BOOT_ERROR`` status, which makes the
arbiter stop instead of respawning it forever.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import struct
import sys
import termios
from typing import Any

from ._eventloop.policy import EventLoopPolicy, new_event_loop

# Both are made by __getattr__ below on first lookup.
__all__ = ["AiohttpWorker", "UvicornWorker"]  # noqa: F822

# The packages each worker needs, for the error message when one is missing.
_NEEDS = {"AiohttpWorker": ("gunicorn", "aiohttp"), "UvicornWorker": ("gunicorn", "uvicorn")}
_built: dict[str, type] = {}


def __getattr__(name: str) -> type:
    # The worker classes subclass gunicorn's (and aiohttp's) classes, so they
    # can only exist once those are imported: build each on first lookup.
    if name not in _NEEDS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    cls = _built.get(name)
    if cls is None:
        try:
            cls = _BUILDERS[name]()
        except ImportError as exc:
            needed = " and ".join(_NEEDS[name])
            raise ImportError(f"pyloop.gunicorn.{name} needs {needed} installed "
                              f"(pip install {' '.join(_NEEDS[name])}): {exc}") from exc
        cls.__module__ = __name__
        cls.__qualname__ = name
        _built[name] = cls
        globals()[name] = cls
    return cls


def __dir__() -> list[str]:
    return sorted({*globals(), *_NEEDS})


# ---- graceful shutdown: read what has arrived before the framework closes idle connections --

# How long a stopping worker, once it accepts no more, keeps its connections
# open for a request that has not arrived yet.  A client sends its request
# right after connecting, but "right after" can be tens of milliseconds on a
# loaded machine; a connection that is still silent after this is idle and
# closed.  It adds this much to every graceful stop.
_FIRST_REQUEST_GRACE = 0.5
# How long a stopping worker then waits for its connections to read the bytes
# the kernel already holds for them.  One loop iteration normally does it; the
# cap only bounds a connection whose protocol never reads.
_SETTLE_TIMEOUT = 2.0


def _unread_bytes(fd: int) -> int:
    try:
        return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
    except OSError:
        return 0


async def _settle_reads(loop: asyncio.AbstractEventLoop) -> None:
    """Wait ``_FIRST_REQUEST_GRACE``, then until no open, reading connection of
    ``loop`` has unread input.

    The connections are the transports pyloop registers by fd
    (``loop._transports``); each poll of the loop hands what arrived to
    their protocols, so a request that reached the kernel becomes a request
    under way for the framework.
    """
    await asyncio.sleep(_FIRST_REQUEST_GRACE)
    transports = getattr(loop, "_transports", None)
    if transports is None:
        return
    end = loop.time() + _SETTLE_TIMEOUT
    while loop.time() < end:
        if not any(not t.is_closing() and t.is_reading() and _unread_bytes(fd) > 0
                   for fd, t in list(transports.items())):
            return
        # A timed wait, not sleep(0): the loop then polls its sockets before
        # this task runs again.
        await asyncio.sleep(0.001)


# ---- aiohttp ------------------------------------------------------------------------

def _build_aiohttp_worker() -> type:
    from aiohttp.worker import GunicornWebWorker

    class AiohttpWorker(GunicornWebWorker):  # type: ignore[misc]
        """aiohttp's gunicorn worker (``aiohttp.worker.GunicornWebWorker``) on pyloop.

        ``gunicorn -k pyloop.gunicorn.AiohttpWorker app:make_app``, where
        ``make_app`` is an ``aiohttp.web.Application`` or an async function
        returning one.  Everything but the loop is aiohttp's worker: its
        access log format, SSL options, ``max_requests`` and shutdown
        (``--graceful-timeout``) handling.
        """

        def init_process(self) -> None:
            """Make pyloop the worker's event loop policy, then boot as aiohttp's worker."""
            # aiohttp's init_process closes any loop inherited through the
            # fork and creates the worker's loop with asyncio.new_event_loop();
            # with pyloop's policy that loop is pyloop's (and so are loops the
            # app makes with asyncio.new_event_loop / asyncio.run).
            asyncio.set_event_loop_policy(EventLoopPolicy())
            self._stopping: asyncio.Task[None] | None = None
            super().init_process()

        def handle_exit(self, sig: int, frame: Any) -> None:
            """SIGTERM: stop accepting, let the connections read what has arrived,
            then shut down as aiohttp's worker does (graceful)."""
            # A loop signal handler: the drain is a task; aiohttp's worker loop
            # notices `alive` going false afterwards.
            if self._stopping is None:
                self._stopping = self.loop.create_task(self._stop_gracefully(sig, frame))

        async def _stop_gracefully(self, sig: int, frame: Any) -> None:
            try:
                # pyloop's servers accept from a reader on the listening socket
                # (pyloop/_transports/server.py): without it this worker accepts
                # no more, while the socket stays open for aiohttp to close.
                for sock in self.sockets:
                    self.loop.remove_reader(sock.fileno())
                await _settle_reads(self.loop)
            finally:
                super().handle_exit(sig, frame)

    return AiohttpWorker


# ---- uvicorn (ASGI) -----------------------------------------------------------------

def _build_uvicorn_worker() -> type:
    import logging

    import uvicorn
    from gunicorn.arbiter import Arbiter
    from gunicorn.workers.base import Worker

    class UvicornWorker(Worker):  # type: ignore[misc]
        """An ASGI gunicorn worker: ``uvicorn.Server`` on a pyloop loop.

        ``gunicorn -k pyloop.gunicorn.UvicornWorker app:app``, where ``app`` is
        an ASGI application.  gunicorn's settings that uvicorn understands are
        passed on (keep-alive, ``max_requests``, ``backlog``, SSL, forwarded
        IPs, the graceful timeout).

        * ``CONFIG_KWARGS``: uvicorn's own settings, as keyword arguments of
          ``uvicorn.Config`` (``{"http": "auto"}``; a subclass may add
          ``lifespan``, ``ws``, ...; ``loop`` is ignored: always pyloop).
        """

        CONFIG_KWARGS: dict[str, Any] = {"http": "auto"}

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # uvicorn logs through its own loggers: send them where gunicorn's go.
            for name, source in (("uvicorn.error", self.log.error_log),
                                 ("uvicorn.access", self.log.access_log)):
                logger = logging.getLogger(name)
                logger.handlers = source.handlers
                logger.setLevel(source.level)
                logger.propagate = False
            cfg = self.cfg
            kwargs = {
                "app": None,                      # set in _serve, once gunicorn loaded it
                "log_config": None,
                "timeout_keep_alive": cfg.keepalive,
                # Heartbeat: uvicorn awaits callback_notify every timeout_notify
                # seconds; gunicorn's worker timeout is already half the --timeout.
                "timeout_notify": self.timeout,
                "callback_notify": self._heartbeat,
                "limit_max_requests": self.max_requests,
                "forwarded_allow_ips": cfg.forwarded_allow_ips,
                # Leave a margin inside gunicorn's own graceful timeout, after
                # which the arbiter kills the worker: cancel what is left first.
                "timeout_graceful_shutdown": cfg.graceful_timeout * 0.95,
            }
            if cfg.is_ssl:
                ssl = cfg.ssl_options
                kwargs.update(ssl_keyfile=ssl.get("keyfile"), ssl_certfile=ssl.get("certfile"),
                              ssl_keyfile_password=ssl.get("password"),
                              ssl_version=ssl.get("ssl_version"),
                              ssl_cert_reqs=ssl.get("cert_reqs"), ssl_ca_certs=ssl.get("ca_certs"),
                              ssl_ciphers=ssl.get("ciphers"))
            if cfg.settings["backlog"].value:
                kwargs["backlog"] = cfg.settings["backlog"].value
            kwargs.update(self.CONFIG_KWARGS)
            kwargs["loop"] = "none"               # uvicorn picks no loop: run() makes ours
            self.config = uvicorn.Config(**kwargs)
            self._server: uvicorn.Server | None = None

        def init_signals(self) -> None:
            """Signal handlers for a worker whose uvicorn.Server handles TERM and INT."""
            # gunicorn's default handlers would raise SystemExit in the middle
            # of the loop.  uvicorn.Server installs its own SIGTERM/SIGINT
            # handlers while it serves (graceful shutdown); around that, those
            # two only mark the worker as stopping -- in particular when the
            # Server re-raises the signal it caught after its shutdown, so the
            # worker leaves through run() with its loop closed, not by dying
            # of the signal.  SIGQUIT gets a loop handler in _serve.
            for sig in self.SIGNALS:
                signal.signal(sig, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, self.handle_exit)
            signal.signal(signal.SIGINT, self.handle_exit)
            signal.signal(signal.SIGUSR1, self.handle_usr1)
            signal.signal(signal.SIGABRT, self.handle_abort)
            # Reopening the logs must not interrupt a request's system calls.
            signal.siginterrupt(signal.SIGUSR1, False)

        def run(self) -> None:
            """Serve on a new pyloop loop until told to stop."""
            with asyncio.Runner(loop_factory=new_event_loop) as runner:
                runner.run(self._serve())
            if self._server is not None and not self._server.started:
                sys.exit(Arbiter.WORKER_BOOT_ERROR)

        async def _serve(self) -> None:
            self.config.app = self.wsgi
            server = self._server = _DrainingServer(config=self.config)
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGQUIT, self._quit_now, server)
            try:
                await server.serve(sockets=self.sockets)
            finally:
                loop.remove_signal_handler(signal.SIGQUIT)

        def _quit_now(self, server: uvicorn.Server) -> None:
            self.alive = False
            self.cfg.worker_int(self)
            server.should_exit = server.force_exit = True

        async def _heartbeat(self) -> None:
            self.notify()
            if self.ppid != os.getppid() and self._server is not None:
                self.log.info("Parent changed, shutting down: %s", self)
                self.alive = False
                self._server.should_exit = True

    class _DrainingServer(uvicorn.Server):
        async def shutdown(self, sockets: list[Any] | None = None) -> None:
            # uvicorn stops accepting and at once closes every connection
            # without a request cycle: stop accepting, read what has arrived
            # (those become cycles, which uvicorn lets finish), then go on.
            for server in self.servers:
                server.close()
            await _settle_reads(asyncio.get_running_loop())
            await super().shutdown(sockets=sockets)

    return UvicornWorker


_BUILDERS = {"AiohttpWorker": _build_aiohttp_worker, "UvicornWorker": _build_uvicorn_worker}
