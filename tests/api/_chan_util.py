"""Helpers shared by the channel tests."""
from __future__ import annotations

import asyncio
import gc
import warnings
from typing import Any, Awaitable, Callable

GUARD_S = 30  # generous: a hang fails the test instead of the suite


def run(loop: asyncio.AbstractEventLoop, fn: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``fn()`` on ``loop`` with a hang guard."""
    async def guarded():
        return await asyncio.wait_for(fn(), GUARD_S)
    return loop.run_until_complete(guarded())


async def settle(rounds: int = 5) -> None:
    """Let every ready task run a few steps (no timing involved: each round is one loop pass)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


def collect_warnings(fn: Callable[[], None]) -> list[warnings.WarningMessage]:
    """Run ``fn`` (which drops references) and collect the warnings emitted when they are freed."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()
        gc.collect()
    return [w for w in caught if issubclass(w.category, ResourceWarning)]
