"""The table machinery behind tests/reliability/test_bad_input_*.py.

Each row is a :class:`Case`: an id, a callable that makes one bad call, and the
exception type it must raise.  The same row runs on every loop under test (the
``loop_factory`` fixture: asyncio and pyloop by default), and the raised type must
be *exactly* the one in the table -- which is what stock asyncio raises, so a row
is a statement "pyloop raises what asyncio raises here".  Where asyncio's answer is
odd (an ``AttributeError`` for a wrong type, silently accepting nonsense) the row
still records it, with ``reason`` saying why that is the expectation; ``per_loop``
overrides the expectation for one implementation, with a reason.

``call(loop, env)`` may be a plain function (called directly) or an ``async def``
(run on the loop under a timeout).  ``state`` chooses the circumstances:

``"idle"``    a fresh loop, not running;
``"closed"``  the loop is closed first;
``"thread"``  the loop is running a coroutine in the main thread and the call is
              made from another thread (``debug=True`` turns on asyncio's
              thread checks).

After every case that leaves the loop open, the loop must still run a coroutine:
bad input may raise, but it may never wedge the loop (``wedges`` names an
implementation known to be left unusable, with the reason).  ``bugs`` marks a row
``xfail(strict=True)`` on an implementation with a known, reported bug, so the row
starts failing -- and must be unmarked -- once the bug is fixed.

Adding a row: find out what stock asyncio raises (run the row on asyncio alone with
``PYLOOP_TEST_LOOPS=asyncio``), put that type in ``exc``, and say in ``reason`` why
when it is surprising.  Every call is bounded by TIMEOUT and the test by
pytest-timeout, so a hanging implementation fails one row instead of the run.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import tempfile
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest

#: Per-case bound on anything that should take milliseconds (loaded 2-core machine).
TIMEOUT = 20.0

NO_RAISE = None


@dataclass(frozen=True)
class Case:
    """One bad call and the exception type it must raise (``None``: must not raise)."""

    id: str
    call: Callable[..., Any]
    exc: type[BaseException] | None
    state: str = "idle"
    debug: bool = False
    reason: str = ""
    per_loop: dict[str, type[BaseException] | None] = field(default_factory=dict)
    #: loop name -> reason: a known bug of that implementation (strict xfail).
    bugs: dict[str, str] = field(default_factory=dict)
    #: loop name -> reason: that implementation's loop is known to be left unusable
    #: (the after-check that the loop still runs is skipped for it).
    wedges: dict[str, str] = field(default_factory=dict)
    #: extra pytest marks (e.g. a filterwarnings for noise asyncio itself makes)
    marks: tuple = ()

    def param(self):
        return pytest.param(self, id=self.id, marks=self.marks)


class Env:
    """Resources a case needs, all released after it (sockets, pipes, files, transports)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._closers: list[Callable[[], Any]] = []
        self._transports: list[asyncio.BaseTransport] = []
        self.tmpdir = tempfile.mkdtemp(prefix="pyloop-bad-")

    def on_cleanup(self, fn: Callable[[], Any]) -> None:
        self._closers.append(fn)

    # -- sockets and fds
    def sock(self, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM,
             blocking: bool = False) -> socket.socket:
        s = socket.socket(family, type)
        s.setblocking(blocking)
        self.on_cleanup(s.close)
        return s

    def socketpair(self, blocking: bool = False) -> tuple[socket.socket, socket.socket]:
        a, b = socket.socketpair()
        for s in (a, b):
            s.setblocking(blocking)
            self.on_cleanup(s.close)
        return a, b

    def listener(self) -> socket.socket:
        s = self.sock()
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        return s

    def unused_port(self) -> int:
        """A port nothing listens on (bound then released; another process could grab it, rarely)."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    def pipe(self) -> tuple[int, int]:
        r, w = os.pipe()
        for fd in (r, w):
            self.on_cleanup(lambda fd=fd: _close_fd(fd))
        return r, w

    def file(self, mode: str = "w+b", data: bytes = b"0123456789"):
        path = os.path.join(self.tmpdir, f"f{len(self._closers)}")
        with open(path, "wb") as f:
            f.write(data)
        f = open(path, mode)
        self.on_cleanup(f.close)
        return f

    def path(self, name: str) -> str:
        return os.path.join(self.tmpdir, name)

    def coro(self):
        """A coroutine object that is closed at cleanup if nobody awaited it."""
        async def nothing() -> None:
            return None

        c = nothing()
        self.on_cleanup(c.close)
        return c

    # -- transports (async: they are made on the running loop)
    async def transport(self, protocol: asyncio.Protocol | None = None):
        """A connected stream transport over a socketpair; returns (transport, protocol, peer socket)."""
        a, b = socket.socketpair()
        self.on_cleanup(b.close)
        tr, pr = await self.loop.create_connection(lambda: protocol or asyncio.Protocol(), sock=a)
        self._transports.append(tr)
        return tr, pr, b

    async def datagram(self):
        tr, pr = await self.loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
        self._transports.append(tr)
        return tr, pr

    async def write_pipe(self):
        r, w = os.pipe()
        self.on_cleanup(lambda: _close_fd(r))
        wf = os.fdopen(w, "wb", buffering=0)
        tr, pr = await self.loop.connect_write_pipe(asyncio.Protocol, wf)
        self._transports.append(tr)
        return tr, pr, r

    async def server(self):
        srv = await self.loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        self.on_cleanup(srv.close)
        return srv

    def track(self, transport: asyncio.BaseTransport) -> None:
        self._transports.append(transport)

    def close(self) -> None:
        for tr in self._transports:
            with contextlib.suppress(Exception):
                tr.close()
        if not self.loop.is_closed() and not self.loop.is_running() and self._transports:
            # let connection_lost run and the sockets close
            with contextlib.suppress(Exception):
                self.loop.run_until_complete(asyncio.sleep(0.01))
        for fn in reversed(self._closers):
            with contextlib.suppress(Exception):
                fn()
        with contextlib.suppress(OSError):
            for name in os.listdir(self.tmpdir):
                os.unlink(os.path.join(self.tmpdir, name))
            os.rmdir(self.tmpdir)


def _close_fd(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


def _call(case: Case, loop: asyncio.AbstractEventLoop, env: Env):
    """Make the call; an awaitable result is awaited on the loop, under TIMEOUT."""
    result = case.call(loop, env)
    if asyncio.iscoroutine(result):
        return loop.run_until_complete(asyncio.wait_for(result, TIMEOUT))
    return result


def _call_from_thread(case: Case, loop: asyncio.AbstractEventLoop, env: Env):
    async def main():
        done = loop.create_future()

        def in_thread():
            try:
                outcome = (True, case.call(loop, env))
            except BaseException as exc:  # noqa: BLE001 - handed back to the loop thread
                outcome = (False, exc)
            loop.call_soon_threadsafe(done.set_result, outcome)

        t = threading.Thread(target=in_thread)
        t.start()
        try:
            ok, value = await asyncio.wait_for(done, TIMEOUT)
        finally:
            t.join(TIMEOUT)
        if not ok:
            raise value
        if asyncio.iscoroutine(value):
            value.close()
        return value

    return loop.run_until_complete(main())


def run_case(case: Case, loop_factory) -> None:
    """Run one row on the implementation behind ``loop_factory`` and check the raised type."""
    name = loop_factory.impl.name
    expected = case.per_loop.get(name, case.exc)
    loop = loop_factory()
    env = Env(loop)
    raised: BaseException | None = None
    try:
        if case.debug:
            loop.set_debug(True)
        if case.state == "closed":
            loop.close()
        try:
            if case.state == "thread":
                _call_from_thread(case, loop, env)
            else:
                _call(case, loop, env)
        except BaseException as exc:  # noqa: BLE001 - the type is what is being tested
            raised = exc
        if not loop.is_closed() and name not in case.wedges:
            # The loop must survive bad input: it still runs a coroutine afterwards.
            loop.run_until_complete(asyncio.wait_for(asyncio.sleep(0), TIMEOUT))
    finally:
        env.close()
        if name in case.wedges and not loop.is_closed():
            loop.close()
        if not loop.is_closed() and not loop.is_running():
            with contextlib.suppress(Exception):
                loop.run_until_complete(asyncio.wait_for(loop.shutdown_default_executor(), TIMEOUT))
            loop.close()
    if expected is None:
        assert raised is None, f"{case.id}: expected no exception on {name}, got {raised!r}"
    else:
        assert raised is not None, f"{case.id}: expected {expected.__name__} on {name}, nothing was raised"
        assert type(raised) is expected, (
            f"{case.id}: expected {expected.__name__} on {name}, got {type(raised).__name__}: {raised}")


def params(cases: list[Case]) -> list:
    """pytest params for a table, with ids checked unique."""
    ids = [c.id for c in cases]
    dupes = {i for i in ids if ids.count(i) > 1}
    assert not dupes, f"duplicate case ids: {sorted(dupes)}"
    return [c.param() for c in cases]


def apply_bugs(request, case: Case) -> None:
    """Strict-xfail a case on an implementation with a known, reported bug."""
    name = request.getfixturevalue("loop_name")
    if name in case.bugs:
        request.node.add_marker(pytest.mark.xfail(strict=True, reason=case.bugs[name]))
