"""Rate limiting: at most 50 calls a second, in bursts of up to 5.

    python examples/rate_limit.py
"""

import asyncio

import pyloop
from pyloop import sync, task


async def call_api(limiter: sync.RateLimiter, i: int) -> float:
    await limiter.acquire()
    return asyncio.get_running_loop().time()


async def main() -> None:
    limiter = sync.RateLimiter(50, per=1.0, burst=5)
    start = asyncio.get_running_loop().time()
    times = await task.join(*(call_api(limiter, i) for i in range(25)))
    elapsed = max(times) - start
    print(f"25 calls took {elapsed:.2f} s (the first 5 at once, then one every 20 ms)")


if __name__ == "__main__":
    pyloop.run(main())
