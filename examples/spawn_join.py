"""Spawn tasks and join them: JoinHandle, join, try_join and a JoinSet.

    python examples/spawn_join.py
"""

import pyloop
from pyloop import task, time


async def square(x: int) -> int:
    await time.sleep(0.01 * (5 - x))      # finish in reverse order
    return x * x


async def main() -> None:
    handle = task.spawn(square(3), name="square-3")
    print("spawned:", handle.name)
    print("joined:", await handle)

    print("join:", await task.join(*(square(i) for i in range(5))))

    js = task.JoinSet[int]()
    async with js:
        for i in range(5):
            js.spawn(square(i))
        done_order = [await js.join_next() for _ in range(len(js))]
    print("JoinSet, in completion order:", done_order)


if __name__ == "__main__":
    pyloop.run(main())
