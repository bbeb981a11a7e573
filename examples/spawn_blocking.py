"""spawn_blocking: run blocking code on the bounded thread pool, keep the loop responsive.

    python examples/spawn_blocking.py
"""

import hashlib

import pyloop
from pyloop import task, time


def slow_hash(data: bytes, rounds: int) -> str:
    digest = data
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()[:16]


async def heartbeat(ticks: list[int]) -> None:
    async for _ in time.interval(0.01):
        ticks.append(1)


async def main() -> None:
    ticks: list[int] = []
    beat = task.spawn(heartbeat(ticks))
    digests = await task.join(*(task.spawn_blocking(slow_hash, bytes([i]), 20_000)
                                for i in range(4)))
    beat.abort()
    print("digests:", digests)
    print("the loop kept ticking meanwhile:", len(ticks) > 0)


if __name__ == "__main__":
    pyloop.run(main())
