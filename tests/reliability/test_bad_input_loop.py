"""Bad input to the loop's own API: scheduling, running, tasks and futures, handlers,
executors, fd watchers, signals, calls from the wrong thread, and pyloop's module functions.

Each row says which exception stock asyncio raises; pyloop must raise the same type.
The table machinery (and how to add a row) is in _bad_input.py.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import os
import signal
import sys
import threading
from decimal import Decimal
from fractions import Fraction

import pytest

from ._bad_input import NO_RAISE, Case, apply_bugs, params, run_case

pytestmark = pytest.mark.timeout(60)


async def _coro_fn() -> None:
    return None


def _cb(*args) -> None:
    return None


def _run_nested(loop, env):
    async def main():
        loop.run_until_complete(env.coro())
    return main()


def _run_forever_nested(loop, env):
    async def main():
        loop.run_forever()
    return main()


def _close_while_running(loop, env):
    async def main():
        loop.close()
    return main()


def _future_of_other_loop(loop, env):
    other = asyncio.new_event_loop()
    env.on_cleanup(other.close)
    return loop.run_until_complete(other.create_future())


def _run_until_complete_from_thread(loop, env):
    # made from another thread while the loop runs in the main thread
    return loop.run_until_complete(env.coro())


def _set_result_twice(loop, env):
    f = loop.create_future()
    f.set_result(1)
    f.set_result(2)


def _result_not_done(loop, env):
    loop.create_future().result()


def _exception_not_done(loop, env):
    loop.create_future().exception()


def _set_stop_iteration(loop, env):
    loop.create_future().set_exception(StopIteration())


def _set_exception_int(loop, env):
    loop.create_future().set_exception(1)


def _cancelled_result(loop, env):
    f = loop.create_future()
    f.cancel()
    f.result()


def _create_task_closed(loop, env):
    loop.create_task(env.coro())


def _task_name_int(loop, env):
    async def main():
        t = loop.create_task(_coro_fn(), name=123)
        assert t.get_name() == "123"
        await t
    return main()


def _run_in_executor_after_shutdown(loop, env):
    async def main():
        await loop.shutdown_default_executor()
        loop.run_in_executor(None, _cb)
    return main()


def _await_executor(fn, *args, executor=None):
    def call(loop, env):
        async def main():
            return await loop.run_in_executor(executor, fn, *args)
        return main()
    return call


def _executor_is_int(loop, env):
    async def main():
        return await loop.run_in_executor(1, _cb)
    return main()


def _set_process_pool(loop, env):
    pool = concurrent.futures.ProcessPoolExecutor(1)
    env.on_cleanup(lambda: pool.shutdown(wait=False))
    loop.set_default_executor(pool)


def _reader_for_regular_file(loop, env):
    f = env.file()
    loop.add_reader(f.fileno(), _cb)


def _writer_for_regular_file(loop, env):
    f = env.file()
    loop.add_writer(f.fileno(), _cb)


def _closed_fd_number(loop, env):
    r, w = env.pipe()
    os.close(r)
    return r


def _fileno_minus_one(loop, env):
    class Bad:
        def fileno(self):
            return -1
    return Bad()


def _reader_on_transport_fd(loop, env):
    async def main():
        tr, _, _ = await env.transport()
        loop.add_reader(tr.get_extra_info("socket").fileno(), _cb)
    return main()


def _writer_on_transport_fd(loop, env):
    async def main():
        tr, _, _ = await env.transport()
        loop.add_writer(tr.get_extra_info("socket").fileno(), _cb)
    return main()


def _remove_reader_unregistered(loop, env):
    r, w = env.pipe()
    assert loop.remove_reader(r) is False


def _remove_writer_unregistered(loop, env):
    r, w = env.pipe()
    assert loop.remove_writer(w) is False


def _remove_reader_closed_loop(loop, env):
    r, w = env.pipe()
    assert loop.remove_reader(r) is False


def _add_signal_then_remove(sig, handler):
    def call(loop, env):
        env.on_cleanup(lambda: loop.is_closed() or loop.remove_signal_handler(sig))
        loop.add_signal_handler(sig, handler)
    return call


def _remove_unregistered_signal(loop, env):
    assert loop.remove_signal_handler(signal.SIGUSR2) is False


def _handle_cancel_twice(loop, env):
    h = loop.call_later(10, _cb)
    h.cancel()
    h.cancel()
    assert h.cancelled()


def _timer_cancelled_then_run(loop, env):
    async def main():
        fired = []
        h = loop.call_later(0, fired.append, 1)
        h.cancel()
        await asyncio.sleep(0.01)
        assert fired == []
    return main()


def _call_later_inf(loop, env):
    h = loop.call_later(float("inf"), _cb)
    h.cancel()


def _call_later_negative_runs(loop, env):
    async def main():
        fut = loop.create_future()
        loop.call_later(-5, fut.set_result, "ran")
        assert await fut == "ran"
    return main()


def _call_at_past_runs(loop, env):
    async def main():
        fut = loop.create_future()
        loop.call_at(loop.time() - 100, fut.set_result, "ran")
        assert await fut == "ran"
    return main()


def _far_past_runs_now(schedule):
    """A deadline far in the past runs at once.  A watchdog thread wakes the loop after
    3 s, so a loop that would otherwise sleep forever fails the check instead of hanging."""
    def call(loop, env):
        async def main():
            fut = loop.create_future()
            t0 = loop.time()
            schedule(loop, fut)
            rescue = threading.Timer(3.0, loop.call_soon_threadsafe, (_cb,))
            rescue.start()
            try:
                await fut
            finally:
                rescue.cancel()
            assert loop.time() - t0 < 2.5, f"the timer ran after {loop.time() - t0:.1f} s"
        return main()
    return call


def _bad_callback_reported(schedule):
    """Without debug mode asyncio only finds out when the callback runs; the loop survives."""
    def call(loop, env):
        async def main():
            seen = []
            loop.set_exception_handler(lambda lp, ctx: seen.append(ctx.get("exception")))
            schedule(loop)
            for _ in range(5):
                await asyncio.sleep(0)
            loop.set_exception_handler(None)
            assert seen and isinstance(seen[0], TypeError), seen
        return main()
    return call


def _exception_handler_raises(loop, env):
    async def main():
        def handler(lp, ctx):
            raise ValueError("handler failed")
        loop.set_exception_handler(handler)
        loop.call_soon(lambda: 1 / 0)
        for _ in range(3):
            await asyncio.sleep(0)
        loop.set_exception_handler(None)
    return main()


def _module(loop):
    if type(loop).__module__.startswith("asyncio"):
        return asyncio
    import pyloop
    return pyloop


def _mod_run(arg_factory, **kw):
    """``asyncio.run`` on asyncio, ``pyloop.run`` on pyloop."""
    def call(loop, env):
        _module(loop).run(arg_factory(env), **kw)
    return call


def _mod_run_nested(loop, env):
    async def main():
        _module(loop).run(env.coro())
    return main()


def _mod_new_event_loop_arg(loop, env):
    _module(loop).new_event_loop(1)


def _policy_set_event_loop_int(loop, env):
    mod = _module(loop)
    policy = asyncio.DefaultEventLoopPolicy() if mod is asyncio else mod.EventLoopPolicy()
    policy.set_event_loop(1)


def _policy_new_loop_is_usable(loop, env):
    mod = _module(loop)
    policy = asyncio.DefaultEventLoopPolicy() if mod is asyncio else mod.EventLoopPolicy()
    new = policy.new_event_loop()
    try:
        assert new.run_until_complete(asyncio.sleep(0, "x")) == "x"
    finally:
        new.close()


def _policy_get_loop_from_thread(loop, env):
    mod = _module(loop)
    policy = asyncio.DefaultEventLoopPolicy() if mod is asyncio else mod.EventLoopPolicy()
    policy.get_event_loop()


CLOSED_RUNTIME = [
    ("call_soon", lambda lp, env: lp.call_soon(_cb)),
    ("call_later", lambda lp, env: lp.call_later(1, _cb)),
    ("call_at", lambda lp, env: lp.call_at(lp.time() + 1, _cb)),
    ("call_soon_threadsafe", lambda lp, env: lp.call_soon_threadsafe(_cb)),
    ("run_until_complete", lambda lp, env: lp.run_until_complete(env.coro())),
    ("run_forever", lambda lp, env: lp.run_forever()),
    ("create_task", _create_task_closed),
    ("run_in_executor", lambda lp, env: lp.run_in_executor(None, _cb)),
    ("add_reader", lambda lp, env: lp.add_reader(env.pipe()[0], _cb)),
    ("add_writer", lambda lp, env: lp.add_writer(env.pipe()[1], _cb)),
    ("add_signal_handler", lambda lp, env: lp.add_signal_handler(signal.SIGUSR1, _cb)),
]

CASES: list[Case] = [
    # --- scheduling: wrong types (asyncio checks callbacks only in debug mode)
    Case("call_soon-int-debug", lambda lp, env: lp.call_soon(1), TypeError, debug=True),
    Case("call_soon-None-debug", lambda lp, env: lp.call_soon(None), TypeError, debug=True),
    Case("call_soon-coroutine-fn-debug", lambda lp, env: lp.call_soon(_coro_fn), TypeError, debug=True),
    Case("call_soon-coroutine-debug", lambda lp, env: lp.call_soon(env.coro()), TypeError, debug=True),
    Case("call_later-str-cb-debug", lambda lp, env: lp.call_later(0, "f"), TypeError, debug=True),
    Case("call_at-int-cb-debug", lambda lp, env: lp.call_at(lp.time(), 1), TypeError, debug=True),
    Case("call_soon_threadsafe-int-debug", lambda lp, env: lp.call_soon_threadsafe(1), TypeError, debug=True),
    Case("call_soon-int-reported", _bad_callback_reported(lambda lp: lp.call_soon(1)), NO_RAISE,
         per_loop={"pyloop": TypeError},
         reason="asyncio accepts it without debug mode and reports the TypeError when it runs; pyloop checks"
                " at scheduling time, as tests/loop/test_arguments.py allows"),
    Case("call_later-None-reported", _bad_callback_reported(lambda lp: lp.call_later(0, None)), NO_RAISE,
         per_loop={"pyloop": TypeError},
         reason="asyncio accepts it without debug mode and reports the TypeError when it runs; pyloop checks"
                " at scheduling time, as tests/loop/test_arguments.py allows"),
    Case("call_soon-no-callback", lambda lp, env: lp.call_soon(), TypeError),
    Case("call_soon-kwargs", lambda lp, env: lp.call_soon(_cb, flag=1), TypeError),
    Case("call_later-kwargs", lambda lp, env: lp.call_later(0, _cb, flag=1), TypeError),
    Case("call_later-no-args", lambda lp, env: lp.call_later(), TypeError),
    Case("call_later-None-delay", lambda lp, env: lp.call_later(None, _cb), TypeError),
    Case("call_later-str-delay", lambda lp, env: lp.call_later("1", _cb), TypeError),
    Case("call_later-bytes-delay", lambda lp, env: lp.call_later(b"1", _cb), TypeError),
    Case("call_later-list-delay", lambda lp, env: lp.call_later([1], _cb), TypeError),
    Case("call_at-None-when", lambda lp, env: lp.call_at(None, _cb), TypeError),
    Case("call_later-inf-accepted", _call_later_inf, NO_RAISE),
    Case("call_later-negative-runs-now", _call_later_negative_runs, NO_RAISE),
    Case("call_at-past-runs-now", _call_at_past_runs, NO_RAISE),
    Case("call_at-far-past-runs-now", _far_past_runs_now(lambda lp, f: lp.call_at(-1e10, f.set_result, 1)),
         NO_RAISE),
    Case("call_at-minus-inf-runs-now", _far_past_runs_now(lambda lp, f: lp.call_at(float("-inf"), f.set_result,
                                                                                   1)),
         NO_RAISE),
    Case("call_later-minus-1e300-runs-now", _far_past_runs_now(lambda lp, f: lp.call_later(-1e300, f.set_result,
                                                                                           1)),
         NO_RAISE),
    Case("call_later-nan-accepted", lambda lp, env: lp.call_later(float("nan"), _cb).cancel(), NO_RAISE),
    Case("call_later-1e300-accepted", lambda lp, env: lp.call_later(1e300, _cb).cancel(), NO_RAISE),
    Case("call_later-huge-int-accepted", lambda lp, env: lp.call_later(2 ** 70, _cb).cancel(), NO_RAISE),
    Case("call_later-Fraction-accepted", lambda lp, env: lp.call_later(Fraction(1, 2), _cb).cancel(), NO_RAISE),
    Case("call_later-complex", lambda lp, env: lp.call_later(1j, _cb), TypeError,
         per_loop={"asyncio": NO_RAISE},
         wedges={"asyncio": "asyncio accepts a complex delay into its heap; its next iteration raises"
                            " TypeError computing the poll timeout, and so does every one after"},
         reason="pyloop raises TypeError at once, which is what asyncio should do"),
    Case("call_later-Decimal", lambda lp, env: lp.call_later(Decimal(1), _cb).cancel(), TypeError,
         per_loop={"pyloop": NO_RAISE},
         reason="asyncio fails adding a Decimal to its float clock; pyloop converts any real number with"
                " float(), which is harmless"),
    Case("handle-cancel-twice", _handle_cancel_twice, NO_RAISE),
    Case("timer-cancelled-never-runs", _timer_cancelled_then_run, NO_RAISE),
    # --- running
    Case("run_until_complete-int", lambda lp, env: lp.run_until_complete(1), TypeError),
    Case("run_until_complete-None", lambda lp, env: lp.run_until_complete(None), TypeError),
    Case("run_until_complete-coroutine-fn", lambda lp, env: lp.run_until_complete(_coro_fn), TypeError),
    Case("run_until_complete-nested", _run_nested, RuntimeError),
    Case("run_forever-nested", _run_forever_nested, RuntimeError),
    Case("close-while-running", _close_while_running, RuntimeError),
    Case("run_until_complete-other-loops-future", _future_of_other_loop, ValueError),
    Case("run_until_complete-from-other-thread", _run_until_complete_from_thread, RuntimeError, state="thread",
         reason="the loop is already running (in the main thread)"),
    Case("close-from-other-thread-while-running", lambda lp, env: lp.close(), RuntimeError, state="thread"),
    Case("stop-on-closed-loop", lambda lp, env: lp.stop(), NO_RAISE, state="closed"),
    Case("close-twice", lambda lp, env: (lp.close(), lp.close()), NO_RAISE),
    Case("time-on-closed-loop", lambda lp, env: lp.time(), NO_RAISE, state="closed"),
    Case("is_running-on-closed-loop", lambda lp, env: lp.is_running(), NO_RAISE, state="closed"),
    # --- tasks and futures
    Case("create_task-int", lambda lp, env: lp.create_task(1), TypeError),
    Case("create_task-None", lambda lp, env: lp.create_task(None), TypeError),
    Case("create_task-future", lambda lp, env: lp.create_task(lp.create_future()), TypeError),
    Case("create_task-coroutine-fn", lambda lp, env: lp.create_task(_coro_fn), TypeError),
    Case("create_task-name-int-is-str", _task_name_int, NO_RAISE),
    Case("create_future-on-closed-loop", lambda lp, env: lp.create_future(), NO_RAISE, state="closed",
         reason="asyncio hands out futures on a closed loop; using them is what fails"),
    Case("future-set_result-twice", _set_result_twice, asyncio.InvalidStateError),
    Case("future-result-not-done", _result_not_done, asyncio.InvalidStateError),
    Case("future-exception-not-done", _exception_not_done, asyncio.InvalidStateError),
    Case("future-set_exception-StopIteration", _set_stop_iteration,
         TypeError if sys.version_info < (3, 13) else NO_RAISE,
         reason="asyncio's Future: from 3.13 it stores a RuntimeError in its place instead of raising"),
    Case("future-set_exception-int", _set_exception_int, TypeError),
    Case("future-cancelled-result", _cancelled_result, asyncio.CancelledError),
    Case("set_task_factory-int", lambda lp, env: lp.set_task_factory(1), TypeError),
    Case("set_task_factory-None", lambda lp, env: lp.set_task_factory(None), NO_RAISE),
    # --- exception handler and debug
    Case("set_exception_handler-int", lambda lp, env: lp.set_exception_handler(1), TypeError),
    Case("set_exception_handler-None", lambda lp, env: lp.set_exception_handler(None), NO_RAISE),
    Case("call_exception_handler-empty-context", lambda lp, env: lp.call_exception_handler({}), NO_RAISE),
    Case("call_exception_handler-not-a-dict", lambda lp, env: lp.call_exception_handler(1), NO_RAISE,
         reason="asyncio logs a failure of the default handler instead of raising"),
    Case("exception-handler-that-raises", _exception_handler_raises, NO_RAISE,
         reason="a failing custom handler is logged; the loop goes on"),
    Case("set_debug-on-closed-loop", lambda lp, env: lp.set_debug(True), NO_RAISE, state="closed"),
    Case("get_debug-on-closed-loop", lambda lp, env: lp.get_debug(), NO_RAISE, state="closed"),
    # --- executors
    Case("set_default_executor-int", lambda lp, env: lp.set_default_executor(1), TypeError),
    Case("set_default_executor-process-pool", _set_process_pool, TypeError),
    Case("run_in_executor-non-callable", _await_executor(1), TypeError,
         reason="the worker thread's call fails; the TypeError comes back through the future"),
    Case("run_in_executor-coroutine-fn-debug", lambda lp, env: lp.run_in_executor(None, _coro_fn), TypeError,
         debug=True),
    Case("run_in_executor-executor-int", _executor_is_int, AttributeError,
         reason="asyncio calls executor.submit without checking the type: an AttributeError"),
    Case("run_in_executor-after-shutdown", _run_in_executor_after_shutdown, RuntimeError),
    Case("run_in_executor-kwargs", lambda lp, env: lp.run_in_executor(None, _cb, flag=1), TypeError),
    Case("shutdown_default_executor-twice", lambda lp, env: (
        lp.run_until_complete(lp.shutdown_default_executor()),
        lp.run_until_complete(lp.shutdown_default_executor())), NO_RAISE),
    Case("shutdown_asyncgens-twice", lambda lp, env: (
        lp.run_until_complete(lp.shutdown_asyncgens()),
        lp.run_until_complete(lp.shutdown_asyncgens())), NO_RAISE),
    # --- fd watchers
    Case("add_reader-fd-minus-1", lambda lp, env: lp.add_reader(-1, _cb), ValueError),
    Case("add_reader-str", lambda lp, env: lp.add_reader("x", _cb), ValueError),
    Case("add_reader-None", lambda lp, env: lp.add_reader(None, _cb), ValueError),
    Case("add_reader-float", lambda lp, env: lp.add_reader(1.5, _cb), ValueError),
    Case("add_reader-fileno-returns-minus-1", lambda lp, env: lp.add_reader(_fileno_minus_one(lp, env), _cb),
         ValueError),
    Case("add_reader-closed-fd", lambda lp, env: lp.add_reader(_closed_fd_number(lp, env), _cb), OSError,
         reason="epoll_ctl fails with EBADF: a plain OSError"),
    Case("add_reader-regular-file", _reader_for_regular_file, PermissionError,
         reason="epoll refuses regular files with EPERM"),
    Case("add_reader-no-callback", lambda lp, env: lp.add_reader(env.pipe()[0]), TypeError),
    Case("add_reader-int-callback-debug", lambda lp, env: lp.add_reader(env.pipe()[0], 1), NO_RAISE, debug=True,
         per_loop={"pyloop": TypeError},
         reason="asyncio never checks add_reader/add_writer callbacks (not even in debug mode); pyloop"
                " raises TypeError at once, which is the better answer"),
    Case("add_reader-None-callback", lambda lp, env: lp.add_reader(env.pipe()[0], None), NO_RAISE,
         per_loop={"pyloop": TypeError},
         reason="asyncio never checks add_reader/add_writer callbacks; pyloop raises TypeError at once"),
    Case("add_reader-transport-fd", _reader_on_transport_fd, RuntimeError),
    Case("add_writer-fd-minus-1", lambda lp, env: lp.add_writer(-1, _cb), ValueError),
    Case("add_writer-str", lambda lp, env: lp.add_writer("x", _cb), ValueError),
    Case("add_writer-closed-fd", lambda lp, env: lp.add_writer(_closed_fd_number(lp, env), _cb), OSError),
    Case("add_writer-regular-file", _writer_for_regular_file, PermissionError),
    Case("add_writer-coroutine-fn-debug", lambda lp, env: lp.add_writer(env.pipe()[1], _coro_fn), NO_RAISE,
         debug=True, per_loop={"pyloop": TypeError},
         reason="asyncio never checks add_reader/add_writer callbacks; pyloop raises TypeError at once",
         marks=(pytest.mark.filterwarnings("ignore:coroutine '_coro_fn' was never awaited"),)),
    Case("add_writer-transport-fd", _writer_on_transport_fd, RuntimeError),
    Case("add_reader-fd-2**31", lambda lp, env: lp.add_reader(2 ** 31, _cb), OverflowError),
    Case("add_writer-fd-2**31", lambda lp, env: lp.add_writer(2 ** 31, _cb), OverflowError),
    Case("add_reader-fd-2**64", lambda lp, env: lp.add_reader(2 ** 64, _cb), OverflowError),
    Case("remove_reader-fd-2**31", lambda lp, env: lp.remove_reader(2 ** 31), NO_RAISE),
    Case("remove_writer-fd-2**64", lambda lp, env: lp.remove_writer(2 ** 64), NO_RAISE),
    Case("add_reader-fd-above-table-closed", lambda lp, env: lp.add_reader(19999, _cb), OSError,
         reason="a plausible fd number with nothing open: EBADF"),
    Case("remove_reader-fd-minus-1", lambda lp, env: lp.remove_reader(-1), ValueError),
    Case("remove_reader-str", lambda lp, env: lp.remove_reader("x"), ValueError),
    Case("remove_writer-fd-minus-1", lambda lp, env: lp.remove_writer(-1), ValueError),
    Case("remove_reader-unregistered", _remove_reader_unregistered, NO_RAISE),
    Case("remove_writer-unregistered", _remove_writer_unregistered, NO_RAISE),
    Case("remove_reader-on-closed-loop", _remove_reader_closed_loop, NO_RAISE, state="closed"),
    # --- signals
    Case("add_signal_handler-SIGKILL", lambda lp, env: lp.add_signal_handler(signal.SIGKILL, _cb), RuntimeError),
    Case("add_signal_handler-SIGSTOP", lambda lp, env: lp.add_signal_handler(signal.SIGSTOP, _cb), RuntimeError),
    Case("add_signal_handler-0", lambda lp, env: lp.add_signal_handler(0, _cb), ValueError),
    Case("add_signal_handler-1000", lambda lp, env: lp.add_signal_handler(1000, _cb), ValueError),
    Case("add_signal_handler-negative", lambda lp, env: lp.add_signal_handler(-1, _cb), ValueError),
    Case("add_signal_handler-str", lambda lp, env: lp.add_signal_handler("SIGINT", _cb), TypeError),
    Case("add_signal_handler-coroutine-fn", lambda lp, env: lp.add_signal_handler(signal.SIGUSR1, _coro_fn),
         TypeError),
    Case("add_signal_handler-coroutine", lambda lp, env: lp.add_signal_handler(signal.SIGUSR1, env.coro()),
         TypeError),
    Case("add_signal_handler-from-thread", lambda lp, env: lp.add_signal_handler(signal.SIGUSR1, _cb),
         RuntimeError, state="thread", reason="signal handlers can only be installed from the main thread"),
    Case("add_signal_handler-then-remove", _add_signal_then_remove(signal.SIGUSR1, _cb), NO_RAISE),
    Case("remove_signal_handler-unregistered", _remove_unregistered_signal, NO_RAISE),
    Case("remove_signal_handler-str", lambda lp, env: lp.remove_signal_handler("SIGINT"), TypeError),
    Case("remove_signal_handler-0", lambda lp, env: lp.remove_signal_handler(0), ValueError),
    # --- calls from another thread while the loop runs
    Case("call_soon-from-thread-debug", lambda lp, env: lp.call_soon(_cb), RuntimeError, state="thread",
         debug=True),
    Case("call_later-from-thread-debug", lambda lp, env: lp.call_later(1, _cb), RuntimeError, state="thread",
         debug=True),
    Case("call_at-from-thread-debug", lambda lp, env: lp.call_at(lp.time() + 1, _cb), RuntimeError,
         state="thread", debug=True),
    Case("create_task-from-thread-debug", lambda lp, env: lp.create_task(env.coro()), RuntimeError,
         state="thread", debug=True, reason="the task's first step is scheduled with call_soon"),
    Case("call_soon_threadsafe-from-thread-debug", lambda lp, env: lp.call_soon_threadsafe(_cb), NO_RAISE,
         state="thread", debug=True),
    Case("call_soon-from-thread-no-debug", lambda lp, env: lp.call_soon(_cb), NO_RAISE, state="thread",
         reason="asyncio checks the thread only in debug mode"),
    # --- pyloop's module functions, against asyncio's (asyncio.run vs pyloop.run, ...)
    Case("run-int", _mod_run(lambda env: 1), ValueError),
    Case("run-None", _mod_run(lambda env: None), ValueError),
    Case("run-coroutine-fn", _mod_run(lambda env: _coro_fn), ValueError),
    Case("run-nested-in-running-loop", _mod_run_nested, RuntimeError),
    Case("new_event_loop-with-arg", _mod_new_event_loop_arg, TypeError),
    Case("policy-set_event_loop-int", _policy_set_event_loop_int, TypeError),
    Case("policy-new_event_loop-usable", _policy_new_loop_is_usable, NO_RAISE),
    Case("policy-get_event_loop-in-thread", _policy_get_loop_from_thread, RuntimeError, state="thread",
         reason="no current loop in a thread other than the main one"),
]
CASES += [Case(f"{name}-on-closed-loop", fn, RuntimeError, state="closed") for name, fn in CLOSED_RUNTIME]


@pytest.mark.parametrize("case", params(CASES))
def test_bad_input(case: Case, loop_factory, request) -> None:
    apply_bugs(request, case)
    run_case(case, loop_factory)


def test_table_is_large_enough() -> None:
    # the enumeration is the point of this file: keep it from shrinking by accident
    assert len(CASES) >= 100
