"""tests/loop: a tighter per-test timeout than the project-wide 300 s, and a leak check.

Every loop run in these tests is also wrapped with its own ~30 s guard (see
_util.py), so a hang in a loop implementation fails one test, not the session.
"""

import asyncio

import pytest

LOOP_TEST_TIMEOUT = 120


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("timeout") is None and "/tests/loop/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.timeout(LOOP_TEST_TIMEOUT))


@pytest.fixture(autouse=True)
def _no_running_loop_leaks():
    """A test must never leave a loop registered as running in the main thread."""
    yield
    running = asyncio._get_running_loop()
    if running is not None:
        asyncio._set_running_loop(None)
        pytest.fail(f"test left {running!r} registered as the running loop")
