"""Timeouts: as an async context manager and as a wrapper of one awaitable.

    python examples/timeout.py
"""

import pyloop
from pyloop import time


async def main() -> None:
    try:
        async with time.timeout(0.05):
            await time.sleep(10)
    except time.Elapsed:
        print("the block timed out after 50 ms")

    try:
        await time.timeout(0.05, time.sleep(10))
    except TimeoutError:                  # Elapsed is a TimeoutError
        print("the awaitable timed out after 50 ms")

    print("in time:", await time.timeout(1.0, quick()))


async def quick() -> str:
    await time.sleep(0.001)
    return "done"


if __name__ == "__main__":
    pyloop.run(main())
