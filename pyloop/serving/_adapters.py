"""What ``pyloop.serve`` accepts, turned into the one shape its workers run: ``start(sock) -> server``.

A worker only knows how to call an async ``start(sock)`` and get back a server (``close()`` and
``async wait_closed()``).  Users arrive with what their framework gives them instead: an aiohttp
``web.Application`` or ``AppRunner``, a uvicorn ``Config`` or ``Server``, a bare ASGI app, or a
factory making one of those.  This module recognises each (in the parent, before anything forks,
so a wrong argument is a ``TypeError`` there and not N worker tracebacks) and builds the start
function that serves it on the worker's socket:

* **aiohttp**: each worker sets up its own ``AppRunner`` (made with ``shutdown_timeout=grace``
  for an ``Application``) and starts a ``web.SockSite`` on its socket.  Stopping is the runner's
  ``cleanup()``: the site stops accepting, idle keep-alive connections close, requests in flight
  finish (up to the runner's shutdown timeout), then ``on_shutdown``/``on_cleanup`` run.
* **uvicorn**: each worker runs ``Server.serve(sockets=[sock])``, the entry point uvicorn keeps
  for process managers (gunicorn's worker uses it).  Stopping is ``should_exit``, as uvicorn's own
  signal handler does it; ``force_exit`` when the grace period runs out.  uvicorn would also
  install its own SIGINT/SIGTERM handlers around ``serve()``; the worker owns those signals (the
  parent forwards one SIGTERM; workers ignore the terminal's SIGINT), so that is switched off for
  the worker's copy of the server.  A server that stops by itself (``limit_max_requests``) ends
  its worker, which the parent then reports, and replaces with ``restart=True``.
* **an ASGI app** is served by uvicorn with a default ``Config``; **a factory** (a callable that
  takes no argument, sync or async) is called in each worker, on that worker's loop, and what it
  returns is served as above.  So are the results of a ``start(sock)`` function that returns one
  of those instead of a started server.

Objects are told apart by type for the frameworks (looked up in ``sys.modules``: an aiohttp
object exists only if aiohttp is imported, so nothing here imports a framework it does not need),
and by signature for callables: one positional argument is a start function (the original form),
none a factory, three (``scope, receive, send``) an ASGI app.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import socket
import sys
from collections.abc import Callable
from typing import Any

from ._workers import ServerLike, StartFunction, current_worker

# What serve() accepts (see its docstring): framework objects, a start function, a factory.  Their
# types are not imported here (the frameworks are optional), so for a type checker it is any object.
Servable = Any

ACCEPTED = ("an aiohttp web.Application or web.AppRunner, a uvicorn Config or Server, an ASGI app "
            "(async def app(scope, receive, send)), an async start(sock) function that returns a "
            "started server, or a factory (no arguments, may be async) that returns an Application, "
            "AppRunner, Config, Server or ASGI app")


def _describe(obj: object) -> str:
    if obj is None:
        return "None"
    kind = type(obj)
    text = repr(obj)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({kind.__module__}.{kind.__qualname__})"


def _not_servable(obj: object, hint: str = "") -> TypeError:
    return TypeError(f"pyloop.serve() cannot serve {_describe(obj)}: it serves {ACCEPTED}{hint}")


# ---- recognising the frameworks' objects ----------------------------------------------------

def _aiohttp_kind(obj: object) -> str | None:
    """'app' for a web.Application, 'runner' for an AppRunner/ServerRunner, else None."""
    web = sys.modules.get("aiohttp.web")
    if web is None:
        return None
    if isinstance(obj, web.Application):
        return "app"
    if isinstance(obj, web.BaseRunner):
        return "runner"
    return None


def _uvicorn_kind(obj: object) -> str | None:
    """'config' for a uvicorn Config, 'server' for a uvicorn Server, else None."""
    uvicorn = sys.modules.get("uvicorn")
    if uvicorn is None:
        return None
    if isinstance(obj, uvicorn.Config):
        return "config"
    if isinstance(obj, uvicorn.Server):
        return "server"
    return None


def _shape(fn: Callable[..., Any]) -> str:
    """How a callable is called: 'start' (the socket), 'factory' (nothing) or 'asgi' (three)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):     # no signature to read (some builtins): the original form
        return "start"
    for shape, args in (("start", (None,)), ("factory", ()), ("asgi", (None, None, None))):
        try:
            sig.bind(*args)
        except TypeError:
            continue
        return shape
    return "none"


