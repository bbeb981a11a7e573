"""Async generator finalization: the loop's asyncgen hooks and shutdown_asyncgens()."""

import asyncio
import gc
import sys
import warnings

import pytest

from ._util import run, run_forever


def _tracked_agen(log, name="agen"):
    async def agen():
        try:
            for i in range(100):
                yield i
        finally:
            # Async cleanup must be possible: the loop runs aclose() as a task.
            await asyncio.sleep(0)
            log.append(f"{name} finalized")

    return agen()


def test_shutdown_asyncgens_closes_unexhausted_generators(loop):
    log = []
    gens = []

    async def main():
        for n in range(3):
            g = _tracked_agen(log, f"g{n}")
            assert await g.__anext__() == 0
            gens.append(g)  # keep them alive past main()

    run(loop, main())
    assert log == []
    run(loop, loop.shutdown_asyncgens())
    assert sorted(log) == ["g0 finalized", "g1 finalized", "g2 finalized"]


def test_shutdown_asyncgens_with_nothing_to_do(loop):
    run(loop, loop.shutdown_asyncgens())


def test_exhausted_generators_are_not_closed_again(loop):
    log = []
    keep = []

    async def main():
        g = _tracked_agen(log)
        keep.append(g)
        async for _ in g:
            pass

    run(loop, main())
    assert log == ["agen finalized"]
    run(loop, loop.shutdown_asyncgens())
    assert log == ["agen finalized"]


def test_garbage_collected_generator_is_finalized_in_the_loop(loop):
    log = []

    async def main():
        g = _tracked_agen(log)
        await g.__anext__()
        del g
        gc.collect()
        # The finalizer hook schedules aclose() on the loop; let it run.
        for _ in range(100):
            if log:
                break
            await asyncio.sleep(0)
        return list(log)

    assert run(loop, main()) == ["agen finalized"]


def test_asyncgen_hooks_installed_only_while_running(loop):
    sentinel_first = lambda agen: None  # noqa: E731
    sentinel_final = lambda agen: None  # noqa: E731
    old = sys.get_asyncgen_hooks()
    sys.set_asyncgen_hooks(firstiter=sentinel_first, finalizer=sentinel_final)
    try:
        async def main():
            hooks = sys.get_asyncgen_hooks()
            return hooks.firstiter, hooks.finalizer

        firstiter, finalizer = run(loop, main())
        assert firstiter is not None and firstiter is not sentinel_first
        assert finalizer is not None and finalizer is not sentinel_final
        # Restored after the run.
        assert sys.get_asyncgen_hooks() == (sentinel_first, sentinel_final)
    finally:
        sys.set_asyncgen_hooks(*old)


def test_asyncgen_hooks_restored_after_exception(loop):
    old = sys.get_asyncgen_hooks()

    async def main():
        raise ValueError

    with pytest.raises(ValueError):
        run(loop, main())
    assert sys.get_asyncgen_hooks() == old


def test_error_during_aclose_goes_to_exception_handler(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
    keep = []

    async def bad_agen():
        try:
            yield 1
        finally:
            raise RuntimeError("cleanup failed")

    async def main():
        g = bad_agen()
        keep.append(g)
        await g.__anext__()

    run(loop, main())
    run(loop, loop.shutdown_asyncgens())
    assert len(contexts) == 1
    ctx = contexts[0]
    assert isinstance(ctx["exception"], RuntimeError)
    assert ctx.get("asyncgen") is keep[0]
    assert isinstance(ctx["message"], str)


def test_generator_started_after_shutdown_warns(loop):
    run(loop, loop.shutdown_asyncgens())
    log = []

    async def main():
        g = _tracked_agen(log)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            await g.__anext__()
        await g.aclose()
        return [x.category for x in w]

    assert ResourceWarning in run(loop, main())


def test_asyncio_runner_finalizes_leftover_generators(loop_factory):
    log = []
    keep = []

    async def main():
        g = _tracked_agen(log)
        keep.append(g)
        await g.__anext__()

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main())
    assert log == ["agen finalized"]


def test_run_forever_installs_hooks_too(loop):
    seen = []
    loop.call_soon(lambda: seen.append(sys.get_asyncgen_hooks().finalizer))
    loop.call_soon(loop.stop)
    run_forever(loop)
    assert seen[0] is not None
