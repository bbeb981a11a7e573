"""Shared fixtures: run every loop test against several event-loop implementations.

The same behaviour test runs once per implementation.  By default that is stock
asyncio (the reference) and pyloop; a developer can add uvloop (or drop one) to
compare implementations:

    PYLOOP_TEST_LOOPS=asyncio,pyloop,uvloop python -m pytest tests/loop -q

Fixtures
--------
``loop_impl``     the implementation under test: ``.name`` and ``.new_loop()`` (untracked).
``loop_name``     its id: ``"asyncio"``, ``"pyloop"`` or ``"uvloop"``.
``loop_factory``  a callable returning a new loop of that implementation.  Every loop
                  it made must be closed by the end of the test; one left open is
                  closed for you and the test fails, naming how many leaked.
``loop``          one loop made by ``loop_factory``, closed at teardown (after its
                  async generators and default executor are shut down).

Markers
-------
``@pytest.mark.skip_loops("asyncio", reason="...")`` skips the test on the named
implementations, for behaviour that one implementation deliberately does not
guarantee (the reason says why).
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
from dataclasses import dataclass
from typing import Callable

import pytest

DEFAULT_LOOPS = "asyncio,pyloop"

# A shell without job control starts a background command (`bash .ci/run &`, nohup, some CI
# runners) with SIGINT ignored, and Python then leaves it ignored instead of raising
# KeyboardInterrupt.  Ignored dispositions survive exec, so every child a test starts to check
# Ctrl-C handling would ignore the SIGINT it is sent and hang.  A handler (unlike SIG_IGN) is
# reset to the default by exec: installing Python's own here gives the children the signal
# behaviour of a terminal session.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@dataclass(frozen=True)
class LoopImpl:
    """One event-loop implementation: its name and an untracked loop constructor."""

    name: str
    new_loop: Callable[[], asyncio.AbstractEventLoop]

    def __repr__(self) -> str:  # shows up in pytest's failure output
        return f"LoopImpl({self.name!r})"


def _load_asyncio():
    return LoopImpl("asyncio", asyncio.new_event_loop)


def _load_pyloop():
    import pyloop

    # Import alone is not enough while the package is being written: make sure a
    # loop can actually be built (and closed) before running dozens of tests on it.
    probe = pyloop.new_event_loop()
    probe.close()
    return LoopImpl("pyloop", pyloop.new_event_loop)


def _load_uvloop():
    import uvloop

    return LoopImpl("uvloop", uvloop.new_event_loop)


_LOADERS = {"asyncio": _load_asyncio, "pyloop": _load_pyloop, "uvloop": _load_uvloop}


def _selected_loops() -> list[str]:
    raw = os.environ.get("PYLOOP_TEST_LOOPS", DEFAULT_LOOPS)
    names = [n.strip() for n in raw.split(",") if n.strip()]
    unknown = [n for n in names if n not in _LOADERS]
    if unknown:
        raise pytest.UsageError(
            f"PYLOOP_TEST_LOOPS names unknown loop(s) {unknown}; known: {sorted(_LOADERS)}"
        )
    return names


def _loop_params():
    params = []
    for name in _selected_loops():
        try:
            impl = _LOADERS[name]()
        except Exception as exc:  # ImportError, or a half-built package
            reason = f"{name} is not usable here: {type(exc).__name__}: {exc}"
            params.append(pytest.param(None, id=name, marks=pytest.mark.skip(reason=reason)))
        else:
            params.append(pytest.param(impl, id=name))
    return params


LOOP_PARAMS = _loop_params()


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "skip_loops(*names, reason): skip the test on the named loop implementations",
    )


@pytest.fixture(params=LOOP_PARAMS)
def loop_impl(request) -> LoopImpl:
    impl: LoopImpl = request.param
    for marker in request.node.iter_markers("skip_loops"):
        if impl.name in marker.args:
            pytest.skip(marker.kwargs.get("reason", f"not applicable to {impl.name}"))
    return impl


@pytest.fixture
def loop_name(loop_impl) -> str:
    return loop_impl.name


def _close_loop(loop) -> None:
    """Close a loop the way a careful application does."""
    if loop.is_closed():
        return
    if not loop.is_running():
        for step in (loop.shutdown_asyncgens, loop.shutdown_default_executor):
            try:
                loop.run_until_complete(asyncio.wait_for(step(), 30))
            except Exception:
                pass  # the test under way reports its own failure
    loop.close()


@pytest.fixture
def loop_factory(loop_impl):
    created = []

    def factory():
        new = loop_impl.new_loop()
        created.append(new)
        return new

    factory.impl = loop_impl
    yield factory

    leaked = [lp for lp in created if not lp.is_closed()]
    running = [lp for lp in leaked if lp.is_running()]
    for lp in leaked:
        if not lp.is_running():
            _close_loop(lp)
    # A loop the test set as the thread's current loop must not outlive it.
    asyncio.set_event_loop(None)
    del created[:]
    gc.collect()
    if running:
        pytest.fail(f"{len(running)} {loop_impl.name} loop(s) still running at teardown")
    if leaked:
        pytest.fail(f"test leaked {len(leaked)} unclosed {loop_impl.name} loop(s)")


@pytest.fixture
def loop(loop_factory):
    lp = loop_factory()
    yield lp
    if lp.is_running():
        return  # loop_factory's teardown reports this
    _close_loop(lp)


def pytest_collection_finish(session):
    """Move everything alive after collection (modules, test parameters) out of the collector's reach.

    Each loop test ends with a full ``gc.collect()`` so that what it leaked is finalised (and
    reported) while it is still the test under way.  With aiohttp, hypothesis and friends
    imported, a full collection walks ~10^5 long-lived objects (~40 ms); frozen, it only walks
    what the tests themselves create.
    """
    gc.collect()
    gc.freeze()


def _dependency_report() -> list[str]:
    """Which dependency set this run uses (tools/test.sh sets PYLOOP_TEST_DEPS), and in
    ``latest`` mode how the installed releases differ from the pins."""
    mode = os.environ.get("PYLOOP_TEST_DEPS")
    if mode is None:
        return ["dependencies: as installed (not run through tools/test.sh)"]
    if mode != "latest":
        return [f"dependencies: {mode} (constraints/py{sys.version_info[0]}.{sys.version_info[1]}.txt)"]
    from _devenv import devenv

    pins = devenv.read_pins(devenv.pins_file(sys.version_info[:2]))
    moved = devenv.pin_mismatches(pins, devenv.installed_versions())
    return ["dependencies: latest releases; differences from the pins:",
            *(f"    {line}" for line in moved or ["none"])]


def pytest_report_header(config):
    return [f"event loops under test: {', '.join(_selected_loops())} (PYLOOP_TEST_LOOPS)",
            *_dependency_report()]


# Under CI a skipped integration test is a failure: everything those tests need is
# installed by the test command (the test extra, tools/ci_setup.sh), so a skip there
# means something is missing, and a run that passes by skipping would hide it.
_SKIP_FAILS_UNDER_CI = "/tests/integration/"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not (report.skipped and os.environ.get("CI") and not hasattr(report, "wasxfail")):
        return
    if _SKIP_FAILS_UNDER_CI not in str(item.path).replace("\\", "/"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"skipped under CI, where integration tests must run: {reason}"


if sys.platform == "win32":  # pragma: no cover - pyloop is POSIX-only
    collect_ignore_glob = ["loop/*"]
