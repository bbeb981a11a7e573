"""Messages for the common mistakes of issue #14 name what was called and how to fix it.

Each test makes the mistake the way a user would and checks that the error (or, for
``install()`` inside a running loop, the warning) names the call and the fix.
"""

from __future__ import annotations

import asyncio
import gc
import os
import re
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import pytest

import pyloop
from pyloop import fs, net, task, time

from ._util import run

ROOT = str(Path(__file__).resolve().parents[2])


async def _answer():
    return 42


# ---- pyloop.task outside a loop --------------------------------------------------------


def test_spawn_outside_a_loop_names_spawn_and_the_fix():
    coro = _answer()
    with pytest.raises(RuntimeError) as info:
        task.spawn(coro)
    message = str(info.value)
    assert "pyloop.task.spawn() needs a running event loop" in message
    assert "pyloop.run(main())" in message and "asyncio.run(main())" in message
    # The rejected coroutine was closed: no "never awaited" warning follows.
    assert coro.cr_frame is None


def test_spawn_blocking_and_joinset_spawn_outside_a_loop_name_themselves():
    with pytest.raises(RuntimeError, match=r"pyloop\.task\.spawn_blocking\(\) needs a running event loop"):
        task.spawn_blocking(sum, [1, 2])
    with pytest.raises(RuntimeError, match=r"JoinSet\.spawn\(\) needs a running event loop"):
        task.JoinSet().spawn(_answer())


def test_spawn_of_a_non_awaitable_names_pyloop_task_spawn():
    async def main():
        with pytest.raises(TypeError, match=r"pyloop\.task\.spawn\(\) needs an awaitable"):
            task.spawn(_answer)              # the function, not a call of it
    pyloop.run(main())


# ---- pyloop.fs.open() without await -----------------------------------------------------


def test_fs_open_without_await_says_await_or_async_with(tmp_path):
    path = tmp_path / "data.txt"
    path.write_text("hello\n")

    async def main():
        opening = fs.open(path)
        with pytest.raises(AttributeError) as info:
            opening.read()
        message = str(info.value)
        assert "pyloop.fs.open() returns an awaitable, not the file" in message
        assert "await pyloop.fs.open(path)" in message
        assert "async with pyloop.fs.open(path) as f:" in message
        assert "'read'" in message
        with pytest.raises(TypeError, match=r"`async with`, not `with`"):
            with fs.open(path):
                pass
        with pytest.raises(TypeError, match=r"then `async for line in f`"):
            for _ in fs.open(path):
                pass
        assert "awaitable, not a file" in repr(opening)
        # The right forms still work.
        async with fs.open(path) as f:
            assert await f.read() == "hello\n"
        f = await fs.open(path)
        assert not hasattr(f, "__await__")
        await f.close()
    pyloop.run(main())


# ---- pyloop.net: bind()/connect() without await ----------------------------------------


def test_async_with_bind_without_await_names_the_fix():
    async def main():
        with warnings.catch_warnings():
            warnings.simplefilter("error")          # and no "never awaited" warning
            with pytest.raises(TypeError) as info:
                async with net.TcpListener.bind("127.0.0.1", 0):
                    pass
            gc.collect()
        message = str(info.value)
        assert "TcpListener.bind(...) is a coroutine" in message
        assert "async with await TcpListener.bind(...) as x:" in message
        with pytest.raises(TypeError, match=r"async for conn in await TcpListener\.bind\(\.\.\.\):"):
            async for _ in net.TcpListener.bind("127.0.0.1", 0):
                pass
        # The documented form still works, and so do create_task and wait_for.
        async with await net.TcpListener.bind("127.0.0.1", 0) as listener:
            port = listener.local_addr[1]
            conn_task = asyncio.create_task(net.TcpStream.connect("127.0.0.1", port))
            accepted = await asyncio.wait_for(listener.accept(), 10)
            async with await conn_task, accepted[0]:
                pass
        async with asyncio.TaskGroup() as tg:
            made = tg.create_task(net.TcpListener.bind("127.0.0.1", 0))
        async with made.result():
            pass
    pyloop.run(main())


def test_connect_result_used_without_await_names_the_fix():
    async def main():
        pending = net.TcpStream.connect("127.0.0.1", 9)
        with pytest.raises(AttributeError, match=r"await TcpStream\.connect\(\.\.\.\); x\.read"):
            pending.read
        assert "TcpStream.connect(...) coroutine, not awaited" in repr(pending)
        pending.close()
    pyloop.run(main())


def test_unix_bind_without_await_names_the_fix(tmp_path):
    async def main():
        with pytest.raises(TypeError, match=r"async with await UnixListener\.bind\(\.\.\.\) as x:"):
            async with net.UnixListener.bind(tmp_path / "s.sock"):
                pass
    pyloop.run(main())


