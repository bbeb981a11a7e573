"""A producer and two consumers over a bounded channel: backpressure and a clean end.

The producer waits whenever the channel holds `capacity` items; the consumers
see the end of the stream once the producer has closed its sender and the
buffer is drained.

    python examples/producer_consumer.py
"""

import pyloop
from pyloop import sync, task


async def produce(tx: sync.Sender, n: int) -> None:
    async with tx:                        # closes this sender on exit
        for i in range(n):
            await tx.send(i)              # waits while the channel is full


async def consume(name: str, rx: sync.Receiver) -> int:
    total = 0
    async for item in rx:                 # ends when every sender is closed
        total += item
    return total


async def main() -> None:
    tx, rx = sync.channel(16)
    producer = task.spawn(produce(tx, 1000))
    # Two consumers share one receiver: each item goes to exactly one of them.
    totals = await task.join(consume("a", rx), consume("b", rx))
    await producer
    print("items summed by the consumers:", sum(totals), "expected:", sum(range(1000)))


if __name__ == "__main__":
    pyloop.run(main())
