"""A program for the monitor tests: a few nested tasks, a ticker, optional stalls on demand.

    python tests/monitor/_app.py [--block-file PATH]

It prints READY once its tasks are running, then runs until stdin closes.  While
the file named by --block-file exists, the ticker blocks the loop in time.sleep.
The monitor is served because the test starts it with PYLOOP_MONITOR in its
environment.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

import pyloop
from pyloop import task


async def leaf(seconds: float) -> None:
    await asyncio.sleep(seconds)


async def gatherer() -> None:
    await asyncio.gather(leaf(3600), leaf(3600))


async def joiner() -> None:
    async with task.JoinSet() as js:
        js.spawn(leaf(3600), name="member-a")
        js.spawn(leaf(3600), name="member-b")
        await js.join_next()


async def ticker(block_file: str | None) -> None:
    while True:
        await asyncio.sleep(0.02)
        while block_file and os.path.exists(block_file):
            time.sleep(0.01)        # the blocking line: the tests look for it


async def main(block_file: str | None) -> None:
    loop = asyncio.get_running_loop()
    stdin_closed = loop.create_future()
    loop.add_reader(sys.stdin.fileno(), lambda: stdin_closed.done() or stdin_closed.set_result(None))
    async with asyncio.TaskGroup() as tg:
        children = [tg.create_task(gatherer(), name="gatherer"),
                    tg.create_task(joiner(), name="joiner"),
                    tg.create_task(ticker(block_file), name="ticker")]
        await asyncio.sleep(0.05)
        print("READY", os.getpid(), flush=True)
        await stdin_closed
        loop.remove_reader(sys.stdin.fileno())
        for child in children:
            child.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--block-file")
    args = parser.parse_args()
    pyloop.run(main(args.block_file))