# ---- virtual time on a loop that is not pyloop's ----------------------------------------


def test_pause_on_asyncio_loop_says_how_to_run_on_pyloop():
    async def main():
        with pytest.raises(RuntimeError) as info:
            time.pause()
        return str(info.value)
    message = asyncio.run(main())
    assert "a asyncio" not in message
    assert "virtual time needs a pyloop loop, and this loop is asyncio." in message
    assert "pyloop.run(main())" in message
    assert "asyncio.Runner(loop_factory=pyloop.new_event_loop)" in message


def test_pause_outside_a_loop_says_how_to_run_one():
    with pytest.raises(RuntimeError, match=r"running pyloop loop: call this from async code "
                                           r"started with pyloop\.run\(main\(\)\)"):
        time.pause()


# ---- pyloop.install() / pyloop.run() inside a running loop --------------------------------


@pytest.fixture
def restore_policy():
    policy = asyncio.get_event_loop_policy()
    yield
    asyncio.set_event_loop_policy(policy)


def test_install_inside_asyncio_run_warns_that_the_running_loop_stays(restore_policy):
    async def main():
        with pytest.warns(RuntimeWarning) as record:
            pyloop.install()
        return str(record[0].message), record[0].filename, type(asyncio.get_running_loop())
    message, filename, loop_type = asyncio.run(main())
    assert loop_type is not pyloop.Loop                     # it could not change the loop
    assert isinstance(asyncio.get_event_loop_policy(), pyloop.EventLoopPolicy)  # but it set the policy
    assert "pyloop.install() was called inside a running asyncio." in message
    assert "Call pyloop.install() before asyncio.run(main())" in message
    assert "asyncio.Runner(loop_factory=pyloop.new_event_loop)" in message
    assert filename == __file__                              # points at the caller


def test_install_before_run_or_inside_a_pyloop_loop_does_not_warn(restore_policy):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pyloop.install()

        async def main():
            pyloop.install()                # already on pyloop: nothing to warn about
            return type(asyncio.get_running_loop())
        assert asyncio.run(main()) is pyloop.Loop


def test_run_inside_a_running_loop_says_await_instead():
    async def main():
        coro = _answer()
        try:
            with pytest.raises(RuntimeError, match=r"pyloop\.run\(\) cannot be called from a running "
                                                   r"event loop: await the coroutine instead"):
                pyloop.run(coro)
        finally:
            coro.close()
    loop = pyloop.new_event_loop()
    try:
        run(loop, main())
    finally:
        loop.close()


# ---- pyloop.serve(): arguments, where it is called from, workers that fail -------------------

needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="pyloop.serve forks (POSIX)")


async def _start(sock):  # pragma: no cover - refused before any worker starts
    raise AssertionError("not reached")


@needs_fork
@pytest.mark.parametrize("target", [42, None, object()], ids=["int", "None", "object"])
def test_serve_of_something_else_lists_what_it_serves(target):
    with pytest.raises(TypeError) as info:
        pyloop.serve(target, workers=1)
    message = str(info.value)
    assert message.startswith("pyloop.serve() cannot serve ")
    for kind in ("aiohttp web.Application or web.AppRunner", "uvicorn Config or Server",
                 "ASGI app (async def app(scope, receive, send))", "async start(sock) function",
                 "factory (no arguments, may be async)"):
        assert kind in message, message


@needs_fork
def test_serve_of_a_coroutine_says_pass_the_function():
    async def make_app():  # pragma: no cover - never awaited: refused and closed
        return None

    with warnings.catch_warnings():
        warnings.simplefilter("error")          # closed when refused: no "never awaited" either
        with pytest.raises(TypeError, match=r"this is a coroutine object: pass the async function "
                                            r"itself \(serve\(make_app\), not serve\(make_app\(\)\)\)"):
            pyloop.serve(make_app(), workers=1)
        gc.collect()


@needs_fork
def test_serve_of_an_import_string_says_import_it_or_use_a_uvicorn_config():
    with pytest.raises(TypeError, match=r"for an import string, import it first \(serve\(module\.app\)\), "
                                        r"or give it to uvicorn\.Config\('main:app'\)"):
        pyloop.serve("main:app", workers=1)


@needs_fork
def test_serve_of_a_callable_with_two_arguments_says_which_shapes_it_takes():
    with pytest.raises(TypeError, match=r"takes neither one argument \(the socket\), none \(a factory\) "
                                        r"nor three \(an ASGI app\)"):
        pyloop.serve(lambda reader, writer: None, workers=1)


