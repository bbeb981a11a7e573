"""pyloop: a fast asyncio event loop with a C core.

Architecture, bottom up:

* ``csrc/`` -- plain C: the reactor (epoll or kqueue), the timer heap, the
  ready queue, the cross-thread wakeup;
* ``pyloop._handles`` / ``pyloop._loop`` -- Cython: callback handles and the
  loop iteration that drives the C engine;
* ``pyloop._event_loop`` -- the public ``Loop`` class, adding the Python-level
  services (exception handler, executors, async generators, ``sock_*``);
* ``pyloop._policy`` -- ``new_event_loop``, ``EventLoopPolicy``, ``install``
  and ``run``.

Use it with ``pyloop.run(main())``, ``asyncio.Runner(loop_factory=
pyloop.new_event_loop)`` or ``pyloop.install()`` before ``asyncio.run``.
"""

from ._event_loop import Loop
from ._handles import Handle, TimerHandle
from ._policy import EventLoopPolicy, install, new_event_loop, run
from .serving import serve, serve_protocol

__version__ = '0.1.0'

__all__ = ['Loop', 'Handle', 'TimerHandle', 'EventLoopPolicy', 'install',
           'new_event_loop', 'run', 'serve', 'serve_protocol', '__version__']
