"""Async file reads: a whole file, and a big file line by line without a thread hop per line.

    python examples/read_file.py [PATH]
"""

import sys

import pyloop
from pyloop import fs


async def main(path: str) -> None:
    data = await fs.read(path)
    print(f"{path}: {len(data)} bytes")
    lines = words = 0
    async with fs.open(path, encoding="utf-8") as f:
        async for line in f:
            lines += 1
            words += len(line.split())
    print(f"{lines} lines, {words} words")


if __name__ == "__main__":
    pyloop.run(main(sys.argv[1] if len(sys.argv) > 1 else __file__))
