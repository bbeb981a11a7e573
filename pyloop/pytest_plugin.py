"""pytest plugin: a project's async tests on pyloop with one switch, and virtual-clock fixtures.

Installing pyloop registers this module with pytest (entry point ``pyloop`` in the ``pytest11``
group).  It changes nothing until it is switched on -- a project's tests run exactly as before
-- and it is switched on for one run or for good::

    pytest --pyloop                 # this run
    pytest --no-pyloop              # this run, whatever the ini file says

    [pytest]                        # pytest.ini (or [tool.pytest.ini_options] in pyproject.toml)
    pyloop = true

``-p no:pyloop`` keeps it out of a run.  With ``PYTEST_DISABLE_PLUGIN_AUTOLOAD`` set, name it:
``-p pyloop.pytest_plugin`` (only then: where pytest loads it by itself, a second ``-p`` of the
module is refused as registered twice).

Switched on, every asyncio loop a test gets without naming its loop class is a pyloop loop:

* **pytest-asyncio** (1.x): through its ``pytest_asyncio_loop_factories`` hook where it has one
  (a project's own implementation of that hook wins: it names its loops itself; before pytest
  8.4 the hook's one factory shows in test ids as ``[pyloop]``), and through the event loop
  policy, which its runners use otherwise;
* **anyio**'s asyncio backend (``anyio_backend = "asyncio"``, or options without a
  ``loop_factory``/``use_uvloop`` of their own): anyio makes its loop through the policy;
* **plain** ``asyncio.run()``, ``asyncio.Runner()`` and ``asyncio.new_event_loop()`` in tests.

That is, the plugin installs :class:`pyloop.EventLoopPolicy` as asyncio's policy for the session
and puts back the previous one at the end.  A test that resets the policy to asyncio's default
(``asyncio.set_event_loop_policy(None)`` in a teardown, a common idiom) gets pyloop's back
before the next test; a test that installs a policy of its own keeps it.

Fixtures (available whether or not the switch is on; they need the test to run on a pyloop
loop, which the switch arranges):

* ``pyloop_clock`` -- the test's body runs on a paused clock that **auto-advances**: whenever
  every task waits, the clock jumps to the next timer, so a test of a one-hour timeout takes
  milliseconds (``pyloop.time.pause()``);
* ``pyloop_manual_clock`` -- a paused clock that only the test moves, with
  ``await pyloop_manual_clock.advance(seconds)`` (``pyloop.time.pause(auto_advance=False)``
  and ``pyloop.time.advance``).

Both give a :class:`VirtualClock`.  The clock is paused when the test's coroutine starts, on
the loop that runs it, and resumed when it ends; fixtures set up before the test ran in real
time.  They are for ``async def`` tests (pytest-asyncio's or anyio's).

Errors
------
pytest refuses an ini value that is not a boolean (a usage error); a test using a clock fixture
fails with a message naming the fix when it runs on a loop that is not pyloop's (no
``--pyloop``), when it is not an ``async def`` test, or when it asks for both clocks.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import warnings
from typing import Any, Callable

import pytest

__all__ = ["VirtualClock"]

_SWITCH_HELP = ("run asyncio tests (pytest-asyncio, anyio's asyncio backend, asyncio.run) on "
                "pyloop's event loop")
_STATE = pytest.StashKey["_Switch"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pyloop")
    group.addoption("--pyloop", action="store_true", dest="pyloop", default=None,
                    help=_SWITCH_HELP)
    group.addoption("--no-pyloop", action="store_false", dest="pyloop",
                    help="leave asyncio's loops alone (overrides the pyloop ini option)")
    parser.addini("pyloop", type="bool", default=False, help=_SWITCH_HELP)


def _enabled(config: pytest.Config) -> bool:
    option = config.getoption("pyloop", default=None)
    if option is not None:
        return bool(option)
    return bool(config.getini("pyloop"))      # pytest refuses a value that is not a boolean


class _LoopFactories:
    """pytest-asyncio's loop-factory hook, registered only while the switch is on.

    ``trylast``: the hook answers first-result-wins, so a project's own implementation (one that
    picks its loops per test) is asked first and keeps its say.
    """

    @pytest.hookimpl(trylast=True)
    def pytest_asyncio_loop_factories(self, config: pytest.Config, item: pytest.Item) -> dict:
        import pyloop

        return {"pyloop": pyloop.new_event_loop}


class _Switch:
    """What the switch changed, to undo it at the end of the session."""

    def __init__(self, config: pytest.Config) -> None:
        import pyloop

        self._config = config
        self._policy_class = pyloop.EventLoopPolicy
        self._previous = _get_policy()
        self._factories: _LoopFactories | None = None
        _set_policy(pyloop.EventLoopPolicy())
        hook = getattr(config.hook, "pytest_asyncio_loop_factories", None)
        if hook is not None and getattr(hook, "spec", None) is not None:
            self._factories = _LoopFactories()
            config.pluginmanager.register(self._factories, "pyloop-asyncio-loop-factories")

    def reinstall_if_reset(self) -> None:
        # A test that reset the policy to asyncio's default meant "no policy of mine": the
        # session's choice (pyloop) comes back.  Any other policy was installed on purpose.
        if type(_get_policy()) is asyncio.DefaultEventLoopPolicy:
            _set_policy(self._policy_class())

    def undo(self) -> None:
        if self._factories is not None:
            self._config.pluginmanager.unregister(self._factories)
        _set_policy(self._previous)

    def describe(self) -> str:
        via = "pyloop.EventLoopPolicy"
        if self._factories is not None:
            via += " and pytest-asyncio's loop factory hook"
        return f"pyloop: on (--pyloop / pyloop = true): asyncio loops are pyloop's, via {via}"


def _get_policy() -> asyncio.AbstractEventLoopPolicy:
    with warnings.catch_warnings():             # policies are deprecated from Python 3.14
        warnings.simplefilter("ignore", DeprecationWarning)
        return asyncio.get_event_loop_policy()


def _set_policy(policy: asyncio.AbstractEventLoopPolicy | None) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        asyncio.set_event_loop_policy(policy)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if _enabled(config):
        config.stash[_STATE] = _Switch(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is not None:
        del config.stash[_STATE]
        state.undo()


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = config.stash.get(_STATE, None)
    return [state.describe()] if state is not None else []


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    state = item.config.stash.get(_STATE, None)
    if state is not None:
        state.reinstall_if_reset()


# ---- the virtual clock -----------------------------------------------------------------------

class VirtualClock:
    """The paused clock of the loop that runs the test (``pyloop_clock``, ``pyloop_manual_clock``).

    * ``auto_advance``: True for ``pyloop_clock`` (the clock jumps to the next timer whenever
      every task waits), False for ``pyloop_manual_clock`` (only :meth:`advance` moves it).
    * ``loop``: the loop whose clock it is, once the test runs (None before).
    """

    def __init__(self, auto_advance: bool) -> None:
        self.auto_advance = auto_advance
        self.loop: asyncio.AbstractEventLoop | None = None

    def time(self) -> float:
        """The loop's time (``loop.time()``): where the virtual clock stands."""
        return self._running_loop().time()

    async def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` forward, firing each timer due on the way at its own
        deadline and letting the program settle there (``pyloop.time.advance``)."""
        from pyloop import time as ptime

        self._running_loop()
        await ptime.advance(seconds)

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        if self.loop is None:
            raise RuntimeError("the virtual clock starts with the test's coroutine: use it "
                               "inside the async test")
        return self.loop

    def __repr__(self) -> str:
        kind = "auto-advancing" if self.auto_advance else "manual"
        return f"<VirtualClock {kind} loop={self.loop!r}>"


_CLOCK = pytest.StashKey[VirtualClock]()


def _paused_test(func: Callable[..., Any], clock: VirtualClock) -> Callable[..., Any]:
    """``func`` (an ``async def`` test) made to run its body on ``clock``."""

    @functools.wraps(func)
    async def on_virtual_clock(*args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True        # a failing test's traceback starts in the test
        import pyloop
        from pyloop import time as ptime

        loop = asyncio.get_running_loop()
        if not isinstance(loop, pyloop.Loop):
            pytest.fail(
                f"the virtual clock needs the test to run on a pyloop loop, and it runs on "
                f"{type(loop).__module__}.{type(loop).__qualname__}: run pytest with --pyloop "
                f"(or set `pyloop = true` in the ini file)", pytrace=False)
        ptime.pause(clock.auto_advance, loop=loop)
        clock.loop = loop
        try:
            return await func(*args, **kwargs)
        finally:
            clock.loop = None
            # A loop that outlives the test (a module- or session-scoped one) runs the next
            # test on real time again.
            if not loop.is_closed() and ptime.is_paused(loop=loop):
                ptime.resume(loop=loop)

    return on_virtual_clock


def _clock_fixture(request: pytest.FixtureRequest, auto_advance: bool) -> Any:
    item = request.node
    name = request.fixturename
    if not isinstance(item, pytest.Function):
        raise pytest.UsageError(f"{name} is a function-scoped fixture for async tests")
    if _CLOCK in item.stash:
        pytest.fail(f"{item.nodeid}: use one of pyloop_clock and pyloop_manual_clock, not both",
                    pytrace=False)
    func = item.obj
    if hasattr(func, "hypothesis") or not inspect.iscoroutinefunction(func):
        pytest.fail(f"{item.nodeid}: {name} is for `async def` tests (pytest-asyncio's or "
                    f"anyio's); in a synchronous test, call pyloop.time.pause() inside the "
                    f"coroutine it runs", pytrace=False)
    clock = VirtualClock(auto_advance)
    item.stash[_CLOCK] = clock
    item.obj = _paused_test(func, clock)
    yield clock
    item.obj = func
    del item.stash[_CLOCK]


@pytest.fixture
def pyloop_clock(request: pytest.FixtureRequest) -> Any:
    """The test's body runs on a paused virtual clock that auto-advances (a :class:`VirtualClock`)."""
    yield from _clock_fixture(request, auto_advance=True)


@pytest.fixture
def pyloop_manual_clock(request: pytest.FixtureRequest) -> Any:
    """The test's body runs on a paused virtual clock that only ``await clock.advance(s)`` moves."""
    yield from _clock_fixture(request, auto_advance=False)
