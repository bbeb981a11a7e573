"""tests/integration: real servers and clients on loopback, on pyloop and asyncio.

Fixtures
--------
``postgres``   a session-wide PostgreSQL (``.dsn``), see services.py.
``redis_server`` a session-wide redis-server (``.url``).
``certificate`` a self-signed certificate for localhost (openssl), see services.py.
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
import shutil
import tempfile

import pytest

from .services import PostgresServer, RedisServer, ServiceUnavailable, make_certificate

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


def _start(what: str, start):
    try:
        return start()
    except ServiceUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{what} is required under CI but is unavailable: {exc}", pytrace=False)
        pytest.skip(f"{what} unavailable: {exc}")


@pytest.fixture(scope="session")
def certificate():
    """A self-signed certificate for localhost/127.0.0.1 (``.server_context()``, ``.client_context()``)."""
    directory = tempfile.mkdtemp(prefix="pyloop-tls-")
    try:
        yield _start("a TLS certificate (openssl)", lambda: make_certificate(directory))
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres(request):
    """PostgreSQL on 127.0.0.1 (with TLS when a certificate can be made) and on a Unix socket."""
    try:
        cert = request.getfixturevalue("certificate")
    except (pytest.skip.Exception, pytest.fail.Exception):
        cert = None  # only the TLS test needs it, and it reports why
    server = _start("PostgreSQL", PostgresServer(certificate=cert).start)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server():
    server = _start("redis-server", RedisServer().start)
    yield server
    server.stop()


@pytest.fixture
def pyloop_factory():
    import pyloop

    return pyloop.new_event_loop
