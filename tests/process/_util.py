"""Helpers for the process tests: the pyloop class under test, running with
a timeout, and looking at our child processes in /proc."""

import asyncio
import dataclasses
import os
import sys

import pytest

TIMEOUT = 60.0
PY = sys.executable

# Programs the tests run.
CAT = [PY, "-c", "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read())"]
BLOCKED = [PY, "-c", "import sys; sys.stdin.buffer.read()"]   # until stdin closes
SLEEPER = [PY, "-c", "import time; time.sleep(3600)"]

_classes = {}


def _has_pidfd():
    if not hasattr(os, "pidfd_open"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return False
    return True


HAS_PIDFD = _has_pidfd()

# pyloop's child reapers, and the Loop attributes that select each (see pyloop_class).
REAPER_ATTRS = {
    "pidfd": {},
    "sigchld": {"_use_pidfd": False},
    "thread": {"_use_pidfd": False, "_use_sigchld": False},
}


def pyloop_class(**attrs):
    """``pyloop.Loop``, or a subclass of it with ``attrs`` set (e.g. ``_use_pidfd=False``
    to test another child reaper)."""
    import pyloop

    if not attrs:
        return pyloop.Loop
    key = tuple(sorted(attrs.items()))
    if key not in _classes:
        _classes[key] = type("Loop", (pyloop.Loop,), dict(attrs))
    return _classes[key]


def run(loop, aw, timeout=TIMEOUT):
    return loop.run_until_complete(asyncio.wait_for(aw, timeout))


async def spin(n=5):
    """Let the loop run callbacks a few times."""
    for _ in range(n):
        await asyncio.sleep(0)


def children():
    """{pid: state letter} of this process's direct children (from /proc)."""
    me = os.getpid()
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may contain spaces and parens.
        rest = stat[stat.rindex(b")") + 2:].split()
        if int(rest[1]) == me:
            found[int(name)] = rest[0].decode()
    return found


def assert_no_new_children(before):
    """No child started since ``before`` (a :func:`children` snapshot) is left, and none is a
    zombie.  The states of children that were there already are not compared: another test's
    helper that is still running may be R or S at either moment."""
    now = children()
    assert {pid: state for pid, state in now.items() if pid not in before or state == "Z"} == {}


def assert_reaped(pid):
    """``pid`` must be gone: neither running nor a zombie of ours."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return
    raise AssertionError(f"pid {pid} is still our child (running or zombie)")


def open_fds():
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture(params=list(REAPER_ATTRS))
def reaper(request):
    """The name of one of pyloop's child reapers (REAPER_ATTRS)."""
    return request.param


@pytest.fixture
def loop_impl(loop_impl, reaper):
    """pyloop with the reaper chosen; the other loops once, with their default.  (A test module
    opts in by importing ``reaper`` and ``loop_impl`` from here.)"""
    if loop_impl.name != "pyloop":
        if reaper != "pidfd":
            pytest.skip("pyloop's reaper variants")
        return loop_impl
    if reaper == "pidfd" and not HAS_PIDFD:
        pytest.skip("no pidfd_open here")
    return dataclasses.replace(loop_impl, new_loop=pyloop_class(**REAPER_ATTRS[reaper]))