def _is_server(obj: object) -> bool:
    return callable(getattr(obj, "close", None)) and callable(getattr(obj, "wait_closed", None))


# ---- the parent side ------------------------------------------------------------------------

@dataclasses.dataclass
class Adapted:
    """``serve``'s first argument as the workers run it, plus what it says about the address and
    the loop (a uvicorn Config has both; None: serve()'s own arguments decide)."""

    start: StartFunction
    host: str | None = None
    port: int | None = None
    has_address: bool = False
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None


def adapt(target: object, grace: float) -> Adapted:
    """Recognise what ``serve`` was given, or raise TypeError/ValueError naming the fix."""
    if inspect.iscoroutine(target):
        close = getattr(target, "close", None)
        if close is not None:
            close()                     # refused: no "never awaited" warning on top
        raise _not_servable(target, "; this is a coroutine object: pass the async function itself "
                                    "(serve(make_app), not serve(make_app())), each worker calls it")
    framework = _aiohttp_kind(target) or _uvicorn_kind(target)
    if framework is not None:
        _check_unstarted(target, framework)
        adapted = Adapted(start=_fixed_start(target, grace))
        if framework in ("config", "server"):
            config = target.config if framework == "server" else target  # type: ignore[attr-defined]
            adapted.host, adapted.port, adapted.has_address = config.host, config.port, True
            adapted.loop_factory = _uvicorn_loop_factory(config)
        return adapted
    if not callable(target) or isinstance(target, (str, bytes)):
        hint = ""
        if isinstance(target, str) and ":" in target:
            hint = (f"; for an import string, import it first (serve(module.app)), or give it to "
                    f"uvicorn.Config({target!r})")
        raise _not_servable(target, hint)
    shape = _shape(target)
    if shape == "none":
        raise _not_servable(target, "; this callable takes neither one argument (the socket), "
                                    "none (a factory) nor three (an ASGI app)")
    if shape == "asgi":
        _require_uvicorn("an ASGI app")
    return Adapted(start=_callable_start(target, shape, grace))


def _check_unstarted(target: Any, framework: str) -> None:
    if framework == "runner" and target.server is not None:
        raise ValueError("pyloop.serve() needs the AppRunner before setup(): every worker sets it "
                         "up on its own event loop.  Pass the runner (or the Application) without "
                         "calling runner.setup()")
    if framework == "server" and target.started:
        raise ValueError("pyloop.serve() needs a uvicorn Server that has not started: pass it "
                         "before server.run()/serve() (or pass its Config)")
    if framework in ("config", "server"):
        config = target.config if framework == "server" else target
        if config.uds is not None or config.fd is not None:
            raise ValueError("pyloop.serve() listens on host:port for all its workers; a uvicorn "
                             "Config with uds= or fd= cannot be served by it: give host= and "
                             "port= instead")
        if config.reload:
            raise ValueError("pyloop.serve() does not reload code: drop reload=True from the "
                             "uvicorn Config (use the uvicorn command's --reload in development)")


def _uvicorn_loop_factory(config: Any) -> Callable[[], asyncio.AbstractEventLoop] | None:
    # uvicorn's default "auto" means uvloop-if-installed; under pyloop.serve the default loop is
    # pyloop's.  A loop the Config names explicitly ("asyncio", "uvloop", "pyloop:new_event_loop",
    # a factory) is what the user asked for: it is used.
    if config.loop in ("auto", "none"):
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] | None = config.get_loop_factory()
    return factory


def _require_uvicorn(what: str) -> None:
    try:
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"pyloop.serve() runs {what} with uvicorn, which is not installed: "
                          f"pip install uvicorn (or pass a start(sock) function)") from exc


# ---- the worker side ------------------------------------------------------------------------

def _fixed_start(target: object, grace: float) -> StartFunction:
    async def start(sock: socket.socket) -> ServerLike:
        return await serve_object(target, sock, grace, called="")
    return start


def _callable_start(fn: Callable[..., Any], shape: str, grace: float) -> StartFunction:
    async def start(sock: socket.socket) -> ServerLike:
        if shape == "asgi":
            return await serve_object(fn, sock, grace, called="")
        result = fn(sock) if shape == "start" else fn()
        if inspect.isawaitable(result):
            result = await result
        return await serve_object(result, sock, grace, called=_called(fn, shape))
    return start


