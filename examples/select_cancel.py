"""select: the first branch to finish wins; the losers are cancelled and awaited.

    python examples/select_cancel.py
"""

import asyncio

import pyloop
from pyloop import task, time


async def slow_lookup(cleanup_log: list[str]) -> str:
    try:
        await time.sleep(10)
        return "slow answer"
    finally:
        await asyncio.sleep(0)            # cleanup that itself awaits
        cleanup_log.append("slow lookup cleaned up")


async def fast_lookup() -> str:
    await time.sleep(0.01)
    return "fast answer"


async def main() -> None:
    log: list[str] = []
    winner = await task.select(slow=slow_lookup(log), fast=fast_lookup())
    print("winner:", winner.key, "->", winner.value)
    print("before select returned:", log)


if __name__ == "__main__":
    pyloop.run(main())
