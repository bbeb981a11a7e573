"""tests/loop: a tighter per-test timeout than the project-wide 300 s.

Every loop run in these tests is also wrapped with its own ~30 s guard (see
_util.py), so a hang in a loop implementation fails one test, not the session.
"""

import pytest

LOOP_TEST_TIMEOUT = 120


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("timeout") is None and "/tests/loop/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.timeout(LOOP_TEST_TIMEOUT))
