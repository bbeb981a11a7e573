"""Messages for the common mistakes of issue #14 name what was called and how to fix it.

Each test makes the mistake the way a user would and checks that the error (or, for
``install()`` inside a running loop, the warning) names the call and the fix.
"""

from __future__ import annotations

import asyncio
import gc
import warnings

import pytest

import pyloop
from pyloop import fs, net, task, time

from ._util import run


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
