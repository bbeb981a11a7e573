"""Checks of the TLS benchmark plumbing: the C TLS echo client, the TLS servers, the report.

    pytest bench/test_tls_bench.py

Not benchmarks (and not part of the normal suite); each check runs a server for a fraction of a second on
127.0.0.1.  Run them after changing bench/loadgen/tls_echo_client.c, bench/servers/tls.py or tls_bench.py.
"""
from __future__ import annotations

import http.client
import os
import ssl
import sys

import pytest

if not sys.platform.startswith("linux"):
    pytest.skip("the network benchmarks need Linux", allow_module_level=True)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import echo  # noqa: E402
import netlib  # noqa: E402
import tls_bench  # noqa: E402


@pytest.fixture(scope="module")
def setup():
    why = tls_bench.prerequisites()
    if why:
        pytest.skip(why)
    cert, key = tls_bench.make_certificate()
    return tls_bench.build_client(), dict(os.environ, PYLOOP_BENCH_TLS_CERT=cert, PYLOOP_BENCH_TLS_KEY=key)


@pytest.mark.parametrize("loop", ["asyncio", "pyloop"])
@pytest.mark.parametrize("size", [1, 1024, 65536])
def test_tls_client_against_tls_echo_server(setup, loop, size):
    client, env = setup
    with tls_bench.tls_server(loop, "echo", None, env) as srv:
        echo.prime(client, srv, None)
        r = echo.run_client(client, srv, size, warmup=0.05, duration=0.2, cpu=None)
    assert r["ok"] and r["size"] == size and r["messages"] > 0
    assert r["tls"].startswith("TLS")
    assert r["total_us"] == pytest.approx(r["user_us"] + r["sys_us"])


def test_https_server_answers(setup):
    pytest.importorskip("httptools")
    _, env = setup
    with tls_bench.tls_server("asyncio", "https", None, env) as srv:
        ctx = ssl.create_default_context(cafile=env["PYLOOP_BENCH_TLS_CERT"])
        conn = http.client.HTTPSConnection("127.0.0.1", srv.port, timeout=5, context=ctx)
        for _ in range(2):
            conn.request("GET", "/")
            resp = conn.getresponse()
            assert resp.status == 200 and resp.read() == b"Hello, World!"
        conn.close()


def test_a_loop_without_tls_is_unsupported(setup):
    pytest.importorskip("rloop")
    _, env = setup
    with pytest.raises(netlib.Unsupported, match="NotImplementedError|no TLS"):
        tls_bench.tls_server("rloop", "echo", None, env).start()


def test_report_with_one_round(setup, tmp_path):
    """The tables, targets and files come out of a real (tiny) measurement of two loops."""
    client, env = setup
    cells = {(b.name, name): echo.Cell() for b in tls_bench.BENCHMARKS[:1] for name in ("uvloop", "pyloop")}
    for name in ("uvloop", "pyloop"):
        try:
            with tls_bench.tls_server(name, "echo", None, env) as srv:
                cells[("tls_echo_1k", name)].runs.append(
                    echo.run_client(client, srv, 1024, warmup=0.05, duration=0.2, cpu=None))
        except netlib.Unsupported as exc:
            cells[("tls_echo_1k", name)].unsupported = str(exc)
    args = type("Args", (), {"out": str(tmp_path), "no_plot": True})()
    versions = {"uvloop": "uvloop", "pyloop": "pyloop"}
    status = tls_bench._report(args, ["uvloop", "pyloop"], tls_bench.SIZES[:1], False, cells, versions, {},
                               "test")
    assert status == 0
    text = (tmp_path / "tls.md").read_text()
    assert "TLS echo, 1 KiB messages" in text and "pyloop >= 1.3x uvloop" in text
