"""Helpers for the protocol-context tests: one context variable, and protocols
that record the value it has in each of their callbacks.

Each test sets ``CVAR`` to ``"inner"`` in its own task before it makes the
transport; a callback that runs in the protocol's context sees ``"inner"`` (or
what an earlier callback of the same protocol set), never ``"outer"`` (the
default) nor a value that whoever triggered the callback set in its own
context (``"closing"``, ``"writer"``...).
"""

from __future__ import annotations

import asyncio
import contextvars

CVAR: contextvars.ContextVar[str] = contextvars.ContextVar("pyloop_test_protocol_context",
                                                           default="outer")


class Events:
    """What each callback saw: ``seen[name]`` lists the values of CVAR, in
    order; ``first(name)`` is a future for the first one."""

    def __init__(self, loop):
        self.loop = loop
        self.seen: dict[str, list[str]] = {}
        self._first: dict[str, asyncio.Future] = {}
        self.errors: list[BaseException] = []

    def note(self, name: str) -> None:
        value = CVAR.get()
        self.seen.setdefault(name, []).append(value)
        fut = self._future(name)
        if not fut.done():
            fut.set_result(value)

    def _future(self, name: str) -> asyncio.Future:
        fut = self._first.get(name)
        if fut is None:
            fut = self._first[name] = self.loop.create_future()
        return fut

    def first(self, name: str) -> asyncio.Future:
        return self._future(name)

    def all_values(self) -> set[str]:
        return {value for values in self.seen.values() for value in values}


class _Recording:
    """The callbacks every stream protocol has.  ``set_in`` maps a callback
    name to a value the callback sets CVAR to after noting what it saw."""

    def __init__(self, loop, set_in: dict[str, str] | None = None):
        self.events = Events(loop)
        self.set_in = set_in or {}
        self.transport = None

    def _note(self, name: str) -> None:
        self.events.note(name)
        if name in self.set_in:
            CVAR.set(self.set_in[name])

    def connection_made(self, transport):
        self.transport = transport
        self._note("connection_made")

    def eof_received(self):
        self._note("eof_received")
        return False

    def pause_writing(self):
        self._note("pause_writing")

    def resume_writing(self):
        self._note("resume_writing")

    def connection_lost(self, exc):
        self._note("connection_lost")


class RecordingProtocol(_Recording, asyncio.Protocol):
    DATA = "data_received"

    def data_received(self, data):
        self._note("data_received")


class RecordingBufferedProtocol(_Recording, asyncio.BufferedProtocol):
    DATA = "buffer_updated"

    def __init__(self, loop, set_in=None):
        super().__init__(loop, set_in)
        self._buffer = bytearray(64 * 1024)

    def get_buffer(self, sizehint):
        self._note("get_buffer")
        return self._buffer

    def buffer_updated(self, nbytes):
        self._note("buffer_updated")


PROTOCOLS = {"plain": RecordingProtocol, "buffered": RecordingBufferedProtocol}
