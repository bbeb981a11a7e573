"""Helpers shared by the toolbox tests: a bounded loop run and a few loop turns."""

from __future__ import annotations

import asyncio

#: Only ever reached by a hang: the tests must stay correct on a loaded 2-core machine.
GUARD = 30.0


def run(loop, coro):
    """run_until_complete(coro), failing with TimeoutError instead of hanging."""
    return loop.run_until_complete(asyncio.wait_for(coro, GUARD))


async def turns(n=5):
    """Let every ready task run ``n`` more steps (no wall-clock time involved)."""
    for _ in range(n):
        await asyncio.sleep(0)
