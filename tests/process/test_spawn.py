"""Starting a child without blocking the loop on its exec status (pyloop._process.spawn).

asyncio (like subprocess.Popen) reads the new child's exec-status pipe with a blocking read in
the loop thread; pyloop reads it through the reactor.  The errors of a failed exec are the same
on both loops (asyncio is the reference there); that the loop keeps running while a child has
not exec'ed yet is pyloop's alone.
"""

import asyncio
import os
import subprocess
import sys
import threading

import pytest

from ._util import PY, TIMEOUT, assert_no_new_children, assert_reaped, children, open_fds, run, spin

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes")


def pyloop_only(loop_name):
    if loop_name != "pyloop":
        pytest.skip("asyncio reads the exec status with a blocking read in the loop thread")


# ---- errors: as asyncio ------------------------------------------------------


@pytest.mark.parametrize("program", ["/nonexistent/pyloop-no-such-program", "pyloop-no-such-program"])
def test_missing_program_error(loop, program):
    before_fds, before_children = open_fds(), children()

    async def main():
        with pytest.raises(FileNotFoundError) as info:
            await asyncio.create_subprocess_exec(program, stdin=subprocess.PIPE,
                                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return info.value

    exc = run(loop, main())
    assert exc.errno == 2
    assert exc.filename == program
    assert open_fds() == before_fds
    assert_no_new_children(before_children)


def test_bad_cwd_error_names_the_cwd(loop):
    async def main():
        with pytest.raises(FileNotFoundError) as info:
            await asyncio.create_subprocess_exec(PY, "-c", "pass", cwd="/nonexistent/pyloop-dir")
        return info.value

    exc = run(loop, main())
    assert exc.filename == "/nonexistent/pyloop-dir"


def test_not_executable_error(loop, tmp_path):
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\nexit 0\n")   # no x bit
    before = open_fds()

    async def main():
        with pytest.raises(PermissionError) as info:
            await asyncio.create_subprocess_exec(str(script))
        return info.value

    exc = run(loop, main())
    assert exc.filename == str(script)
    assert open_fds() == before


def test_shell_and_executable(loop):
    async def main():
        proc = await asyncio.create_subprocess_shell(
            "echo $0", executable="/bin/sh", stdout=subprocess.PIPE)
        out, _ = await proc.communicate()
        return out

    assert run(loop, main()).strip() == b"/bin/sh"


def test_popen_errors_before_the_fork_are_popens(loop):
    async def main():
        with pytest.raises(ValueError, match="illegal environment variable name"):
            await asyncio.create_subprocess_exec(PY, "-c", "pass", env={"A=B": "1"})
        with pytest.raises(TypeError):
            await asyncio.create_subprocess_exec(PY, "-c", 42)
        with pytest.raises(ValueError, match="embedded null byte"):
            await asyncio.create_subprocess_exec(PY, "-c", "pass\0")

    before = open_fds()
    run(loop, main())
    assert open_fds() == before


# ---- the loop runs while the child has not exec'ed ----------------------------


class _HeldChild:
    """A child that stops in ``preexec_fn`` (after a plain fork, before its exec) until
    ``release()``; a timer thread releases it anyway after a while, so that a loop that
    blocks on the exec status ends the test by failing, not by hanging."""

    def __init__(self):
        self.r, self.w = os.pipe()
        self.safety = threading.Timer(15.0, self.release)
        self.safety.start()

    def preexec(self):
        os.read(self.r, 1)

    def release(self):
        try:
            os.write(self.w, b"x")
        except OSError:
            pass

    def close(self):
        self.safety.cancel()
        os.close(self.r)
        os.close(self.w)


def test_loop_runs_until_the_child_execs(loop_name, loop):
    pyloop_only(loop_name)
    held = _HeldChild()

    async def main():
        task = asyncio.ensure_future(asyncio.create_subprocess_exec(
            PY, "-c", "print('ok')", stdout=subprocess.PIPE, preexec_fn=held.preexec))
        await spin(20)
        pending = not task.done()
        held.release()
        proc = await task
        out, _ = await proc.communicate()
        return pending, out

    try:
        pending, out = run(loop, main())
    finally:
        held.close()
    assert pending, "the loop was blocked while the child had not exec'ed"
    assert out == b"ok\n"


def test_cancelled_while_the_child_has_not_execed(loop_name, loop):
    pyloop_only(loop_name)
    before_fds, before_children = open_fds(), children()
    held = _HeldChild()

    async def main():
        task = asyncio.ensure_future(asyncio.create_subprocess_exec(
            PY, "-c", "pass", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            preexec_fn=held.preexec))
        await spin(20)
        assert not task.done()
        pid = next(iter(set(children()) - set(before_children)))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return pid

    try:
        pid = run(loop, main())
    finally:
        held.close()
    # Killed and reaped before the coroutine raised; its pipes and the status pipe closed.
    assert_reaped(pid)
    assert_no_new_children(before_children)
    assert open_fds() == before_fds


def test_exec_failure_after_a_plain_fork(loop):
    """preexec_fn forces a plain fork: the exec status then comes through the reactor."""
    before = open_fds()

    async def main():
        with pytest.raises(FileNotFoundError):
            await asyncio.create_subprocess_exec("/nonexistent/pyloop-prog", preexec_fn=lambda: None)
        proc = await asyncio.create_subprocess_exec(
            PY, "-c", "print(1)", stdout=subprocess.PIPE, preexec_fn=lambda: None)
        return (await proc.communicate())[0]

    assert run(loop, main(), TIMEOUT) == b"1\n"
    assert open_fds() == before


# ---- the Popen pyloop uses ---------------------------------------------------


def test_transport_popen_is_a_subprocess_popen(loop_name, loop):
    async def main():
        transport, _ = await loop.subprocess_exec(asyncio.SubprocessProtocol, PY, "-c", "pass")
        popen = transport.get_extra_info("subprocess")
        await transport._wait()
        transport.close()
        return popen

    popen = run(loop, main())
    assert isinstance(popen, subprocess.Popen)
    assert popen.returncode == 0


def test_a_replaced_subprocess_popen_is_honoured(loop_name, loop, monkeypatch):
    pyloop_only(loop_name)
    made = []

    class Spy(subprocess.Popen):
        def __init__(self, *args, **kwargs):
            made.append(args)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", Spy)

    async def main():
        proc = await asyncio.create_subprocess_exec(PY, "-c", "pass")
        return await proc.wait()

    assert run(loop, main()) == 0
    assert len(made) == 1


def test_exec_error_parsing():
    pytest.importorskip("pyloop._process._syscalls", reason="pyloop is not built")
    from pyloop._process.spawn import exec_error

    exc = exec_error(b"OSError:2:", "prog", "/cwd")
    assert type(exc) is FileNotFoundError and exc.filename == "prog" and exc.errno == 2
    exc = exec_error(b"OSError:2:noexec:chdir", "prog", "/cwd")      # 3.13's child
    assert type(exc) is FileNotFoundError and exc.filename == "/cwd"
    exc = exec_error(b"OSError:2:noexec", "prog", "/cwd")
    # Up to 3.12 only chdir reports "noexec"; 3.13 says "noexec:chdir" for it.
    assert exc.filename == ("/cwd" if sys.version_info < (3, 13) else None)
    exc = exec_error(b"SubprocessError:0:Exception occurred in preexec_fn.", "prog", None)
    assert type(exc) is subprocess.SubprocessError
    assert str(exc) == "Exception occurred in preexec_fn."
    exc = exec_error(b"garbage", "prog", None)
    assert type(exc) is subprocess.SubprocessError and "Bad exception data" in str(exc)
    exc = exec_error(b"NoSuchName:0:text", "prog", None)
    assert type(exc) is subprocess.SubprocessError
    exc = exec_error(b"OSError:zz:text", "prog", None)
    assert type(exc) is subprocess.SubprocessError


def test_preexec_fn_failure(loop):
    def fail():
        raise RuntimeError("no")

    async def main():
        with pytest.raises(subprocess.SubprocessError, match="preexec_fn"):
            await asyncio.create_subprocess_exec(PY, "-c", "pass", preexec_fn=fail)

    before = open_fds()
    run(loop, main())
    assert open_fds() == before
