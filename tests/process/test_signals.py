"""loop.add_signal_handler / remove_signal_handler, and Ctrl-C under
pyloop.run / asyncio.run, on asyncio (the reference) and pyloop.

Signals are sent with os.kill to this process (or pthread_kill to a helper
thread); tests wait for the handler's future, never for time to pass.
"""

import asyncio
import contextvars
import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

from ._util import PY, TIMEOUT, run, spin

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
    pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                       reason="signal handlers need the main thread"),
]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(autouse=True)
def _restore_signals():
    """Whatever a test does, SIGUSR1/2, SIGINT, SIGHUP and the wakeup fd are
    put back afterwards (and must be back already: checked where it matters)."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGUSR1, signal.SIGUSR2,
                                               signal.SIGINT, signal.SIGHUP)}
    wakeup = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(wakeup)
    yield
    for s, h in saved.items():
        if h is not None:
            signal.signal(s, h)
    signal.set_wakeup_fd(wakeup)


def test_handler_runs_with_args(loop):
    async def main():
        fut = loop.create_future()
        loop.add_signal_handler(signal.SIGUSR1, lambda *a: fut.set_result(a), 1, "two")
        os.kill(os.getpid(), signal.SIGUSR1)
        return await fut

    assert run(loop, main()) == (1, "two")
    assert loop.remove_signal_handler(signal.SIGUSR1)


def test_handler_runs_every_time(loop):
    async def main():
        seen = []
        for i in range(5):
            fut = loop.create_future()
            loop.add_signal_handler(signal.SIGUSR1, fut.set_result, i)
            os.kill(os.getpid(), signal.SIGUSR1)
            seen.append(await fut)
        return seen

    assert run(loop, main()) == [0, 1, 2, 3, 4]
    assert loop.remove_signal_handler(signal.SIGUSR1)


def test_replace_handler(loop):
    calls = []

    async def main():
        fut = loop.create_future()
        loop.add_signal_handler(signal.SIGUSR1, calls.append, "first")
        loop.add_signal_handler(signal.SIGUSR1, lambda: (calls.append("second"), fut.set_result(None)))
        os.kill(os.getpid(), signal.SIGUSR1)
        await fut
        await spin()

    run(loop, main())
    assert calls == ["second"]
    assert loop.remove_signal_handler(signal.SIGUSR1)
    assert not loop.remove_signal_handler(signal.SIGUSR1)


def test_two_signals(loop):
    async def main():
        f1, f2 = loop.create_future(), loop.create_future()
        loop.add_signal_handler(signal.SIGUSR1, f1.set_result, "usr1")
        loop.add_signal_handler(signal.SIGUSR2, f2.set_result, "usr2")
        os.kill(os.getpid(), signal.SIGUSR2)
        os.kill(os.getpid(), signal.SIGUSR1)
        return await f1, await f2

    assert run(loop, main()) == ("usr1", "usr2")
    assert loop.remove_signal_handler(signal.SIGUSR1)
    assert loop.remove_signal_handler(signal.SIGUSR2)


def test_remove_restores_default_and_wakeup_fd(loop):
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    wakeup_before = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(wakeup_before)
    loop.add_signal_handler(signal.SIGUSR1, lambda: None)
    assert signal.getsignal(signal.SIGUSR1) not in (signal.SIG_DFL, signal.SIG_IGN, None)
    assert loop.remove_signal_handler(signal.SIGUSR1)
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    if wakeup_before == -1:
        assert signal.set_wakeup_fd(-1) == -1


def test_sigint_remove_restores_default_int_handler(loop):
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT is not handled by Python's default handler here")

    async def main():
        fut = loop.create_future()
        loop.add_signal_handler(signal.SIGINT, fut.set_result, "int")
        os.kill(os.getpid(), signal.SIGINT)      # no KeyboardInterrupt: ours
        return await fut

    assert run(loop, main()) == "int"
    assert loop.remove_signal_handler(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert not loop.remove_signal_handler(signal.SIGINT)


def test_close_removes_handlers(loop_factory):
    lp = loop_factory()
    lp.add_signal_handler(signal.SIGUSR1, lambda: None)
    lp.add_signal_handler(signal.SIGUSR2, lambda: None)
    lp.close()
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    assert signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL
    assert signal.set_wakeup_fd(-1) == -1


def test_handler_exception_goes_to_exception_handler(loop):
    contexts = []

    def boom():
        raise ZeroDivisionError("in a signal handler")

    async def main():
        fut = loop.create_future()
        loop.set_exception_handler(lambda lp, ctx: (contexts.append(ctx), fut.set_result(None)))
        loop.add_signal_handler(signal.SIGUSR1, boom)
        os.kill(os.getpid(), signal.SIGUSR1)
        await fut

    run(loop, main())
    assert isinstance(contexts[0]["exception"], ZeroDivisionError)
    assert loop.remove_signal_handler(signal.SIGUSR1)


def test_handler_runs_in_context_of_add(loop):
    var = contextvars.ContextVar("var", default="unset")

    async def main():
        fut = loop.create_future()
        var.set("at add time")
        loop.add_signal_handler(signal.SIGUSR1, lambda: fut.set_result(var.get()))
        var.set("later")
        os.kill(os.getpid(), signal.SIGUSR1)
        return await fut

    assert run(loop, main()) == "at add time"
    assert loop.remove_signal_handler(signal.SIGUSR1)


def test_signal_delivered_to_other_thread_wakes_loop(loop):
    # The kernel may deliver a process signal to any thread: the loop, blocked
    # in its reactor with nothing else to do, must still wake up.
    ready = threading.Event()
    leave = threading.Event()
    idents = []

    def helper():
        idents.append(threading.get_ident())
        ready.set()
        leave.wait(TIMEOUT)

    t = threading.Thread(target=helper)
    t.start()
    try:
        assert ready.wait(TIMEOUT)

        async def main():
            fut = loop.create_future()
            loop.add_signal_handler(signal.SIGUSR1, fut.set_result, "woken")
            loop.call_soon(signal.pthread_kill, idents[0], signal.SIGUSR1)
            return await fut

        assert run(loop, main()) == "woken"
        assert loop.remove_signal_handler(signal.SIGUSR1)
    finally:
        leave.set()
        t.join(TIMEOUT)


# ---- validation -------------------------------------------------------------


def test_validation(loop):
    async def coro_func():
        pass

    coro = coro_func()
    try:
        with pytest.raises(TypeError):
            loop.add_signal_handler(signal.SIGUSR1, coro_func)
        with pytest.raises(TypeError):
            loop.add_signal_handler(signal.SIGUSR1, coro)
    finally:
        coro.close()
    with pytest.raises(TypeError):
        loop.add_signal_handler("boom", lambda: None)
    with pytest.raises(TypeError):
        loop.remove_signal_handler("boom")
    for bad in (0, -1, signal.NSIG + 1):
        with pytest.raises(ValueError):
            loop.add_signal_handler(bad, lambda: None)
        with pytest.raises(ValueError):
            loop.remove_signal_handler(bad)
    for uncatchable in (signal.SIGKILL, signal.SIGSTOP):
        with pytest.raises(RuntimeError):
            loop.add_signal_handler(uncatchable, lambda: None)
        assert not loop.remove_signal_handler(uncatchable)
    assert not loop.remove_signal_handler(signal.SIGUSR1)
    # A failed add leaves nothing behind.
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_add_on_closed_loop(loop_factory):
    lp = loop_factory()
    lp.close()
    with pytest.raises(RuntimeError):
        lp.add_signal_handler(signal.SIGUSR1, lambda: None)
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_add_outside_main_thread(loop_factory):
    errors = []

    def worker():
        lp = loop_factory()
        try:
            lp.add_signal_handler(signal.SIGUSR1, lambda: None)
        except BaseException as exc:
            errors.append(exc)
        finally:
            lp.close()

    t = threading.Thread(target=worker)
    t.start()
    t.join(TIMEOUT)
    assert len(errors) == 1 and isinstance(errors[0], RuntimeError), errors
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


# ---- pyloop's stricter / kinder behaviour ----------------------------------


@pytest.mark.skip_loops("asyncio", reason="asyncio puts SIG_DFL back over SIG_IGN")
def test_ignored_signal_stays_ignored(loop):
    # A program started under nohup (SIGHUP ignored) must not become killable
    # by SIGHUP because it handled the signal for a while.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    loop.add_signal_handler(signal.SIGHUP, lambda: None)
    assert loop.remove_signal_handler(signal.SIGHUP)
    assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    loop.add_signal_handler(signal.SIGHUP, lambda: None)
    loop.close()
    assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN


def test_python_handler_before_is_not_restored(loop):
    # As asyncio: SIG_DFL comes back, not a handler whose owner may be gone.
    def previous(signum, frame):
        pass

    signal.signal(signal.SIGUSR1, previous)
    loop.add_signal_handler(signal.SIGUSR1, lambda: None)
    assert loop.remove_signal_handler(signal.SIGUSR1)
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


@pytest.mark.skip_loops("asyncio", reason="asyncio clears the wakeup fd instead of restoring it")
def test_previous_wakeup_fd_restored(loop):
    r, w = os.pipe()
    os.set_blocking(w, False)
    try:
        signal.set_wakeup_fd(w)
        loop.add_signal_handler(signal.SIGUSR1, lambda: None)
        assert signal.set_wakeup_fd(signal.set_wakeup_fd(-1)) != w      # ours now
        assert loop.remove_signal_handler(signal.SIGUSR1)
        assert signal.set_wakeup_fd(-1) == w
    finally:
        signal.set_wakeup_fd(-1)
        os.close(r)
        os.close(w)


@pytest.mark.skip_loops("asyncio", reason="asyncio only fails once the signal arrives")
def test_non_callable_refused(loop):
    with pytest.raises(TypeError):
        loop.add_signal_handler(signal.SIGUSR1, "not callable")
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_sigint_handler_under_runner_leaves_default_handler(loop_factory):
    # asyncio.run(main()) whose main adds a SIGINT handler and never removes
    # it: afterwards Python's default handler is back, so that the next Runner
    # installs its own again.
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("asyncio.Runner only installs its SIGINT handler over the default one")

    async def main():
        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, lambda: None)

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main())
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# ---- Ctrl-C in a program run by pyloop.run / asyncio.run -------------------

# The program under test.
SIGINT_PROGRAM = textwrap.dedent("""
    import asyncio, os, signal, sys
    impl, mode = sys.argv[1], sys.argv[2]
    if impl == "pyloop":
        import pyloop
        run = pyloop.run
    else:
        run = asyncio.run

    async def main():
        if mode == "handler":
            # The graceful-shutdown pattern: SIGINT cancels the main task.
            task = asyncio.current_task()
            asyncio.get_running_loop().add_signal_handler(signal.SIGINT, task.cancel)
        print("ready", flush=True)
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            print("cancelled", flush=True)
            if mode == "swallow":
                return "swallowed"
            raise

    try:
        print("result", run(main()), flush=True)
    except asyncio.CancelledError:
        print("CancelledError", flush=True)
        sys.exit(3)
