"""loop.subprocess_exec / subprocess_shell and asyncio.create_subprocess_*,
on asyncio (the reference) and pyloop.

Determinism: no sleeps.  Tests wait for protocol callbacks, process exit or
pipe output, bounded by generous timeouts; "nothing more happened" is only
asserted after events that must precede it.
"""

import asyncio
import gc
import os
import signal
import subprocess
import sys
import threading
import warnings

import pytest

from ._util import (
    BLOCKED,
    CAT,
    PY,
    SLEEPER,
    TIMEOUT,
    assert_no_new_children,
    assert_reaped,
    children,
    open_fds,
    run,
    spin,
)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes")

BIG = 4 * 1024 * 1024 + 123     # far more than a pipe buffer (64 KiB)


class Recorder(asyncio.SubprocessProtocol):
    """Records every callback in order."""

    def __init__(self, loop):
        self.events = []
        self.data = {1: bytearray(), 2: bytearray()}
        self.connected = loop.create_future()
        self.exited = loop.create_future()
        self.done = loop.create_future()

    def connection_made(self, transport):
        self.events.append("connection_made")
        self.connected.set_result(transport)

    def pipe_data_received(self, fd, data):
        self.events.append(("data", fd))
        self.data[fd] += data

    def pipe_connection_lost(self, fd, exc):
        self.events.append(("pipe_lost", fd, exc))

    def process_exited(self):
        self.events.append("process_exited")
        self.exited.set_result(None)

    def connection_lost(self, exc):
        self.events.append(("connection_lost", exc))
        self.done.set_result(exc)


def check_order(events, pipes):
    """What asyncio guarantees about the callback order."""
    assert events[0] == "connection_made"
    assert events[-1] == ("connection_lost", None)
    assert events.count("process_exited") == 1
    lost = [e for e in events if isinstance(e, tuple) and e[0] == "pipe_lost"]
    assert sorted(e[1] for e in lost) == sorted(pipes)
    for fd in pipes:
        i_lost = events.index(next(e for e in lost if e[1] == fd))
        assert ("data", fd) not in events[i_lost:], "data after its pipe was lost"


# ---- exec / shell, the protocol API ---------------------------------------


def test_exec_echo_protocol_order(loop):
    async def main():
        transport, proto = await loop.subprocess_exec(
            lambda: Recorder(loop), PY, "-c",
            "import sys; print('out'); print('err', file=sys.stderr)")
        assert proto.connected.done(), "connection_made ran before the coroutine returned"
        assert transport.get_pid() > 0
        await proto.done
        return transport, proto

    transport, proto = run(loop, main())
    assert bytes(proto.data[1]) == b"out\n"
    assert bytes(proto.data[2]) == b"err\n"
    assert transport.get_returncode() == 0
    check_order(proto.events, [0, 1, 2])
    assert_reaped(transport.get_pid())
    transport.close()
    assert transport.is_closing()


def test_shell_echo_and_exit_code(loop):
    async def main():
        transport, proto = await loop.subprocess_shell(
            lambda: Recorder(loop), "echo Python; exit 7", stdin=None)
        await proto.done
        return transport, proto

    transport, proto = run(loop, main())
    assert bytes(proto.data[1]) == b"Python\n"
    assert transport.get_returncode() == 7
    assert transport.get_pipe_transport(0) is None
    check_order(proto.events, [1, 2])
    transport.close()


def test_shell_bytes_command(loop):
    async def main():
        proc = await asyncio.create_subprocess_shell(b"echo bytes", stdout=subprocess.PIPE)
        out, _ = await proc.communicate()
        return out, proc.returncode

    assert run(loop, main()) == (b"bytes\n", 0)


def test_no_pipes_connection_lost_after_exit(loop):
    async def main():
        transport, proto = await loop.subprocess_exec(
            lambda: Recorder(loop), PY, "-c", "raise SystemExit(3)",
            stdin=None, stdout=None, stderr=None)
        await proto.done
        return transport, proto

    transport, proto = run(loop, main())
    assert proto.events == ["connection_made", "process_exited", ("connection_lost", None)]
    assert transport.get_returncode() == 3
    for fd in (0, 1, 2):
        assert transport.get_pipe_transport(fd) is None
    transport.close()


