"""The Python half of ``asyncio.AbstractEventLoop``, over ``pyloop._core``.

* ``loop``: ``Loop``, the public class: ``BaseLoop`` plus one service per module below
  and in ``pyloop._transports`` / ``pyloop._process``;
* ``policy``: ``new_event_loop``, ``EventLoopPolicy``, ``install``, ``run``;
* ``exception_handler``, ``executor``, ``asyncgens``: the services of those names;
* ``sock``: the ``sock_*`` coroutines, name resolution and ``sock_sendfile``.
"""