""")


@pytest.mark.parametrize("mode,expect_lines,expect_code", [
    ("raise", [b"ready", b"cancelled"], -signal.SIGINT),     # KeyboardInterrupt
    ("swallow", [b"ready", b"cancelled", b"result swallowed"], 0),
    ("handler", [b"ready", b"cancelled", b"CancelledError"], 3),
])
def test_ctrl_c_cancels_main_task(loop_name, mode, expect_lines, expect_code):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [REPO] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    proc = subprocess.Popen([PY, "-c", SIGINT_PROGRAM, loop_name, mode],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        first = proc.stdout.readline()
        assert first == b"ready\n", (first, proc.stderr.read() if proc.poll() is not None else b"")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.returncode is None:
            proc.kill()
            proc.wait()
    lines = [first.strip()] + out.splitlines()
    assert lines == expect_lines, err.decode(errors="replace")
    assert proc.returncode == expect_code, err.decode(errors="replace")
    if mode == "raise":
        assert b"KeyboardInterrupt" in err


@pytest.mark.skip_loops("asyncio", reason="asyncio (3.11) leaves the parent's wakeup fd "
                                          "and handlers in a forked child")
def test_forked_child_does_not_signal_the_parent_loop(loop):
    # After os.fork() the child's signals must not reach the parent's loop
    # through the shared socket pair, and the child gets default dispositions.
    calls = []
    loop.add_signal_handler(signal.SIGUSR1, calls.append, "parent")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:    # the child: report, signal itself, exit without cleanup
        try:
            wake = signal.set_wakeup_fd(-1)
            report = f"{wake} {signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL}"
            signal.signal(signal.SIGUSR1, lambda *a: None)
            os.kill(os.getpid(), signal.SIGUSR1)
            os.write(w, report.encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        report = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert report == b"-1 True"

    async def main():
        # A signal of our own arrives; the child's never did.
        fut = loop.create_future()
        loop.add_signal_handler(signal.SIGUSR2, fut.set_result, None)
        os.kill(os.getpid(), signal.SIGUSR2)
        await fut
        await spin()

    run(loop, main())
    assert calls == []
    assert loop.remove_signal_handler(signal.SIGUSR1)
    assert loop.remove_signal_handler(signal.SIGUSR2)
