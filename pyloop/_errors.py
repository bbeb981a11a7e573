"""The exceptions of ``pyloop.sync``, shared by the channels and the primitives."""

from __future__ import annotations

import asyncio

__all__ = ["Closed", "Full", "Empty", "Lagged"]


class Closed(Exception):
    """The other side is gone: the channel, semaphore or endpoint is closed."""


class Full(asyncio.QueueFull):
    """``try_send`` found no room in a bounded channel (an ``asyncio.QueueFull``)."""


class Empty(asyncio.QueueEmpty):
    """``try_recv`` found nothing to receive (an ``asyncio.QueueEmpty``)."""


class Lagged(Exception):
    """A broadcast receiver fell behind and ``skipped`` values were dropped for it.

    The receiver goes on from the oldest value still retained.
    """

    def __init__(self, skipped: int) -> None:
        super().__init__(f"receiver lagged behind and missed {skipped} value(s)")
        self.skipped = skipped
