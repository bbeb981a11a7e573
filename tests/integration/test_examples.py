"""The programs in examples/ run as documented."""

import os
import pathlib
import re
import signal
import socket
import subprocess
import sys

import pytest

pytest.importorskip('pyloop._loop', reason='pyloop is not built')

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / 'examples'


def _run(*args, **kwargs):
    return subprocess.Popen([sys.executable, *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kwargs)


def test_streams_client_uppercases_through_pyloop():
    proc = _run(EXAMPLES / 'streams_client.py')
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.split() == ['EVENT', 'LOOP', 'IN', 'C', 'loop:', 'pyloop._event_loop']
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
