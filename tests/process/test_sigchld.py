"""``loop.add_signal_handler(signal.SIGCHLD, ...)``: honoured, and the loop's children are still
reaped with their own exit status.

asyncio honours a SIGCHLD handler and is the reference; pyloop runs each test with each of its
child reapers (pidfd, the SIGCHLD listener, a helper thread).  uvloop refuses the request with
RuntimeError (libuv reaps through SIGCHLD itself): ``test_uvloop_refuses`` records that difference
when uvloop is among ``PYLOOP_TEST_LOOPS``.
"""

import asyncio
import signal
import subprocess
import sys

import pytest

from ._util import BLOCKED, PY, TIMEOUT, assert_no_new_children, children, loop_impl, reaper, run  # noqa: F401  (the fixtures: one run per reaper)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

NOT_UVLOOP = pytest.mark.skip_loops("uvloop", reason="uvloop refuses a SIGCHLD handler")


# reaper and loop_impl: every test runs on pyloop once per child reaper (tests/process/_util.py).


@pytest.fixture(autouse=True)
def sigchld_restored():
    before = signal.getsignal(signal.SIGCHLD)
    yield
    assert signal.getsignal(signal.SIGCHLD) == before, "SIGCHLD disposition not restored"


class Hits:
    """A SIGCHLD callback: records its argument; ``wait()`` until it has been called."""

    def __init__(self):
        self.args = []
        self.called = asyncio.Event()

    def __call__(self, arg=None):
        self.args.append(arg)
        self.called.set()

    async def wait(self):
        await asyncio.wait_for(self.called.wait(), TIMEOUT)
        self.called.clear()


def _exit_with(code):
    return [PY, "-c", f"raise SystemExit({code})"]


@NOT_UVLOOP
def test_handler_runs_and_children_keep_their_status(loop):
    async def main():
        hits = Hits()
        loop.add_signal_handler(signal.SIGCHLD, hits, "chld")
        try:
            procs = [await asyncio.create_subprocess_exec(*_exit_with(code)) for code in (3, 4, 5)]
            codes = [await proc.wait() for proc in procs]
            # Each exit raises SIGCHLD (the kernel may merge pending ones): at least one call.
            await hits.wait()
            return codes, set(hits.args)
        finally:
            assert loop.remove_signal_handler(signal.SIGCHLD)

    before = children()
    codes, hits = run(loop, main())
    assert codes == [3, 4, 5]
    assert hits == {"chld"}
    assert_no_new_children(before)


@NOT_UVLOOP
def test_removing_the_handler_while_children_run_keeps_reaping(loop):
    async def main():
        loop.add_signal_handler(signal.SIGCHLD, lambda: None)
        proc = await asyncio.create_subprocess_exec(*BLOCKED, stdin=subprocess.PIPE)
        assert loop.remove_signal_handler(signal.SIGCHLD)
        assert not loop.remove_signal_handler(signal.SIGCHLD)
        proc.stdin.close()
        return await proc.wait()

    before = children()
    assert run(loop, main()) == 0
    assert_no_new_children(before)


@NOT_UVLOOP
def test_handler_added_while_children_run_and_kept_after(loop):
    """Added while the loop watches a child; still installed (and called) after the loop has
    stopped watching: the loop's own use of SIGCHLD does not take the application's away."""
    async def main():
        first = await asyncio.create_subprocess_exec(*BLOCKED, stdin=subprocess.PIPE)
        hits = Hits()
        loop.add_signal_handler(signal.SIGCHLD, hits)
        first.stdin.close()
        assert await first.wait() == 0
        await hits.wait()
        assert await (await asyncio.create_subprocess_exec(*_exit_with(7))).wait() == 7
        await hits.wait()
        assert loop.remove_signal_handler(signal.SIGCHLD)

    before = children()
    run(loop, main())
    assert_no_new_children(before)


@NOT_UVLOOP
def test_handler_replaced_and_loop_closed_with_it(loop_factory):
    """A second add replaces the first; closing the loop with the handler still installed puts
    the previous disposition back (checked by the autouse fixture)."""
    lp = loop_factory()

    async def main():
        hits = Hits()
        lp.add_signal_handler(signal.SIGCHLD, hits, "old")
        lp.add_signal_handler(signal.SIGCHLD, hits, "new")
        assert await (await asyncio.create_subprocess_exec(*_exit_with(2))).wait() == 2
        await hits.wait()
        return set(hits.args)

    try:
        assert run(lp, main()) == {"new"}
    finally:
        lp.close()


def test_uvloop_refuses(loop_name, loop):
    if loop_name != "uvloop":
        pytest.skip("uvloop's documented difference")
    with pytest.raises(RuntimeError):
        loop.add_signal_handler(signal.SIGCHLD, lambda: None)
