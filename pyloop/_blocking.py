"""The blocking pool: one bounded set of threads per process for work that blocks.

``pyloop.task.spawn_blocking`` and ``pyloop.fs`` hand blocking calls (file I/O,
CPU-bound functions, C libraries that hold no event loop) to this pool so the
loop thread never stalls.  It is shared by every loop in the process, like
Tokio's blocking pool, and bounded so a burst of calls queues instead of
starting thousands of threads.

A call's ``contextvars`` context travels with it, as with ``asyncio.to_thread``.
Cancelling the awaiting task does not stop a call that has started (a thread
cannot be interrupted); it only stops the caller from waiting for it.  A call
still queued when its caller is cancelled never runs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import os
import threading
from typing import Any, Callable, TypeVar

__all__ = ["run_blocking", "blocking_pool_size", "set_blocking_pool_size"]

T = TypeVar("T")

# Threads are cheap to keep idle and file I/O is mostly waiting, so the cap is
# well above the CPU count; PYLOOP_BLOCKING_THREADS overrides it.
_DEFAULT_SIZE = 64

_lock = threading.Lock()
_pool: concurrent.futures.ThreadPoolExecutor | None = None
_size: int = 0


def _size_from_env() -> int:
    raw = os.environ.get("PYLOOP_BLOCKING_THREADS")
    if raw is None:
        return _DEFAULT_SIZE
    try:
        size = int(raw)
    except ValueError:
        raise ValueError(f"PYLOOP_BLOCKING_THREADS must be an integer, got {raw!r}") from None
    if size < 1:
        raise ValueError(f"PYLOOP_BLOCKING_THREADS must be at least 1, got {size}")
    return size


def blocking_pool_size() -> int:
    """The most threads the blocking pool runs at once."""
    return _size or _size_from_env()


def set_blocking_pool_size(size: int) -> None:
    """Set the blocking pool's thread cap.

    Calls already submitted finish on the old pool, which then shuts down;
    later calls use a new pool of ``size`` threads.

    >>> set_blocking_pool_size(8)
    """
    global _pool, _size
    if not isinstance(size, int) or isinstance(size, bool):
        raise TypeError(f"size must be an int, got {type(size).__name__}")
    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    with _lock:
        old, _pool, _size = _pool, None, size
    if old is not None:
        old.shutdown(wait=False)


def _get_pool() -> concurrent.futures.ThreadPoolExecutor:
    global _pool, _size
    pool = _pool
    if pool is None:
        with _lock:
            if _pool is None:
                if not _size:
                    _size = _size_from_env()
                _pool = concurrent.futures.ThreadPoolExecutor(
                    max_workers=_size, thread_name_prefix="pyloop-blocking")
            pool = _pool
    return pool


def _forget_pool_in_child() -> None:
    # The parent's threads do not exist in a forked child: start afresh.
    global _pool, _lock
    _pool = None
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)


async def run_blocking(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run ``fn(*args, **kwargs)`` on the blocking pool and return its result.

    Exceptions raised by ``fn`` propagate to the caller.

    >>> data = await run_blocking(pathlib.Path("x").read_bytes)
    """
    if not callable(fn):
        raise TypeError(f"a callable was expected, got {fn!r}")
    if asyncio.iscoroutinefunction(fn):
        raise TypeError("coroutine functions cannot run on the blocking pool")
    loop = asyncio.get_running_loop()
    ctx = contextvars.copy_context()
    call = functools.partial(ctx.run, fn, *args, **kwargs)
    return await asyncio.wrap_future(_get_pool().submit(call), loop=loop)
