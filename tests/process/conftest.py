"""tests/process: subprocesses and signal handlers, on asyncio and pyloop."""

import pytest

PROCESS_TEST_TIMEOUT = 120


def pytest_collection_modifyitems(config, items):
    for item in items:
        if (item.get_closest_marker("timeout") is None
                and "/tests/process/" in str(item.path).replace("\\", "/")):
            item.add_marker(pytest.mark.timeout(PROCESS_TEST_TIMEOUT))

