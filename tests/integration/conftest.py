"""tests/integration: real servers and clients on loopback, on pyloop and asyncio.

Fixtures
--------
``postgres``   a session-wide PostgreSQL (``.dsn``), see services.py.
``redis_server`` a session-wide redis-server (``.url``).
``pyloop_factory`` ``pyloop.new_event_loop``, for tests that run on pyloop only.

Both services start on first use.  When one cannot start the tests that need it
are skipped with the reason -- unless the ``CI`` environment variable is set,
where they fail: CI must never pass by skipping them.

Markers
-------
``@pytest.mark.xfail_pyloop(reason=...)`` marks a test parametrized over loops
as a known pyloop bug: strict xfail on pyloop, a normal test on the others.
"""

from __future__ import annotations

import os

import pytest

from .services import PostgresServer, RedisServer, ServiceUnavailable

INTEGRATION_TEST_TIMEOUT = 90


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "xfail_pyloop(reason): a known pyloop bug; strict xfail on the pyloop parameter only")


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = str(item.path).replace("\\", "/")
        if "/tests/integration/" not in path:
            continue
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(INTEGRATION_TEST_TIMEOUT))
        marker = item.get_closest_marker("xfail_pyloop")
        callspec = getattr(item, "callspec", None)
        if marker is not None and callspec is not None:
            impl = callspec.params.get("loop_impl")
            if getattr(impl, "name", None) == "pyloop":
                item.add_marker(pytest.mark.xfail(strict=True, reason=marker.kwargs.get("reason", "")))


def _start(service_cls):
    try:
        return service_cls().start()
    except ServiceUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{service_cls.__name__} is required under CI but did not start: {exc}", pytrace=False)
        pytest.skip(f"{service_cls.__name__} unavailable: {exc}")


@pytest.fixture(scope="session")
def postgres():
    server = _start(PostgresServer)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server():
    server = _start(RedisServer)
    yield server
    server.stop()


@pytest.fixture
def pyloop_factory():
    import pyloop

    return pyloop.new_event_loop