def _called(fn: Callable[..., Any], shape: str) -> str:
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"{name}({'sock' if shape == 'start' else ''})"


async def serve_object(obj: object, sock: socket.socket, grace: float, called: str) -> ServerLike:
    """In a worker: start serving ``obj`` on ``sock``; the server to stop at the end."""
    if called and _is_server(obj):
        return obj  # type: ignore[return-value]      # a start function's own server
    kind = _aiohttp_kind(obj)
    if kind is not None:
        return await AiohttpServing.start(obj, kind, sock, grace)
    kind = _uvicorn_kind(obj)
    if kind is None and callable(obj) and _shape(obj) == "asgi":
        import uvicorn
        obj, kind = uvicorn.Config(obj), "config"
    if kind is not None:
        if called:
            _check_unstarted(obj, kind)
        server = obj if kind == "server" else sys.modules["uvicorn"].Server(obj)
        return await UvicornServing.start(server, sock)
    raise TypeError(f"{called} returned {_describe(obj)}: pyloop.serve() can use a started server "
                    f"(an object with close() and wait_closed(), such as what "
                    f"loop.create_server(..., sock=sock) returns), an aiohttp web.Application or "
                    f"web.AppRunner, a uvicorn Config or Server, or an ASGI app")


class _Serving:
    """A framework's server seen as ``ServerLike``: ``close()`` starts its shutdown, and
    ``wait_closed()`` waits for that shutdown (entered before ``close()``, as the worker does)."""

    def __init__(self) -> None:
        self._closing = asyncio.Event()
        self._stopped: asyncio.Future[None] | None = None

    async def _stop(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        if not self._closing.is_set():
            self._closing.set()
            self._stopped = asyncio.ensure_future(self._stop())

    async def wait_closed(self) -> None:
        await self._closing.wait()
        assert self._stopped is not None
        # Shielded: the worker's grace-period timeout must not cancel the framework's shutdown
        # half-way; it calls abort_clients() instead, which makes the shutdown finish.
        await asyncio.shield(self._stopped)

    def abort_clients(self) -> None:
        raise NotImplementedError


class AiohttpServing(_Serving):
    """An aiohttp runner set up in this worker, with one ``SockSite`` on the worker's socket."""

    def __init__(self, runner: Any) -> None:
        super().__init__()
        self.runner = runner

    @classmethod
    async def start(cls, obj: Any, kind: str, sock: socket.socket, grace: float) -> AiohttpServing:
        from aiohttp import web
        runner = web.AppRunner(obj, shutdown_timeout=grace) if kind == "app" else obj
        await runner.setup()
        try:
            await web.SockSite(runner, sock).start()
        except BaseException:
            await runner.cleanup()
            raise
        return cls(runner)

    async def _stop(self) -> None:
        await self.runner.cleanup()

    def abort_clients(self) -> None:
        server = self.runner.server
        for handler in getattr(server, "connections", ()):
            handler.force_close()


class UvicornServing(_Serving):
    """A uvicorn ``Server.serve(sockets=[sock])`` running in this worker."""

    def __init__(self, server: Any, task: asyncio.Task[None]) -> None:
        super().__init__()
        self.server = server
        self.task = task

    @classmethod
    async def start(cls, server: Any, sock: socket.socket) -> UvicornServing:
        # The worker owns SIGTERM and SIGINT (module docstring): no uvicorn handlers in between.
        server.capture_signals = contextlib.nullcontext
        task = asyncio.ensure_future(server.serve(sockets=[sock]))
        # uvicorn says it is serving by setting `started` (no event to wait on); it either gets
        # there or its task ends (a lifespan startup failure exits with status 3).
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the uvicorn server stopped before it started serving "
                                   "(see its log above)")
            await asyncio.wait({task}, timeout=0.01)
        task.add_done_callback(_stop_worker)
        return cls(server, task)

    async def _stop(self) -> None:
        self.server.should_exit = True
        await self.task

    def abort_clients(self) -> None:
        self.server.force_exit = True
        for connection in list(self.server.server_state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.abort()


def _stop_worker(task: asyncio.Task[None]) -> None:
    # uvicorn stopped by itself (limit_max_requests, or it failed): the worker ends too, so that
    # the parent sees it and can replace it.
    worker = current_worker()
    if worker is not None and not worker.stopping.is_set():
        worker.stopping.set()
