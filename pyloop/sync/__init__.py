"""pyloop.sync: Tokio-style synchronisation for asyncio, on any event loop (fastest on pyloop's).

Channels (written in Cython, :mod:`pyloop.sync._channels`):

* :func:`channel` -- bounded multi-producer single-consumer queue (capacity 0: rendezvous);
* :func:`unbounded_channel` -- the same, with a send that never waits;
* :func:`oneshot` -- exactly one value from one task to another;
* :func:`broadcast` -- every receiver sees every value (slow receivers get :class:`Lagged`);
* :func:`watch` -- one current value that many tasks observe.

Primitives (:mod:`pyloop.sync._primitives`): :class:`Semaphore` (FIFO-fair, permits, ``acquire_many``),
:class:`Notify`, :class:`Barrier`, :class:`CancellationToken` and :class:`RateLimiter` (token bucket).

Errors, all this package's own: :class:`Closed` (the other side is gone, or the stream ended; also a
closed :class:`Semaphore`), :class:`Full` and :class:`Empty` (``try_*`` could not complete now; subclasses
of asyncio.QueueFull/QueueEmpty), :class:`Lagged` (a broadcast receiver fell behind; ``.skipped``).  Bad
arguments are ``TypeError``/``ValueError``.  All of the toolbox's errors are listed together in
docs/ARCHITECTURE.md, "Errors".

    import asyncio, pyloop
    from pyloop import sync

    async def main():
        tx, rx = sync.channel(64)

        async def produce():
            async with tx:                      # closing the last sender ends the stream
                for i in range(3):
                    await tx.send(i)

        async with asyncio.TaskGroup() as tg:
            tg.create_task(produce())
            print([v async for v in rx])        # [0, 1, 2]

    pyloop.run(main())

Closing is explicit (``close()`` or ``async with``).  An endpoint collected while still open emits
ResourceWarning and is then treated as closed, so a forgotten sender never hangs its receiver; a
receiver drained to the end of its stream needs no close.  An operation (``tx.send(v)``, ``rx.recv()``)
that is never awaited warns RuntimeWarning, like a coroutine.  A channel belongs to one thread and
loop: using it from another raises RuntimeError; synchronous code in another thread (a
``spawn_blocking`` function, a plain thread) uses ``tx.blocking_send(v)`` and ``rx.blocking_recv()``
(oneshot and broadcast receivers have ``blocking_recv()`` too).
"""

from ._channels import (
    BroadcastReceiver,
    BroadcastSender,
    Closed,
    Empty,
    Full,
    Lagged,
    OneshotReceiver,
    OneshotSender,
    Permit,
    Receiver,
    Sender,
    UnboundedSender,
    WatchReceiver,
    WatchSender,
    broadcast,
    channel,
    oneshot,
    unbounded_channel,
    watch,
)

__all__ = [
    # channels (pyloop.sync._channels)
    "channel", "unbounded_channel", "oneshot", "broadcast", "watch",
    "Sender", "UnboundedSender", "Receiver", "Permit",
    "OneshotSender", "OneshotReceiver",
    "BroadcastSender", "BroadcastReceiver",
    "WatchSender", "WatchReceiver",
    "Closed", "Full", "Empty", "Lagged",
]

# ---- primitives -------------------------------------------------------------------------------
from ._primitives import (  # noqa: E402
    Barrier,
    BarrierWaitResult,
    CancellationToken,
    Notify,
    RateLimiter,
    Semaphore,
    SemaphorePermit,
)

__all__ += ["Semaphore", "SemaphorePermit", "Notify", "Barrier", "BarrierWaitResult",
            "CancellationToken", "RateLimiter"]
