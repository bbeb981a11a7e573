"""What differs between the CPython versions pyloop supports works on pyloop as the running version's asyncio.

The test command runs the suite on every CPython >= 3.11 it finds (tools/matrix.py), so each test
here checks the version it runs on against that version's asyncio, parametrized over the loops:

* the loop's methods take every parameter this version's asyncio loop takes, of the same kind and
  default; the parameters pyloop accepts beyond it are the listed ones (newer asyncio's, accepted
  on older versions so that code written for the newer asyncio runs);
* 3.12: eager tasks (``asyncio.eager_task_factory``, ``create_eager_task_factory``) -- a task runs
  to its first suspension inside ``create_task`` when the loop is running, not before it runs;
* 3.12: ``shutdown_default_executor(timeout)`` gives up with a ``RuntimeWarning`` after ``timeout``;
  asyncio.Runner passes a 300 s timeout, which a paused virtual clock must not skip;
* 3.12: a custom exception handler runs in the contextvars context of the failing task, future or
  handle;
* 3.12: child watchers are deprecated (the policy's ``get_child_watcher`` warns), and a watcher an
  older program still installs does not disturb a pyloop loop's subprocesses;
* 3.13: ``Server.close_clients``/``abort_clients`` and ``create_server(keep_alive=)`` -- in
  tests/transports/test_servers.py (``test_close_and_abort_clients``, the attribute parity test);
  ``create_unix_server(cleanup_socket=)`` in tests/transports.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import inspect
import subprocess
import sys
import threading
import time
import warnings

import pytest

from ._util import TIMEOUT, run

PY312 = sys.version_info >= (3, 12)
PY313 = sys.version_info >= (3, 13)

needs_eager = pytest.mark.skipif(not PY312, reason="eager tasks are new in Python 3.12")

# Parameters pyloop's Loop accepts on every version, and the version whose asyncio added them.
NEWER_PARAMETERS = {
    ("create_connection", "all_errors"): (3, 12),
    ("shutdown_default_executor", "timeout"): (3, 12),
    ("create_server", "keep_alive"): (3, 13),
    ("create_unix_server", "cleanup_socket"): (3, 13),
}


def _signature(cls, name):
    return inspect.signature(getattr(cls, name))


def _shared_methods():
    import pyloop

    probe = asyncio.new_event_loop()
    try:
        asyncio_cls = type(probe)
    finally:
        probe.close()
    names = [n for n in dir(asyncio_cls)
             if not n.startswith("_") and callable(getattr(asyncio_cls, n)) and hasattr(pyloop.Loop, n)]
    return asyncio_cls, pyloop.Loop, sorted(names)


def test_loop_takes_every_parameter_of_this_versions_asyncio_loop():
    pytest.importorskip("pyloop._core.loop", reason="pyloop is not built")
    asyncio_cls, pyloop_cls, names = _shared_methods()
    problems, extras = [], set()
    for name in names:
        theirs, ours = _signature(asyncio_cls, name), _signature(pyloop_cls, name)
        for param in theirs.parameters.values():
            mine = ours.parameters.get(param.name)
            if mine is None:
                problems.append(f"{name}: no parameter {param.name!r}")
            elif (mine.kind, mine.default) != (param.kind, param.default):
                problems.append(f"{name}({param.name}): {mine} where asyncio has {param}")
        extras |= {(name, p) for p in ours.parameters if p not in theirs.parameters}
    assert problems == [], f"Python {sys.version_info[:2]}"
    expected = {key for key, since in NEWER_PARAMETERS.items() if sys.version_info[:2] < since}
    assert extras == expected, "parameters beyond this version's asyncio must be newer asyncio's"


def test_server_has_the_methods_of_this_versions_server(loop, loop_name):
    async def main():
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        try:
            return {n for n in dir(server) if not n.startswith("_")}
        finally:
            server.close()
            await server.wait_closed()

    names = run(loop, main())
    new_in_313 = {"close_clients", "abort_clients"}
    assert names & new_in_313 == (new_in_313 if PY313 else set())


# ---- eager tasks (3.12) ---------------------------------------------------------------------

@needs_eager
def test_eager_task_runs_to_its_first_await_inside_create_task(loop):
    steps = []

    async def child():
        steps.append(("started", asyncio.current_task()))
        await asyncio.sleep(0)
        steps.append(("resumed", asyncio.current_task()))
        return "done"

    async def main():
        asyncio.get_running_loop().set_task_factory(asyncio.eager_task_factory)
        task = asyncio.create_task(child())
        steps.append(("create_task returned", None))
        assert not task.done()
        assert await task == "done"
        return task

    task = run(loop, main())
    assert steps == [("started", task), ("create_task returned", None), ("resumed", task)]


@needs_eager
def test_eager_task_that_never_suspends_is_done_when_create_task_returns(loop):
    async def quick():
        return 42

    async def fails():
        raise LookupError("eager")

    async def main():
        asyncio.get_running_loop().set_task_factory(asyncio.eager_task_factory)
        ok, bad = asyncio.create_task(quick()), asyncio.create_task(fails())
        assert ok.done() and ok.result() == 42
        assert bad.done() and isinstance(bad.exception(), LookupError)
        assert asyncio.current_task() is not ok      # the creator is the current task again
        return await ok

    assert run(loop, main()) == 42


@needs_eager
def test_eager_factory_does_not_start_a_task_before_the_loop_runs(loop):
    started = []

    async def child():
        started.append(True)
        return "later"

    loop.set_task_factory(asyncio.eager_task_factory)
    task = loop.create_task(child())
    assert started == [] and not task.done()
    assert loop.run_until_complete(task) == "later"
    assert started == [True]


@needs_eager
def test_custom_eager_factory_gets_name_and_context(loop):
    var = contextvars.ContextVar("var", default="outer")
    context = contextvars.copy_context()
    context.run(var.set, "inner")

    async def child():
        return var.get(), asyncio.current_task().get_name()

    async def main():
        asyncio.get_running_loop().set_task_factory(asyncio.create_eager_task_factory(asyncio.Task))
        task = asyncio.get_running_loop().create_task(child(), name="eager-one", context=context)
        # create_task names a factory's task once the factory returned: the eager first step
        # (here the whole coroutine) ran under the default name, as in asyncio.
        assert task.done() and task.get_name() == "eager-one"
        return task.result()

    value, name_inside = run(loop, main())
    assert value == "inner" and name_inside.startswith("Task-")


@needs_eager
def test_eager_tasks_in_a_task_group_and_under_the_toolbox(loop):
    from pyloop import task as ptask

    async def value(x, delay):
        if delay:
            await asyncio.sleep(delay)
        return x

    async def main():
        asyncio.get_running_loop().set_task_factory(asyncio.eager_task_factory)
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(value(i, 0.01 * (i % 2))) for i in range(4)]
            assert [t.done() for t in tasks] == [True, False, True, False]
        handle = ptask.spawn(value("spawned", 0))
        joined = await ptask.join(value(1, 0), value(2, 0.01))
        return [t.result() for t in tasks], await handle, joined

    assert run(loop, main()) == ([0, 1, 2, 3], "spawned", [1, 2])


# ---- the exception handler's context (3.12) --------------------------------------------------

@pytest.mark.parametrize("source", ["callback", "task"])
def test_custom_exception_handler_runs_in_the_failing_code_s_context_from_312(loop, source):
    name = contextvars.ContextVar("name", default="outside")
    seen = []

    def handler(lp, context):
        seen.append(name.get())

    def callback():
        name.set("inside")
        raise ZeroDivisionError

    async def failing_task():
        name.set("inside")
        raise ZeroDivisionError

    async def main():
        loop.set_exception_handler(handler)
        if source == "callback":
            loop.call_soon(callback)
        else:
            task = loop.create_task(failing_task())
            await asyncio.sleep(0)
            del task                        # never retrieved: reported when collected
            gc.collect()
        await asyncio.sleep(0)

    run(loop, main())
    assert seen == ["inside" if PY312 else "outside"]


# ---- shutdown_default_executor(timeout) (3.12) ----------------------------------------------

def _asyncio_waits_for_the_executor_first():
    # 3.12.1's asyncio awaits the executor's shutdown in full and only then joins the thread with
    # the timeout, so the timeout never shortens the wait; 3.13's bounds the wait as documented.
    return "thread.join(timeout)" in inspect.getsource(asyncio.BaseEventLoop.shutdown_default_executor)


@pytest.mark.skipif(not PY312, reason="asyncio's shutdown_default_executor takes a timeout from 3.12")
def test_shutdown_default_executor_gives_up_after_the_timeout(loop, loop_name):
    if loop_name == "asyncio" and _asyncio_waits_for_the_executor_first():
        pytest.skip("this asyncio applies the timeout only after the executor shut down; pyloop "
                    "bounds the wait, as documented and as 3.13 does")
    release = threading.Event()

    async def main():
        job = loop.run_in_executor(None, release.wait, TIMEOUT)
        started = time.monotonic()
        try:
            with pytest.warns(RuntimeWarning, match="did not finish"):
                await loop.shutdown_default_executor(timeout=0.2)
            waited = time.monotonic() - started
        finally:
            release.set()
        assert await job is True                     # the job itself still finishes
        return waited

    assert run(loop, main()) < TIMEOUT / 2


@pytest.mark.skip_loops("asyncio", reason="the virtual clock is pyloop's")
def test_a_paused_clock_does_not_skip_the_executor_join_timeout(loop):
    # asyncio.Runner (3.12+) closes with shutdown_default_executor(300): with the clock paused
    # and auto-advancing, the join must still wait for the thread, not jump 300 s and give up.
    from pyloop import time as ptime

    async def main():
        # A job whose caller gave up (cancelled its future): nothing holds the clock for it, and
        # the thread still runs.
        abandoned = loop.run_in_executor(None, time.sleep, 0.5)
        await asyncio.sleep(0)
        abandoned.cancel()
        ptime.pause()
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            await loop.shutdown_default_executor(300)

    # No run() guard here: its wait_for deadline would be on the paused clock as well.
    loop.run_until_complete(main())


# ---- child watchers (deprecated in 3.12) ----------------------------------------------------

@pytest.mark.skipif(not hasattr(asyncio.AbstractEventLoopPolicy, "get_child_watcher"),
                    reason="child watchers are gone (Python 3.14)")
@pytest.mark.parametrize("policy_name", ["asyncio", "pyloop"])
def test_child_watcher_api_warns_from_312_on_as_asyncio_does(policy_name):
    if policy_name == "pyloop":
        pyloop = pytest.importorskip("pyloop")
        policy = pyloop.EventLoopPolicy()
    else:
        policy = asyncio.DefaultEventLoopPolicy()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        watcher = policy.get_child_watcher()
    try:
        deprecations = [w for w in caught if issubclass(w.category, DeprecationWarning)]
        assert bool(deprecations) == PY312, [str(w.message) for w in caught]
    finally:
        watcher.close()


@pytest.mark.skipif(not hasattr(asyncio, "SafeChildWatcher"), reason="child watchers are gone (Python 3.14)")
def test_subprocesses_work_with_an_old_style_child_watcher_attached(loop):
    # Programs written for 3.11 and earlier install a watcher; it claims SIGCHLD through the loop's
    # add_signal_handler and reaps only the children registered with it (none here).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        watcher = asyncio.SafeChildWatcher()
        watcher.attach_loop(loop)

    async def main():
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "print('child')", stdout=subprocess.PIPE)
        out, _ = await proc.communicate()
        return out, proc.returncode

    try:
        assert run(loop, main()) == (b"child\n", 0)
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            watcher.close()
