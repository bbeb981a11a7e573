"""Child reaping: every child of ours is reaped (no zombies), nobody else's is.

pyloop runs each test with each of its reapers: pidfds (the default where the
kernel has them), SIGCHLD (the fallback for a main-thread loop) and a helper
thread per child (the fallback elsewhere).  Stock asyncio runs them once, with
its default child watcher, as the reference.
"""

import asyncio
import gc
import os
import signal
import subprocess
import sys
import threading

import pytest

from ._util import (
    CAT,
    PY,
    SLEEPER,
    TIMEOUT,
    assert_reaped,
    children,
    loop_impl,  # noqa: F401  (the fixture: one run per reaper)
    reaper,  # noqa: F401
    run,
)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes")


# reaper and loop_impl: every test runs on pyloop once per child reaper (tests/process/_util.py).


def watch_kind(loop, pid):
    """How pyloop watches ``pid`` ('pidfd', 'sigchld', 'thread'), or None."""
    watches = getattr(loop, "_child_watches", None)
    watch = watches.get(pid) if watches else None
    return watch.how if watch is not None else None


def test_reaper_in_use(loop, loop_name, reaper):  # noqa: F811 (the fixture)
    async def main():
        proc = await asyncio.create_subprocess_exec(*SLEEPER)
        kind = watch_kind(loop, proc.pid)
        proc.kill()
        await proc.wait()
        return kind

    kind = run(loop, main())
    if loop_name == "pyloop":
        assert kind == reaper


def test_exit_codes_and_no_zombies(loop):
    async def one(code):
        proc = await asyncio.create_subprocess_exec(PY, "-c", f"raise SystemExit({code})")
        return await proc.wait(), proc.pid

    async def main():
        return await asyncio.gather(*(one(c) for c in (0, 1, 2, 77)))

    results = run(loop, main())
    assert [c for c, _ in results] == [0, 1, 2, 77]
    for _, pid in results:
        assert_reaped(pid)


def test_many_children(loop):
    n = 50

    async def one(i):
        proc = await asyncio.create_subprocess_exec("/bin/sh", "-c", f"exit {i % 5}")
        return await proc.wait(), proc.pid

    async def main():
        return await asyncio.gather(*(one(i) for i in range(n)))

    results = run(loop, main(), timeout=120)
    assert [c for c, _ in results] == [i % 5 for i in range(n)]
    for _, pid in results:
        assert_reaped(pid)


def test_killed_child(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec(*SLEEPER)
        proc.kill()
        return await proc.wait(), proc.pid

    code, pid = run(loop, main())
    assert code == -signal.SIGKILL
    assert_reaped(pid)


def test_child_exiting_before_watch_is_reaped(loop):
    # /bin/true is usually gone before the loop even looks at it.
    async def main():
        procs = [await asyncio.create_subprocess_exec("true") for _ in range(10)]
        return [(await p.wait(), p.pid) for p in procs]

    for code, pid in run(loop, main()):
        assert code == 0
        assert_reaped(pid)


def test_foreign_children_are_left_alone(loop):
    # A child started with plain subprocess (not through the loop) must still
    # be ours to wait for, whatever the loop's reaper does meanwhile.
    foreign = subprocess.Popen([PY, "-c", "import sys; sys.stdin.read(); raise SystemExit(9)"],
                               stdin=subprocess.PIPE)
    quick = subprocess.Popen([PY, "-c", "raise SystemExit(8)"])
    try:
        async def main():
            # Several of the loop's own children come and go (SIGCHLD each
            # time), and the quick foreign one exits meanwhile.
            for _ in range(5):
                proc = await asyncio.create_subprocess_exec(PY, "-c", "pass")
                assert await proc.wait() == 0
        run(loop, main())
        assert quick.wait(TIMEOUT) == 8
        foreign.stdin.close()
        assert foreign.wait(TIMEOUT) == 9
    finally:
        for p in (foreign, quick):
            if p.returncode is None:
                p.kill()
                p.wait()


@pytest.mark.skip_loops("asyncio", reason="asyncio's threaded child watcher may "
                       "lose that race and report 255")
def test_popen_reaping_first_is_handled(loop):
    # Popen.poll()/wait() (Popen.send_signal polls, and anyone holding the
    # Popen object may wait) can reap the child before the loop does: the
    # status still arrives, taken from the Popen object.
    class Proto(asyncio.SubprocessProtocol):
        def __init__(self):
            self.exited = loop.create_future()

        def process_exited(self):
            self.exited.set_result(None)

    async def main():
        transport, proto = await loop.subprocess_exec(
            Proto, *SLEEPER, stdin=None, stdout=None, stderr=None)
        popen = transport.get_extra_info("subprocess")
        popen.kill()
        popen.wait()            # reaps, behind the loop's back
        await proto.exited
        transport.close()
        return transport.get_returncode(), transport.get_pid()

    code, pid = run(loop, main())
    assert code == -signal.SIGKILL
    assert_reaped(pid)


@pytest.mark.skip_loops("asyncio", reason="pyloop's close hands running children to reaper threads")
def test_closing_loop_with_running_child_leaves_no_zombie(loop_factory):
    loop = loop_factory()
    r, w = os.pipe()
    try:
        async def main():
            # The child exits when the pipe's write end closes (below, after
            # the loop is closed).
            return await asyncio.create_subprocess_exec(
                PY, "-c", f"import os; os.read({r}, 1)", pass_fds=(r,))
        proc = run(loop, main())
        pid = proc.pid
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
        assert children().get(pid) not in (None, "Z")
    finally:
        os.close(r)
        os.close(w)
    # The helper thread reaps it; wait for it by name, not by time.
    for t in threading.enumerate():
        if t.name == f"pyloop-waitpid-{pid}":
            t.join(TIMEOUT)
    assert_reaped(pid)
    # The transport was never closed (the loop went first): it says so.
    with pytest.warns(ResourceWarning, match="unclosed transport"):
        del proc
        gc.collect()


@pytest.mark.skip_loops("asyncio", reason="pyloop's SIGCHLD reaper and a user handler together")
def test_user_sigchld_handler_with_sigchld_reaper(loop, reaper):  # noqa: F811 (the fixture)
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers need the main thread")
    got = []

    async def main():
        loop.add_signal_handler(signal.SIGCHLD, got.append, "user")
        proc = await asyncio.create_subprocess_exec(PY, "-c", "pass")
        assert await proc.wait() == 0
        while not got:          # the handler runs after the reap's callback
            await asyncio.sleep(0)
        assert loop.remove_signal_handler(signal.SIGCHLD)
        # Reaping goes on without the user's handler.
        proc = await asyncio.create_subprocess_exec(PY, "-c", "raise SystemExit(4)")
        assert await proc.wait() == 4
        return proc.pid

    assert_reaped(run(loop, main()))
    assert got[0] == "user"
    assert signal.getsignal(signal.SIGCHLD) == signal.SIG_DFL


def test_loop_in_thread(loop_factory):
    result = {}

    def worker():
        loop = loop_factory()
        try:
            async def main():
                proc = await asyncio.create_subprocess_exec(
                    *CAT, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
                out, _ = await proc.communicate(b"in a thread")
                return out, proc.returncode, proc.pid
            result["value"] = run(loop, main())
        except BaseException as exc:
            result["error"] = exc
        finally:
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    t = threading.Thread(target=worker)
    t.start()
    t.join(TIMEOUT)
    assert not t.is_alive()
    if "error" in result:
        raise result["error"]
    out, code, pid = result["value"]
    assert (out, code) == (b"in a thread", 0)
    assert_reaped(pid)
