"""Checks of the network benchmark plumbing: the C load generator and server, the Python servers, parsing.

    pytest bench/test_net.py

Not benchmarks (and not part of the normal suite: testpaths = ["tests"]); each check runs a server for a
fraction of a second on 127.0.0.1.  Run them after changing bench/loadgen/, bench/servers/ or netlib.py.
"""
from __future__ import annotations

import http.client
import os
import socket
import sys
import threading

import pytest

if not sys.platform.startswith("linux"):
    pytest.skip("the network benchmarks need Linux", allow_module_level=True)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import echo  # noqa: E402
import http_bench  # noqa: E402
import netlib  # noqa: E402


@pytest.fixture(scope="module")
def tools():
    try:
        return netlib.build_tool("echo_client"), netlib.build_tool("echo_server")
    except netlib.Unavailable as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize("size", [1, 1024, 102400])
def test_client_against_c_server(tools, size):
    client, server = tools
    with netlib.Server([server, "--port", "0"]) as srv:
        r = echo.run_client(client, srv, size, warmup=0.05, duration=0.2, cpu=None)
    assert r["ok"] and r["size"] == size and r["conns"] == echo.CONNS
    assert r["messages"] > 0 and r["msgs_per_s"] > 0
    assert 0 < r["latency_us"]["p50"] <= r["latency_us"]["p99"] <= r["latency_us"]["max"]
    assert r["server_cpu_s"]["user"] >= 0 and r["server_cpu_s"]["sys"] >= 0
    assert r["total_us"] == pytest.approx(r["user_us"] + r["sys_us"])
    assert r["server_switches"]["voluntary"] >= 0 and r["per_wakeup"] > 0


def _bad_echo_server(mangle):
    """A one-connection-at-a-time echo server in a thread that passes what it reads through mangle()."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    def handle(conn):
        with conn:
            try:
                while data := conn.recv(65536):
                    conn.sendall(mangle(data))
            except OSError:  # the client gave up on us, as it should
                pass

    threading.Thread(target=serve, daemon=True).start()
    return listener


@pytest.mark.parametrize("mangle, why", [
    (lambda d: d[:-1] + bytes([d[-1] ^ 1]), "the server echoed different bytes"),
    (lambda d: d + d, "the server sent back more than it was sent"),
])
def test_client_checks_the_echo(tools, mangle, why):
    client, _ = tools
    listener = _bad_echo_server(mangle)
    try:
        fake = netlib.Server([])
        fake.port = listener.getsockname()[1]
        fake.proc = type("P", (), {"pid": os.getpid(), "poll": lambda self: None, "wait": lambda self, t: 0})()
        with pytest.raises(RuntimeError, match=why):
            echo.run_client(client, fake, 100, warmup=0.0, duration=0.2, cpu=None)
    finally:
        listener.close()


@pytest.mark.parametrize("flavour", echo.FLAVOURS)
def test_python_echo_server(tools, flavour):
    client, _ = tools
    with netlib.python_server("echo.py", "asyncio", flavour, None, dict(os.environ)) as srv:
        r = echo.run_client(client, srv, 10240, warmup=0.05, duration=0.2, cpu=None)
    assert r["messages"] > 0


def test_unsupported_flavour_is_reported(tmp_path):
    script = tmp_path / "server.py"
    script.write_text("print('unsupported: create_server is not implemented yet', flush=True)\n"
                      f"raise SystemExit({netlib.UNSUPPORTED_EXIT})\n")
    with pytest.raises(netlib.Unsupported, match="not implemented yet"):
        netlib.Server([sys.executable, str(script)]).start()


def test_server_that_dies_at_start_is_an_error(tmp_path):
    script = tmp_path / "server.py"
    script.write_text("import sys; sys.stderr.write('boom\\n'); sys.exit(1)\n")
    with pytest.raises(netlib.ServerError, match="boom"):
        netlib.Server([sys.executable, str(script)]).start()


def test_http_server_keep_alive_and_close():
    pytest.importorskip("httptools")
    with netlib.python_server("http.py", "asyncio", "protocol", None, dict(os.environ)) as srv:
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
        for _ in range(3):  # three requests on one connection
            conn.request("GET", "/")
            resp = conn.getresponse()
            assert resp.status == 200 and resp.read() == b"Hello, World!"
            assert resp.getheader("Connection") is None
        conn.request("GET", "/", headers={"Connection": "close"})
        resp = conn.getresponse()
        assert resp.getheader("Connection") == "close" and resp.read() == b"Hello, World!"
        conn.close()
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
            s.sendall(b"NOT HTTP\r\n\r\n")
            assert s.recv(4096).startswith(b"HTTP/1.1 400")


def test_parse_wrk():
    out = http_bench.parse_wrk("""Running 2s test @ http://127.0.0.1:40000/
  2 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   621.33us  163.31us   6.02ms   89.44%
    Req/Sec    40.47k     2.89k   44.52k    72.50%
  Latency Distribution
     50%  598.00us
     75%  652.00us
     90%  751.00us
     99%    1.20ms
  161189 requests in 2.00s, 13.07MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
Requests/sec:  80530.40
Transfer/sec:      6.53MB
""")
    assert out["req_per_s"] == 80530.40 and out["requests"] == 161189 and out["seconds"] == 2.0
    assert out["p50"] == 598.0 and out["p99"] == 1200.0
    assert out["errors"] == 3 and out["non_2xx"] == 0


def test_proc_cpu_reads_this_process():
    user, sys_ = netlib.proc_cpu(os.getpid())
    assert user > 0 and sys_ >= 0


def test_split_total_pools_the_user_share():
    user, sys_ = netlib.split_total(10.0, [0.1, 0.3], [0.5, 0.3])
    assert user == pytest.approx(10 / 3) and sys_ == pytest.approx(20 / 3)
    assert netlib.split_total(None, [], []) == (None, None)
