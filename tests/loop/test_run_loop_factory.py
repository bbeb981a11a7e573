"""``pyloop.run(main, loop_factory=...)``, as ``uvloop.run`` and (3.12+) ``asyncio.run`` take it."""

import asyncio
import gc
import warnings

import pytest

import pyloop


class MyLoop(pyloop.Loop):
    pass


def test_run_with_a_loop_subclass_factory():
    async def main():
        return asyncio.get_running_loop()

    lp = pyloop.run(main(), loop_factory=MyLoop)
    assert type(lp) is MyLoop
    assert lp.is_closed()


def test_run_with_a_configuring_factory_and_debug():
    made = []

    def factory():
        lp = pyloop.new_event_loop()
        lp.slow_callback_duration = 7.0
        made.append(lp)
        return lp

    async def main():
        lp = asyncio.get_running_loop()
        return lp.slow_callback_duration, lp.get_debug()

    assert pyloop.run(main(), loop_factory=factory, debug=True) == (7.0, True)
    assert len(made) == 1 and made[0].is_closed()


def test_run_default_factory_is_new_event_loop():
    async def main():
        return type(asyncio.get_running_loop())

    assert pyloop.run(main(), loop_factory=None) is pyloop.Loop


def test_run_refuses_a_loop_that_is_not_pyloops():
    """As uvloop.run: the loop is closed, TypeError names what was made and what to use."""
    made = []

    def factory():
        lp = asyncio.SelectorEventLoop()
        made.append(lp)
        return lp

    async def main():
        return 1

    coro = main()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(TypeError, match="SelectorEventLoop.*asyncio.Runner"):
                pyloop.run(coro, loop_factory=factory)
            gc.collect()
    finally:
        coro.close()
    assert made and made[0].is_closed()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert asyncio.events._get_running_loop() is None


def test_run_factory_errors_propagate():
    def factory():
        raise LookupError("no loop for you")

    async def main():
        return 1

    coro = main()
    try:
        with pytest.raises(LookupError, match="no loop for you"):
            pyloop.run(coro, loop_factory=factory)
    finally:
        coro.close()


def test_run_signature_matches_uvloop_run():
    uvloop = pytest.importorskip("uvloop")
    import inspect

    ours = inspect.signature(pyloop.run).parameters
    theirs = inspect.signature(uvloop.run).parameters
    for name in ("loop_factory", "debug"):
        assert ours[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert theirs[name].kind is inspect.Parameter.KEYWORD_ONLY