def test_get_extra_info_subprocess(loop):
    async def main():
        transport, proto = await loop.subprocess_exec(
            lambda: Recorder(loop), PY, "-c", "pass", stdin=None, stdout=None, stderr=None)
        popen = transport.get_extra_info("subprocess")
        await proto.done
        return transport, popen

    transport, popen = run(loop, main())
    assert isinstance(popen, subprocess.Popen)
    assert popen.pid == transport.get_pid()
    assert popen.returncode == 0
    transport.close()


def test_interactive_stdin_stdout(loop):
    code = "import sys\nfor line in sys.stdin:\n    print(line.strip().upper(), flush=True)"

    async def main():
        proc = await asyncio.create_subprocess_exec(
            PY, "-c", code, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        answers = []
        for word in (b"one", b"two", b"three"):
            proc.stdin.write(word + b"\n")
            await proc.stdin.drain()
            answers.append(await proc.stdout.readline())
        proc.stdin.close()
        rest = await proc.stdout.read()
        return answers, rest, await proc.wait()

    assert run(loop, main()) == ([b"ONE\n", b"TWO\n", b"THREE\n"], b"", 0)


# ---- asyncio.create_subprocess_* -------------------------------------------


def test_communicate_large(loop):
    payload = os.urandom(BIG)

    async def main():
        proc = await asyncio.create_subprocess_exec(
            *CAT, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        out, err = await proc.communicate(payload)
        return out, err, proc.returncode

    out, err, code = run(loop, main())
    assert out == payload
    assert err is None
    assert code == 0


def test_large_output_after_exit_is_not_lost(loop):
    # The child writes far more than a pipe holds and exits; every byte must
    # arrive even though the exit may be noticed first.
    code = f"import sys; sys.stdout.buffer.write(b'y' * {BIG})"

    async def main():
        proc = await asyncio.create_subprocess_exec(PY, "-c", code, stdout=subprocess.PIPE)
        out = await proc.stdout.read()
        return len(out), await proc.wait()

    assert run(loop, main()) == (BIG, 0)


def test_wait_returncode(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec(PY, "-c", "raise SystemExit(42)")
        assert proc.returncode is None or proc.returncode == 42
        code = await proc.wait()
        assert await proc.wait() == 42      # again: at once
        return code, proc.returncode

    assert run(loop, main()) == (42, 42)


@pytest.mark.parametrize("method,signum", [
    ("kill", signal.SIGKILL),
    ("terminate", signal.SIGTERM),
    ("send_signal", signal.SIGUSR1),
])
def test_kill_terminate_send_signal(loop, method, signum):
    async def main():
        # The child says when it runs, so the signal meets Python's default
        # disposition, not a half-started interpreter.
        proc = await asyncio.create_subprocess_exec(
            PY, "-c", "import time; print('ready', flush=True); time.sleep(3600)",
            stdout=subprocess.PIPE)
        assert await proc.stdout.readline() == b"ready\n"
        if method == "send_signal":
            proc.send_signal(signum)
        else:
            getattr(proc, method)()
        return await proc.wait()

    assert run(loop, main()) == -signum


def test_process_lookup_error_after_exit(loop):
    async def main():
        transport, proto = await loop.subprocess_exec(
            lambda: Recorder(loop), PY, "-c", "pass", stdin=None, stdout=None, stderr=None)
        await proto.done
        return transport

    transport = run(loop, main())
    for call in (transport.kill, transport.terminate,
                 lambda: transport.send_signal(signal.SIGTERM)):
        with pytest.raises(ProcessLookupError):
            call()
    transport.close()


def test_process_api_lookup_error_after_wait(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec(PY, "-c", "pass")
        await proc.wait()
        await spin()       # connection_lost is scheduled once the exit is known
        with pytest.raises(ProcessLookupError):
            proc.kill()
        with pytest.raises(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        return proc.pid

    assert_reaped(run(loop, main()))


def test_signal_after_exit_before_pipes_close_is_harmless(loop):
    # The child exits while its stdout is still open in a grandchild: the
    # exit is known, the transport is not finished, signalling does nothing.
    code = ("import subprocess, sys; "
            "subprocess.Popen([sys.executable, '-c', 'import sys; sys.stdin.read()'])")

    async def main():
        transport, proto = await loop.subprocess_exec(
            lambda: Recorder(loop), PY, "-c", code, stdin=subprocess.PIPE)
        await proto.exited
        transport.kill()                      # no error: the exit is known
        transport.send_signal(signal.SIGTERM)
        assert not proto.done.done()
        # Closing our stdin pipe does not end the grandchild (it has its own
        # copy of the pipe): close everything and let it see EOF.
        transport.close()
        await proto.done
        return transport

    transport = run(loop, main())
    assert transport.get_returncode() == 0


def test_missing_program(loop):
    before = open_fds()

    async def main():
        with pytest.raises(FileNotFoundError):
            await asyncio.create_subprocess_exec(
                "/nonexistent/program-pyloop", stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        with pytest.raises(FileNotFoundError):
            await loop.subprocess_exec(asyncio.SubprocessProtocol, "no-such-program-pyloop")

    run(loop, main())
    assert open_fds() == before


def test_bad_cwd(loop):
    before = open_fds()

    async def main():
        with pytest.raises(FileNotFoundError):
            await asyncio.create_subprocess_exec(
                PY, "-c", "pass", cwd="/nonexistent/dir-pyloop",
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        with pytest.raises(NotADirectoryError):
            await asyncio.create_subprocess_exec(PY, "-c", "pass", cwd=PY)

    run(loop, main())
    assert open_fds() == before


def test_close_kills_running_child(loop):
    async def main():
        transport, proto = await loop.subprocess_exec(lambda: Recorder(loop), *SLEEPER)
        assert transport.get_returncode() is None
        transport.close()
        assert transport.is_closing()
        await proto.done
        return transport, proto

    transport, proto = run(loop, main())
    assert transport.get_returncode() == -signal.SIGKILL
    check_order(proto.events, [0, 1, 2])
    assert_reaped(transport.get_pid())


def test_close_after_exit_does_not_kill(loop):
    async def main():
        transport, proto = await loop.subprocess_exec(
            lambda: Recorder(loop), PY, "-c", "raise SystemExit(5)",
            stdin=None, stdout=None, stderr=None)
        await proto.exited
        transport.close()
        await proto.done
        return transport

    assert run(loop, main()).get_returncode() == 5


def test_closing_stdin_ends_reader(loop):
    async def main():
        transport, proto = await loop.subprocess_exec(lambda: Recorder(loop), *BLOCKED)
        transport.get_pipe_transport(0).close()
        await proto.done
        return transport, proto

    transport, proto = run(loop, main())
    assert transport.get_returncode() == 0
    check_order(proto.events, [0, 1, 2])
    transport.close()


def test_unclosed_transport_warns(loop):
    async def main():
        transport, proto = await loop.subprocess_exec(
            lambda: Recorder(loop), PY, "-c", "pass", stdin=None, stdout=None, stderr=None)
        await proto.done
        return transport

    transport = run(loop, main())
    # asyncio's threaded child watcher holds the transport's exit callback in its
    # thread's frame until that thread ends, which may be after proto.done.
    for thread in threading.enumerate():
        if thread.name.startswith("asyncio-waitpid-"):
            thread.join(TIMEOUT)
    with pytest.warns(ResourceWarning, match="unclosed"):
        del transport
        gc.collect()


def test_devnull(loop):
    code = "import sys; data = sys.stdin.read(); print(len(data)); print('e', file=sys.stderr)"

    async def main():
        proc = await asyncio.create_subprocess_exec(
            PY, "-c", code, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL)
        assert proc.stdin is None and proc.stderr is None
        out, err = await proc.communicate()
        return out, err, proc.returncode

    assert run(loop, main()) == (b"0\n", None, 0)


def test_stderr_to_stdout(loop):
    code = "import sys; sys.stdout.write('OUT'); sys.stdout.flush(); sys.stderr.write('ERR')"

    async def main():
        transport, proto = await loop.subprocess_exec(
            lambda: Recorder(loop), PY, "-c", code, stdin=None,
            stderr=subprocess.STDOUT)
        assert transport.get_pipe_transport(2) is None
        await proto.done
        return transport, proto

    transport, proto = run(loop, main())
    assert bytes(proto.data[1]) == b"OUTERR"
    assert bytes(proto.data[2]) == b""
    transport.close()


def test_file_objects_and_fds(loop, tmp_path):
    src = tmp_path / "in.txt"
    src.write_bytes(b"from a file\n")

    async def main():
        with open(src, "rb") as fin, open(tmp_path / "out.txt", "wb") as fout:
            proc = await asyncio.create_subprocess_exec(*CAT, stdin=fin, stdout=fout.fileno())
            return await proc.wait()

    assert run(loop, main()) == 0
    assert (tmp_path / "out.txt").read_bytes() == b"from a file\n"


def test_pass_fds(loop):
    r, w = os.pipe()
    try:
        code = f"import os; os.write({w}, b'through the passed fd')"

        async def main():
            proc = await asyncio.create_subprocess_exec(PY, "-c", code, pass_fds=(w,))
            return await proc.wait()

        assert run(loop, main()) == 0
        os.close(w)
        w = -1
        assert os.read(r, 100) == b"through the passed fd"
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


def test_fds_not_passed_by_default(loop):
    r, w = os.pipe()
    try:
        code = (f"import os\ntry:\n    os.fstat({w})\nexcept OSError:\n    print('closed')\n"
                f"else:\n    print('open')")

        async def main():
            proc = await asyncio.create_subprocess_exec(PY, "-c", code, stdout=subprocess.PIPE)
            out, _ = await proc.communicate()
            return out

        assert run(loop, main()) == b"closed\n"
    finally:
        os.close(r)
        os.close(w)


def test_start_new_session(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            PY, "-c", "import os; print(os.getsid(0) == os.getpid())",
            stdout=subprocess.PIPE, start_new_session=True)
        out, _ = await proc.communicate()
        return out, proc.returncode

    assert run(loop, main()) == (b"True\n", 0)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="process_group is new in 3.11")
def test_process_group(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            PY, "-c", "import os; print(os.getpgid(0) == os.getpid())",
            stdout=subprocess.PIPE, process_group=0)
        out, _ = await proc.communicate()
        return out

    assert run(loop, main()) == b"True\n"


def test_preexec_fn_env_cwd(loop, tmp_path):
    async def main():
        with warnings.catch_warnings():
            # preexec_fn in a process with threads (pytest-timeout's) warns on
            # some versions; what matters here is that it runs.
            warnings.simplefilter("ignore", DeprecationWarning)
            proc = await asyncio.create_subprocess_exec(
                PY, "-c", "import os; print(os.environ['PYLOOP_X'], os.getcwd(), os.umask(0))",
                stdout=subprocess.PIPE, env={**os.environ, "PYLOOP_X": "x"},
                cwd=str(tmp_path), preexec_fn=lambda: os.umask(0o027))
        out, _ = await proc.communicate()
        return out

    x, cwd, umask = run(loop, main()).split()
    assert x == b"x"
    assert os.path.samefile(cwd, tmp_path)
    assert int(umask) == 0o027


def test_exec_with_path_like(loop):
    class FakePath:
        def __init__(self, path):
            self.path = path

        def __fspath__(self):
            return self.path

    async def main():
        proc = await asyncio.create_subprocess_exec(FakePath(PY), "-c", "pass")
        return await proc.wait()

    assert run(loop, main()) == 0


# ---- argument validation ---------------------------------------------------


@pytest.mark.parametrize("kwargs", [
    {"universal_newlines": True}, {"shell": True}, {"bufsize": 4096},
    {"text": True}, {"encoding": "utf-8"}, {"errors": "strict"},
])
def test_exec_invalid_args(loop, kwargs):
    before = children()

    async def main():
        with pytest.raises(ValueError):
            await loop.subprocess_exec(asyncio.SubprocessProtocol, PY, "-c", "pass", **kwargs)

    run(loop, main())
    assert_no_new_children(before)


@pytest.mark.parametrize("cmd,kwargs", [
    (["ls", "-l"], {}), (123, {}), ("true", {"universal_newlines": True}),
    ("true", {"shell": False}), ("true", {"bufsize": 4096}), ("true", {"text": True}),
    ("true", {"encoding": "utf-8"}), ("true", {"errors": "strict"}),
])
def test_shell_invalid_args(loop, cmd, kwargs):
    async def main():
        # The running Python's asyncio raises ValueError for all of these
        # (a non-string command included).
        with pytest.raises(ValueError):
            await loop.subprocess_shell(asyncio.SubprocessProtocol, cmd, **kwargs)

    run(loop, main())


def test_create_subprocess_text_mode_fails(loop):
    async def main():
        for kwargs in ({"text": True}, {"encoding": "utf-8"}, {"errors": "strict"}):
            with pytest.raises(ValueError):
                await asyncio.create_subprocess_exec(PY, "-c", "pass", **kwargs)
            with pytest.raises(ValueError):
                await asyncio.create_subprocess_shell("true", **kwargs)

    run(loop, main())


# ---- cancellation and many children -----------------------------------------


def test_cancel_creation_reaps_child(loop):
    before = children()

    async def main():
        task = asyncio.ensure_future(
            loop.subprocess_exec(asyncio.SubprocessProtocol, *SLEEPER))
        loop.call_soon(task.cancel)
        with pytest.raises(asyncio.CancelledError):
            await task

    run(loop, main())
    # The coroutine waits for the killed child to be reaped before it raises.
    assert_no_new_children(before)


def test_cancel_wait_then_kill(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec(*SLEEPER)
        task = asyncio.ensure_future(proc.wait())
        loop.call_soon(task.cancel)
        with pytest.raises(asyncio.CancelledError):
            await task
        proc.kill()
        return await proc.wait(), proc.pid

    code, pid = run(loop, main())
    assert code == -signal.SIGKILL
    assert_reaped(pid)


def test_many_concurrent_children(loop):
    n = 50

    async def one(i):
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh", "-c", f"echo {i}; exit {i % 7}", stdout=subprocess.PIPE)
        out, _ = await proc.communicate()
        return int(out), proc.returncode, proc.pid

    async def main():
        return await asyncio.gather(*(one(i) for i in range(n)))

    results = run(loop, main(), timeout=120)
    assert [(i, c) for i, c, _ in results] == [(i, i % 7) for i in range(n)]
    for _, _, pid in results:
        assert_reaped(pid)


def test_stdin_broken_pipe(loop):
    # The child exits without reading: drain() fails with BrokenPipeError or
    # ConnectionResetError, and wait() still returns.
    r, w = os.pipe()
    try:
        code = f"import os; os.read({r}, 1)"

        async def main():
            proc = await asyncio.create_subprocess_exec(
                PY, "-c", code, stdin=subprocess.PIPE, pass_fds=(r,))
            proc.stdin.write(b"x" * BIG)
            os.write(w, b"go")
            with pytest.raises((BrokenPipeError, ConnectionResetError)):
                await proc.stdin.drain()
            return await proc.wait()

        loop.set_exception_handler(lambda loop, ctx: None)
        assert run(loop, main()) == 0
    finally:
        os.close(r)
        os.close(w)


def test_subprocess_from_loop_in_other_thread(loop_factory):
    import threading

    result = {}

    def worker():
        loop = loop_factory()
        try:
            async def main():
                proc = await asyncio.create_subprocess_exec(
                    *CAT, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
                out, _ = await proc.communicate(b"thread")
                return out, proc.returncode, proc.pid
            result["value"] = run(loop, main())
        except BaseException as exc:    # reported by the main thread
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
    assert (out, code) == (b"thread", 0)
    assert_reaped(pid)