@needs_fork
@pytest.mark.parametrize("kwargs, error, expected", [
    (dict(workers=0), ValueError, "workers must be at least 1, got 0; leave it out to start one worker "
                                  "per CPU"),
    (dict(workers="2"), TypeError, "workers must be an int, the number of worker processes (workers=4), "
                                   "not str '2'"),
    (dict(port="80"), TypeError, "port must be an int (0 picks a free port), not str '80'"),
    (dict(grace=-1), ValueError, "grace must be >= 0 seconds, got -1"),
])
def test_serve_argument_errors_name_the_fix(kwargs, error, expected):
    with pytest.raises(error) as info:
        pyloop.serve(_start, **kwargs)
    assert str(info.value) == "pyloop.serve(): " + expected


@needs_fork
def test_serve_inside_a_running_loop_says_call_it_from_synchronous_code():
    async def main():
        pyloop.serve(_start, workers=1)

    with pytest.raises(RuntimeError) as info:
        asyncio.run(main())
    message = str(info.value)
    assert message.startswith("pyloop.serve() cannot be called from a running event loop")
    assert 'if __name__ == "__main__": sys.exit(pyloop.serve(...))' in message
    assert "not from a coroutine or asyncio.run()" in message


@needs_fork
def test_serve_off_the_main_thread_says_call_it_at_the_top_level():
    errors: list[BaseException] = []

    def target():
        try:
            pyloop.serve(_start, workers=1)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(60)
    assert len(errors) == 1 and isinstance(errors[0], RuntimeError), errors
    assert "must be called from the main thread" in str(errors[0])
    assert "Call it at the top level of the program" in str(errors[0])


@needs_fork
def test_serve_of_an_aiohttp_runner_already_set_up_says_pass_it_before_setup():
    web = pytest.importorskip("aiohttp.web")
    runner = web.AppRunner(web.Application())

    async def set_up():
        await runner.setup()

    pyloop.run(set_up())
    with pytest.raises(ValueError, match=r"needs the AppRunner before setup\(\).*Pass the runner "
                                         r"\(or the Application\) without calling runner\.setup\(\)"):
        pyloop.serve(runner, workers=1)
    pyloop.run(runner.cleanup())


@needs_fork
@pytest.mark.parametrize("config_kwargs, expected", [
    (dict(uds="/tmp/pyloop-never-bound.sock"), r"a uvicorn Config with uds= or fd= cannot be served "
                                               r"by it: give host= and port= instead"),
    (dict(reload=True), r"does not reload code: drop reload=True from the uvicorn Config"),
])
def test_serve_of_a_uvicorn_config_it_cannot_honour_says_what_to_change(config_kwargs, expected):
    uvicorn = pytest.importorskip("uvicorn")
    config = uvicorn.Config("main:app", **config_kwargs)
    with pytest.raises(ValueError, match=expected):
        pyloop.serve(config, workers=1)


@needs_fork
def test_serve_of_a_started_uvicorn_server_says_pass_it_before_run():
    uvicorn = pytest.importorskip("uvicorn")
    server = uvicorn.Server(uvicorn.Config("main:app"))
    server.started = True                       # as uvicorn marks it once serving
    with pytest.raises(ValueError, match=r"needs a uvicorn Server that has not started: pass it "
                                         r"before server\.run\(\)/serve\(\) \(or pass its Config\)"):
        pyloop.serve(server, workers=1)


_FAILING_WORKER = """
import asyncio, sys
import pyloop

async def start(sock):
    if sys.argv[1] == "raises":
        raise RuntimeError("cannot connect to the database")
    return 42                       # not a server

sys.exit(pyloop.serve(start, workers=2))
"""


@needs_fork
@pytest.mark.parametrize("how, error", [
    ("raises", "RuntimeError: cannot connect to the database"),
    ("returns", "TypeError: start(sock) returned 42 (builtins.int): pyloop.serve() can use a started "
                "server (an object with close() and wait_closed(), such as what "
                "loop.create_server(..., sock=sock) returns), an aiohttp web.Application or "
                "web.AppRunner, a uvicorn Config or Server, or an ASGI app"),
])
def test_a_worker_that_cannot_start_is_reported_with_its_error_and_the_fix(tmp_path, how, error):
    script = tmp_path / "server.py"
    script.write_text(_FAILING_WORKER)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, str(script), how], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert error in proc.stderr, proc.stderr
    assert re.search(r"pyloop\.serve: worker [01] \(pid \d+\) exited with status 1 before it was ready: "
                     r"its error is above\.  serve\(\) stops when a worker cannot start; fix that error "
                     r"and start again", proc.stderr), proc.stderr
    assert "a worker failed to start: stopping" in proc.stderr, proc.stderr
