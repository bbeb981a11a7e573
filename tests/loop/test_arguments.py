"""Bad arguments to the scheduling API.

Stock asyncio validates callbacks (non-callables, coroutines, coroutine functions)
only in debug mode; without debug mode a bad callback is reported to the exception
handler when it runs.  pyloop must raise TypeError at least in debug mode, and in
non-debug mode must either raise TypeError at scheduling time or report a TypeError
to the exception handler: a bad callback may never crash or wedge the loop.
"""

import asyncio
import warnings

import pytest

from ._util import run, run_forever


async def _coro_func():
    pass


SCHEDULERS = {
    "call_soon": lambda lp, cb: lp.call_soon(cb),
    "call_later": lambda lp, cb: lp.call_later(0, cb),
    "call_at": lambda lp, cb: lp.call_at(lp.time(), cb),
    "call_soon_threadsafe": lambda lp, cb: lp.call_soon_threadsafe(cb),
}


@pytest.fixture(params=sorted(SCHEDULERS))
def schedule(request):
    return SCHEDULERS[request.param]


@pytest.fixture(params=["int", "str", "None", "coroutine", "coroutine-function"])
def bad_callback(request):
    kind = request.param
    if kind == "coroutine":
        coro = _coro_func()
        yield kind, coro
        coro.close()
    else:
        yield kind, {"int": 1, "str": "f", "None": None, "coroutine-function": _coro_func}[kind]


def test_call_later_none_delay(loop):
    with pytest.raises(TypeError):
        loop.call_later(None, print)


def test_call_at_none_when(loop):
    with pytest.raises(TypeError):
        loop.call_at(None, print)


@pytest.mark.parametrize("bad", ["1", b"1", [1], object()])
def test_call_later_non_numbers(loop, bad):
    # (asyncio's call_at does not validate `when`; only call_later is checked here.)
    with pytest.raises(TypeError):
        loop.call_later(bad, print)


def test_bad_callbacks_raise_type_error_in_debug_mode(loop, schedule, bad_callback):
    loop.set_debug(True)
    _, cb = bad_callback
    with pytest.raises(TypeError):
        schedule(loop, cb)


@pytest.fixture(params=["int", "str", "None", "coroutine"])
def non_callable(request):
    if request.param == "coroutine":
        coro = _coro_func()
        yield coro
        coro.close()
    else:
        yield {"int": 1, "str": "f", "None": None}[request.param]


def test_non_callables_never_crash_the_loop_without_debug(loop, schedule, non_callable):
    # (A coroutine *function* is callable: without debug mode asyncio just calls it.)
    cb = non_callable
    loop.set_debug(False)
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
    try:
        schedule(loop, cb)
    except TypeError:
        return  # rejected up front: fine (stricter than asyncio)
    after = []
    loop.call_later(0.001, after.append, "loop-alive")
    loop.call_later(0.002, loop.stop)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        run_forever(loop)
    assert after == ["loop-alive"]
    assert len(contexts) == 1
    assert isinstance(contexts[0].get("exception"), TypeError)


def test_run_in_executor_rejects_coroutine_functions_in_debug_mode(loop):
    loop.set_debug(True)
    with pytest.raises(TypeError):
        loop.run_in_executor(None, _coro_func)


def test_create_task_requires_a_coroutine(loop):
    with pytest.raises(TypeError):
        loop.create_task(42)
    with pytest.raises(TypeError):
        loop.create_task(_coro_func)  # the function, not a coroutine


def test_run_until_complete_requires_an_awaitable(loop):
    with pytest.raises(TypeError):
        loop.run_until_complete(print)


def test_loop_usable_after_rejected_arguments(loop):
    for bad in (None, "x"):
        with pytest.raises(TypeError):
            loop.call_later(bad, print)
    assert run(loop, asyncio.sleep(0, "ok")) == "ok"


# --------------------------------------------------------------------------- pyloop is stricter
#
# Deliberate difference (pyloop/_core/loop.pyx, Loop._check_callback): pyloop rejects a
# non-callable callback with TypeError in every mode, not only in debug mode,
# since such a callback can never succeed.  Coroutine *functions* are still
# accepted outside debug mode, as in asyncio (they are callable).

STRICTER = pytest.mark.skip_loops(
    "asyncio", "uvloop", reason="asyncio and uvloop only validate callbacks in debug mode"
)


@STRICTER
def test_pyloop_rejects_non_callables_without_debug(loop, schedule, non_callable):
    loop.set_debug(False)
    with pytest.raises(TypeError):
        schedule(loop, non_callable)


@STRICTER
def test_pyloop_run_in_executor_rejects_non_callables(loop):
    with pytest.raises(TypeError):
        loop.run_in_executor(None, 42)


@pytest.mark.skip_loops("asyncio", "uvloop", reason="asyncio's call_at does not validate `when`")
@pytest.mark.parametrize("bad", ["1", b"1", [1], object()])
def test_pyloop_call_at_non_numbers(loop, bad):
    with pytest.raises(TypeError):
        loop.call_at(bad, print)
