"""The programs in examples/ run as documented."""

import os
import pathlib
import re
import signal
import socket
import subprocess
import sys

import pytest

pytest.importorskip('pyloop._core.loop', reason='pyloop is not built')

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / 'examples'


def _run(*args, **kwargs):
    return subprocess.Popen([sys.executable, *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kwargs)


def test_streams_client_uppercases_through_pyloop():
    proc = _run(EXAMPLES / 'streams_client.py')
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.split() == ['EVENT', 'LOOP', 'IN', 'C', 'loop:', 'pyloop._eventloop.loop']
    assert err == ''


def test_echo_server_echoes_and_stops_on_sigint():
    proc = _run(EXAMPLES / 'echo_server.py', '--port', '0')
    try:
        line = proc.stdout.readline()
        match = re.search(r"\('127\.0\.0\.1', (\d+)\)", line)
        assert match, (line, proc.stderr.read() if proc.poll() is not None else '')
        with socket.create_connection(('127.0.0.1', int(match.group(1))), timeout=30) as conn:
            payload = os.urandom(100_000)
            conn.sendall(payload)
            received = b''
            while len(received) < len(payload):
                chunk = conn.recv(65536)
                assert chunk, 'server closed early'
                received += chunk
            assert received == payload
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


# ---- the toolbox examples: the seeds' programs written with pyloop --------------------


def _check_output(*args, timeout=60):
    proc = _run(*args)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert err == '', err
    return out


def test_spawn_join_example():
    out = _check_output(EXAMPLES / 'spawn_join.py')
    assert 'joined: 9' in out
    assert 'join: [0, 1, 4, 9, 16]' in out
    # square(i) sleeps (5 - i) * 10 ms: the JoinSet yields the largest first.
    assert 'JoinSet, in completion order: [16, 9, 4, 1, 0]' in out


def test_producer_consumer_example():
    out = _check_output(EXAMPLES / 'producer_consumer.py')
    assert 'items summed by the consumers: 499500 expected: 499500' in out


def test_select_example_cancels_and_awaits_the_loser():
    out = _check_output(EXAMPLES / 'select_cancel.py')
    assert 'winner: fast -> fast answer' in out
    assert "before select returned: ['slow lookup cleaned up']" in out


def test_timeout_example():
    out = _check_output(EXAMPLES / 'timeout.py')
    assert 'the block timed out after 50 ms' in out
    assert 'the awaitable timed out after 50 ms' in out
    assert 'in time: done' in out


def test_rate_limit_example():
    out = _check_output(EXAMPLES / 'rate_limit.py')
    elapsed = float(re.search(r'25 calls took ([\d.]+) s', out).group(1))
    # 5 at once, then 20 more at 20 ms each: never faster than the rate allows.
    assert elapsed >= 0.39


def test_spawn_blocking_example():
    out = _check_output(EXAMPLES / 'spawn_blocking.py')
    assert re.search(r"digests: \['[0-9a-f]{16}', '[0-9a-f]{16}', '[0-9a-f]{16}', '[0-9a-f]{16}'\]", out)
    assert 'the loop kept ticking meanwhile: True' in out


def test_read_file_example(tmp_path):
    path = tmp_path / 'words.txt'
    path.write_text(''.join(f'word{i} ü other\n' for i in range(50_000)), encoding='utf-8')
    out = _check_output(EXAMPLES / 'read_file.py', path)
    assert f'{path.stat().st_size} bytes' in out
    assert '50000 lines, 150000 words' in out


def _start_server(script, pattern):
    proc = _run(script, '--port', '0')
    line = proc.stdout.readline()
    match = re.search(pattern, line)
    if not match:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f'{script.name} did not start: {line!r} {err!r}')
    return proc, int(match.group(1))


def _stop_server(proc):
    try:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_tcp_echo_stream_example():
    proc, port = _start_server(EXAMPLES / 'tcp_echo_stream.py', r"listening on \('127\.0\.0\.1', (\d+)\)")
    try:
        payloads = [os.urandom(50_000) for _ in range(3)]
        conns = [socket.create_connection(('127.0.0.1', port), timeout=30) for _ in payloads]
        for conn, payload in zip(conns, payloads):
            conn.sendall(payload)
            conn.shutdown(socket.SHUT_WR)
        for conn, payload in zip(conns, payloads):
            received = b''
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                received += chunk
            conn.close()
            assert received == payload
    finally:
        _stop_server(proc)


def test_http_json_server_and_concurrent_client_examples():
    proc, port = _start_server(EXAMPLES / 'http_json_server.py', r'serving on http://127\.0\.0\.1:(\d+)')
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=30) as conn:
            conn.sendall(b'GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
            answer = b''
            while chunk := conn.recv(65536):
                answer += chunk
        assert answer.startswith(b'HTTP/1.1 200 OK\r\n')
        assert answer.endswith(b'{"hello": "world"}')
        out = _check_output(EXAMPLES / 'http_client.py', '--port', str(port),
                            '--requests', '300', '--connections', '6')
        assert '300 requests over 6 connections; sum of answers 89700, expected 89700' in out
    finally:
        _stop_server(proc)
