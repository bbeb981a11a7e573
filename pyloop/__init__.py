"""pyloop: a fast asyncio event loop with a C core, and a Tokio-style toolbox.

Use the loop with ``pyloop.run(main())``, ``asyncio.Runner(loop_factory=
pyloop.new_event_loop)`` or ``pyloop.install()`` before ``asyncio.run``.

The layers, bottom up (docs/ARCHITECTURE.md has the diagram and the import rules):

* ``csrc/`` -- plain C: the reactor (epoll or kqueue), the timer heap, the ready
  queue, the cross-thread wakeup, the clock;
* ``pyloop._core`` -- Cython, the only code that touches ``csrc/``: handles and the
  loop iteration (``BaseLoop``);
* ``pyloop._eventloop`` -- the public ``Loop`` class and its Python services
  (exception handler, executor, async generators, ``sock_*`` and DNS), the policy;
* ``pyloop._transports`` -- stream (Cython), TLS, datagram and pipe transports,
  connecting and serving;
* ``pyloop._process`` -- subprocesses, child reaping, signals;
* the toolbox, on any asyncio loop: ``pyloop.task``, ``pyloop.time``,
  ``pyloop.sync``, ``pyloop.fs``, ``pyloop.net``; and ``pyloop.serving``
  (multi-core serving).

The toolbox modules are attributes of the package after a plain ``import pyloop``
(``pyloop.sync.channel(16)``), each imported the first time it is used.
"""

import os as _os
from typing import TYPE_CHECKING, Any

from ._core.handles import Handle, TimerHandle
from ._eventloop.loop import Loop
from ._eventloop.policy import EventLoopPolicy, install, new_event_loop, run
from .serving import serve, serve_protocol

if TYPE_CHECKING:
    from . import fs, net, serving, sync, task, time

__version__ = "0.1.0"

# The toolbox modules, reachable as attributes after a plain ``import pyloop``
# (``pyloop.sync.channel(...)``) and imported on first use, so that ``import pyloop``
# for the loop alone stays as cheap as it was.
_SUBMODULES = ("task", "time", "sync", "fs", "net", "serving")

__all__ = ["Loop", "Handle", "TimerHandle", "EventLoopPolicy", "install",
           "new_event_loop", "run", "serve", "serve_protocol", "__version__",
           "task", "time", "sync", "fs", "net", "serving"]


# PYLOOP_MONITOR=1 (or a socket path): answer `python -m pyloop ps|top|stats PID` (pyloop.monitor).
if _os.environ.get("PYLOOP_MONITOR", "").strip().lower() not in ("", "0", "false", "no", "off"):
    from .monitor import _autostart

    _autostart()


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")   # binds the attribute as well
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_SUBMODULES})
