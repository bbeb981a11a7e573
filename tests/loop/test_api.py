"""pyloop's own public API (pyloop only; the behaviour tests in this folder run on every loop)."""

import asyncio
import gc
import inspect
import re
import warnings

import pytest

from ._util import TIMEOUT

pyloop = pytest.importorskip("pyloop", reason="pyloop is not importable")
if not hasattr(pyloop, "new_event_loop"):  # half-built package
    pytest.skip("pyloop has no new_event_loop yet", allow_module_level=True)

PUBLIC_NAMES = ["Loop", "EventLoopPolicy", "new_event_loop", "install", "run"]


@pytest.fixture
def restore_policy():
    old = asyncio.get_event_loop_policy()
    yield
    asyncio.set_event_loop_policy(old)


def test_new_event_loop_returns_a_pyloop_loop():
    lp = pyloop.new_event_loop()
    try:
        assert isinstance(lp, pyloop.Loop)
        assert isinstance(lp, asyncio.AbstractEventLoop)
        assert not lp.is_closed() and not lp.is_running()
    finally:
        lp.close()


def test_each_call_makes_a_new_loop():
    a, b = pyloop.new_event_loop(), pyloop.new_event_loop()
    try:
        assert a is not b
    finally:
        a.close()
        b.close()


def test_loop_class_is_constructible_directly():
    lp = pyloop.Loop()
    try:
        assert lp.run_until_complete(asyncio.sleep(0, "direct")) == "direct"
    finally:
        lp.close()


def test_loop_is_subclass_of_abstract_event_loop():
    assert issubclass(pyloop.Loop, asyncio.AbstractEventLoop)


def test_event_loop_policy():
    policy = pyloop.EventLoopPolicy()
    assert isinstance(policy, asyncio.AbstractEventLoopPolicy)
    lp = policy.new_event_loop()
    try:
        assert isinstance(lp, pyloop.Loop)
    finally:
        lp.close()


def test_install_sets_the_policy(restore_policy):
    pyloop.install()
    assert isinstance(asyncio.get_event_loop_policy(), pyloop.EventLoopPolicy)
    lp = asyncio.new_event_loop()
    try:
        assert isinstance(lp, pyloop.Loop)
    finally:
        lp.close()


def test_asyncio_run_uses_pyloop_after_install(restore_policy):
    pyloop.install()

    async def main():
        return type(asyncio.get_running_loop())

    assert issubclass(asyncio.run(main()), pyloop.Loop)


def test_run_returns_the_result():
    async def main(x):
        await asyncio.sleep(0)
        return x * 2

    assert pyloop.run(main(21)) == 42


def test_run_uses_a_pyloop_loop_and_closes_it():
    async def main():
        return asyncio.get_running_loop()

    lp = pyloop.run(main())
    assert isinstance(lp, pyloop.Loop)
    assert lp.is_closed()


@pytest.mark.parametrize("debug", [True, False])
def test_run_honours_debug(debug):
    async def main():
        return asyncio.get_running_loop().get_debug()

    assert pyloop.run(main(), debug=debug) is debug


def test_run_propagates_exceptions():
    async def main():
        raise LookupError("from main")

    with pytest.raises(LookupError, match="from main"):
        pyloop.run(main())


def test_run_cancels_leftover_tasks():
    cancelled = []

    async def leftover():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def main():
        asyncio.ensure_future(leftover())
        await asyncio.sleep(0)
        return "done"

    assert pyloop.run(main()) == "done"
    assert cancelled == [True]


def test_run_finalizes_async_generators():
    log = []
    keep = []

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            log.append("closed")

    async def main():
        g = agen()
        keep.append(g)
        await g.__anext__()

    pyloop.run(main())
    assert log == ["closed"]


def test_run_rejects_non_coroutines():
    with pytest.raises((TypeError, ValueError)):
        pyloop.run(42)


def test_run_inside_a_running_loop_raises_cleanly():
    # Like asyncio.run: refuse up front, without creating (and failing to clean
    # up) a second loop.
    async def inner():
        return 1

    async def main():
        coro = inner()
        try:
            with warnings.catch_warnings(record=True) as w:
                warnings.simplefilter("always")
                with pytest.raises(RuntimeError):
                    pyloop.run(coro)
                gc.collect()
        finally:
            coro.close()
        return [str(x.message) for x in w if issubclass(x.category, (RuntimeWarning, ResourceWarning))]

    assert pyloop.run(main()) == []


def test_asyncio_runner_with_pyloop_factory():
    async def main():
        return type(asyncio.get_running_loop())

    with asyncio.Runner(loop_factory=pyloop.new_event_loop) as runner:
        assert issubclass(runner.run(main()), pyloop.Loop)
        assert issubclass(runner.run(main()), pyloop.Loop)


def test_run_with_a_timeout():
    async def main():
        return await asyncio.wait_for(asyncio.sleep(0.001, "slept"), TIMEOUT)

    assert pyloop.run(main()) == "slept"


def test_version():
    assert isinstance(pyloop.__version__, str)
    assert re.match(r"^\d+\.\d+(\.\d+)?", pyloop.__version__)


def test_all_lists_the_public_api():
    exported = getattr(pyloop, "__all__", None)
    assert exported is not None, "pyloop should define __all__"
    for name in PUBLIC_NAMES + ["__version__"]:
        assert name in exported
    for name in exported:
        assert hasattr(pyloop, name), name


def test_module_has_a_docstring():
    assert pyloop.__doc__ and pyloop.__doc__.strip()


@pytest.mark.parametrize("name", sorted(set(PUBLIC_NAMES) | set(getattr(pyloop, "__all__", [])) - {"__version__"}))
def test_public_names_have_docstrings(name):
    obj = getattr(pyloop, name)
    doc = inspect.getdoc(obj)
    assert doc and doc.strip(), f"pyloop.{name} has no docstring"
    # An inherited docstring (e.g. AbstractEventLoop's) does not document pyloop's class.
    if inspect.isclass(obj):
        assert obj.__doc__, f"pyloop.{name} only inherits its docstring"
