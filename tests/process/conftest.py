"""tests/process: subprocesses and signal handlers, on asyncio and pyloop.

Until ``pyloop.Loop`` includes ``SubprocessMixin`` and ``SignalMixin`` the
pyloop runs use a local subclass that puts them in front of it (and calls
their close hooks from ``_close_services``); see ``_util.pyloop_class``.
"""

import dataclasses

import pytest

from ._util import pyloop_class

PROCESS_TEST_TIMEOUT = 120


def pytest_collection_modifyitems(config, items):
    for item in items:
        if (item.get_closest_marker("timeout") is None
                and "/tests/process/" in str(item.path).replace("\\", "/")):
            item.add_marker(pytest.mark.timeout(PROCESS_TEST_TIMEOUT))


@pytest.fixture
def loop_impl(loop_impl):
    """The conftest's implementation, with pyloop given the process mixins
    while pyloop.Loop does not have them yet."""
    if loop_impl.name == "pyloop":
        cls = pyloop_class()
        return dataclasses.replace(loop_impl, new_loop=cls)
    return loop_impl
