"""pyloop.serve: N worker processes on one port, graceful stop, crash reports.

Each test starts a real server program (APP below) in a subprocess on port 0 and talks to it
over TCP.  The program's stderr is read line by line in a thread: the supervisor and the
workers say there when they are ready, stopping, or dead, and the tests wait for those lines
(with a generous deadline) instead of sleeping.

The APP speaks a line protocol, one request per connection:
  ``pid``   -> ``<pid> <worker index>`` and the connection closes;
  ``wait-stop`` -> ``waiting``, then ``stopping <worker index>`` once the worker is told to stop;
  ``slow``  -> ``started <pid>`` at once, then waits for the client's ``finish`` line, answers
               ``done <pid>`` and closes: a request that is in flight for as long as the test
               wants.
"""

from __future__ import annotations

import asyncio
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip('pyloop._core.loop', reason='pyloop is not built')

from pyloop.serving import current_worker, serve, serve_protocol  # noqa: E402

pytestmark = pytest.mark.skipif(not hasattr(os, 'fork'), reason='pyloop.serve forks (POSIX)')

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 60.0
REUSEPORT_BALANCES = sys.platform.startswith('linux') and hasattr(socket, 'SO_REUSEPORT')

APP = textwrap.dedent('''
    import argparse, asyncio, os, sys
    from pyloop.serving import current_worker, serve, serve_protocol

    async def handle(reader, writer):
        line = (await reader.readline()).strip()
        if line == b'pid':
            writer.write(f'{os.getpid()} {current_worker().index}\\n'.encode())
        elif line == b'wait-stop':
            writer.write(b'waiting\\n')
            await writer.drain()
            worker = current_worker()
            await worker.stopping.wait()
            writer.write(f'stopping {worker.index}\\n'.encode())
        elif line == b'slow':
            writer.write(f'started {os.getpid()}\\n'.encode())
            await writer.drain()
            if (await reader.readline()).strip() == b'finish':
                writer.write(f'done {os.getpid()}\\n'.encode())
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def start(sock):
        if os.environ.get('APP_FAIL_START'):
            raise RuntimeError('start failed on purpose')
        return await asyncio.start_server(handle, sock=sock)

    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport
        def data_received(self, data):
            self.transport.write(data)
            if data.endswith(b'\\n'):
                self.transport.close()

    p = argparse.ArgumentParser()
    p.add_argument('--workers', type=int, default=2)
    p.add_argument('--shared-socket', action='store_true')
    p.add_argument('--restart', action='store_true')
    p.add_argument('--grace', type=float, default=30.0)
    p.add_argument('--echo', action='store_true')
    p.add_argument('--ready-raises', action='store_true')
    p.add_argument('--asyncio-loop', action='store_true')
    a = p.parse_args()
    kw = dict(workers=a.workers, reuse_port=False if a.shared_socket else None,
              restart=a.restart, grace=a.grace)
    if a.asyncio_loop:
        kw['loop_factory'] = asyncio.new_event_loop
    if a.ready_raises:
        def ready(info):
            print(f'ready: pids {", ".join(map(str, info.pids))}', file=sys.stderr, flush=True)
            raise RuntimeError('ready failed on purpose')
        kw['ready'] = ready
    if a.echo:
        sys.exit(serve_protocol(Echo, '127.0.0.1', 0, **kw))
    sys.exit(serve(start, host='127.0.0.1', port=0, **kw))
''')

READY = re.compile(r'pyloop\.serve: serving on 127\.0\.0\.1:(\d+) with (\d+) workers? '
                   r'\((SO_REUSEPORT|one shared socket); pids ([\d, ]+)\)')


class Server:
    """The APP in a subprocess, with its stderr collected line by line."""

    def __init__(self, tmp_path: Path, *args: str, env: dict[str, str] | None = None,
                 new_session: bool = False, expect_ready: bool = True) -> None:
        self.script = script = tmp_path / 'app.py'
        script.write_text(APP)
        full_env = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
        self.proc = subprocess.Popen([sys.executable, str(script), *args], env=full_env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     start_new_session=new_session)
        self.lines: list[str] = []
        self._pos = 0
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._eof = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if expect_ready:
            match = self.wait_for(READY)
            self.port = int(match.group(1))
            self.reuse_port = match.group(3) == 'SO_REUSEPORT'
            self.pids = [int(p) for p in match.group(4).split(', ')]

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._queue.put(line.rstrip('\n'))
        self._queue.put(None)

    def wait_for(self, pattern: re.Pattern[str] | str) -> re.Match[str]:
        """The first line after the previous match that matches; fails after DEADLINE or at
        EOF."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + DEADLINE
        while True:
            while self._pos < len(self.lines):
                line = self.lines[self._pos]
                self._pos += 1
                if m := regex.search(line):
                    return m
            if self._eof.is_set():
                pytest.fail(f'stderr closed before a line matching {regex.pattern!r}:\n'
                            + '\n'.join(self.lines))
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f'no line matching {regex.pattern!r} within {DEADLINE} s; '
                            f'stderr so far:\n' + '\n'.join(self.lines))
            if line is None:
                self._eof.set()
            else:
                self.lines.append(line)

    def __enter__(self) -> 'Server':
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(DEADLINE)
        # Never leave a worker behind, and never signal a stranger: pids are reused (pid_max
        # may be 32768), so only a process still running this test's script is killed.
        for pid in getattr(self, 'pids', []):
            if self._runs_our_script(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def _runs_our_script(self, pid: int) -> bool:
        try:
            with open(f'/proc/{pid}/cmdline', 'rb') as f:
                return str(self.script).encode() in f.read().split(b'\0')
        except OSError:
            return False        # gone, or no /proc: then the worker's lifeline stops it

    def exit_status(self) -> int:
        """Wait for the parent to exit and every worker to close stderr; the parent's status."""
        code = self.proc.wait(DEADLINE)
        self.drain()
        return code

    def drain(self) -> str:
        """Read stderr to EOF (every process holding it has exited); all of it."""
        deadline = time.monotonic() + DEADLINE
        while not self._eof.is_set():
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail('stderr stayed open: a worker is still running?\n'
                            + '\n'.join(self.lines))
            if line is None:
                self._eof.set()
            else:
                self.lines.append(line)
        return '\n'.join(self.lines)

    def request(self, line: bytes = b'pid\n') -> str:
        with socket.create_connection(('127.0.0.1', self.port), timeout=DEADLINE) as conn:
            conn.sendall(line)
            return _read_all(conn)



def _read_all(conn: socket.socket) -> str:
    data = b''
    while chunk := conn.recv(4096):
        data += chunk
    return data.decode()


def _read_line(conn: socket.socket) -> str:
    data = b''
    while not data.endswith(b'\n'):
        chunk = conn.recv(1)
        assert chunk, f'connection closed after {data!r}'
        data += chunk
    return data.decode().strip()


def _start_slow_request(server: Server) -> tuple[socket.socket, int]:
    conn = socket.create_connection(('127.0.0.1', server.port), timeout=DEADLINE)
    conn.sendall(b'slow\n')
    started = _read_line(conn)
    assert started.startswith('started ')
    return conn, int(started.split()[1])


# ---- spreading the load ----------------------------------------------------------------------

def test_two_workers_share_the_port_and_both_answer(tmp_path):
    with Server(tmp_path, '--workers', '2') as server:
        assert len(server.pids) == 2 and server.proc.pid not in server.pids
        answers = [server.request().split() for _ in range(200)]
        pids = {int(pid) for pid, _ in answers}
        assert pids <= set(server.pids)
        assert {int(index) for _, index in answers} <= {0, 1}
        if server.reuse_port:
            # SO_REUSEPORT hashes each connection's addresses to one of the two listening
            # sockets: 200 connections all landing on one of them has probability 2**-199.
            assert len(pids) == 2, answers
        else:  # pragma: no cover - not Linux: one shared socket, the kernel picks freely
            assert REUSEPORT_BALANCES is False
        server.proc.send_signal(signal.SIGTERM)
        assert server.exit_status() == 0, server.drain()


def test_reuse_port_is_the_default_on_linux(tmp_path):
    with Server(tmp_path, '--workers', '1') as server:
        assert server.reuse_port == REUSEPORT_BALANCES
        server.proc.send_signal(signal.SIGTERM)
        assert server.exit_status() == 0


def test_shared_socket_fallback_serves_and_stops(tmp_path):
    # What non-Linux systems get: the parent listens once and every worker accepts from that
    # inherited socket.  Which worker wins a connection is up to the kernel: not asserted.
    with Server(tmp_path, '--workers', '2', '--shared-socket') as server:
        assert not server.reuse_port
        answers = [server.request().split() for _ in range(20)]
        assert {int(pid) for pid, _ in answers} <= set(server.pids)
        conn, _ = _start_slow_request(server)
        with conn:
            server.proc.send_signal(signal.SIGTERM)
            for _ in range(2):
                server.wait_for('stopped accepting')
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(('127.0.0.1', server.port), timeout=DEADLINE)
            conn.sendall(b'finish\n')
            assert _read_all(conn).startswith('done ')
        assert server.exit_status() == 0, server.drain()


def test_serve_protocol_echoes(tmp_path):
    with Server(tmp_path, '--workers', '2', '--echo') as server:
        for i in range(10):
            assert server.request(b'x' * i + b'\n') == 'x' * i + '\n'
        server.proc.send_signal(signal.SIGTERM)
        assert server.exit_status() == 0, server.drain()


# ---- graceful stop ---------------------------------------------------------------------------

@pytest.mark.parametrize('how', ['SIGTERM to the parent', 'SIGINT to the parent',
                                 'Ctrl-C (SIGINT to the process group)',
                                 'SIGTERM to the parent, workers on asyncio loops'])
def test_stop_signal_lets_the_request_in_flight_finish(tmp_path, how):
    extra = ['--asyncio-loop'] if 'asyncio' in how else []
    with Server(tmp_path, '--workers', '2', *extra, new_session=True) as server:
        conn, worker_pid = _start_slow_request(server)
        with conn:
            if how.startswith('SIGTERM'):
                server.proc.send_signal(signal.SIGTERM)
            elif how.startswith('SIGINT'):
                server.proc.send_signal(signal.SIGINT)
            else:
                os.killpg(server.proc.pid, signal.SIGINT)
            server.wait_for(r'received: stopping 2 workers')
            for _ in range(2):
                server.wait_for('stopped accepting')
            # Nobody accepts any more: new connections are refused, not left hanging...
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(('127.0.0.1', server.port), timeout=DEADLINE)
            # ...while the request in flight still gets its answer.
            assert server.proc.poll() is None
            conn.sendall(b'finish\n')
            assert _read_all(conn) == f'done {worker_pid}\n'
        assert server.exit_status() == 0, server.drain()
        log = server.drain()
        assert 'killed' not in log and 'failed' not in log, log


def test_current_worker_stopping_tells_handlers_to_wind_down(tmp_path):
    # How an HTTP server closes idle keep-alive connections promptly: it waits on
    # current_worker().stopping.
    with Server(tmp_path, '--workers', '2') as server:
        with socket.create_connection(('127.0.0.1', server.port), timeout=DEADLINE) as conn:
            conn.sendall(b'wait-stop\n')
            assert _read_line(conn) == 'waiting'
            server.proc.send_signal(signal.SIGTERM)
            assert re.fullmatch(r'stopping [01]\n', _read_all(conn))
        assert server.exit_status() == 0, server.drain()


def test_grace_period_bounds_the_wait(tmp_path):
    with Server(tmp_path, '--workers', '1', '--grace', '0.5') as server:
        conn, _ = _start_slow_request(server)
        with conn:
            server.proc.send_signal(signal.SIGTERM)
            server.wait_for('grace period ran out')
            try:
                assert _read_all(conn) == ''       # closed without an answer
            except ConnectionResetError:
                pass
        # A worker that stopped on time after its grace period is not a failure.
        assert server.exit_status() == 0, server.drain()


def test_second_signal_kills_the_workers(tmp_path):
    with Server(tmp_path, '--workers', '2') as server:
        conn, _ = _start_slow_request(server)
        with conn:
            server.proc.send_signal(signal.SIGTERM)
            server.wait_for('stopped accepting')
            server.proc.send_signal(signal.SIGTERM)
            server.wait_for('a second SIGTERM')
            assert server.exit_status() == 1
        assert 'killed by SIGKILL' in server.drain()


# ---- failures --------------------------------------------------------------------------------

def test_worker_killed_is_reported_and_fails_the_exit_status(tmp_path):
    with Server(tmp_path, '--workers', '2') as server:
        victim, survivor = server.pids
        os.kill(victim, signal.SIGKILL)
        server.wait_for(rf'worker 0 \(pid {victim}\) was killed by SIGKILL; 1 of 2 workers left')
        # The survivor serves every connection now.
        assert {int(server.request().split()[0]) for _ in range(20)} == {survivor}
        server.proc.send_signal(signal.SIGTERM)
        assert server.exit_status() == 1, server.drain()


def test_worker_killed_is_restarted_when_asked(tmp_path):
    with Server(tmp_path, '--workers', '2', '--restart') as server:
        victim = server.pids[1]
        os.kill(victim, signal.SIGKILL)
        server.wait_for(rf'worker 1 \(pid {victim}\) was killed by SIGKILL; restarting it')
        new_pid = int(server.wait_for(r'worker 1 restarted \(pid (\d+)\)').group(1))
        server.pids.append(new_pid)
        assert new_pid != victim
        answers = {int(server.request().split()[0]) for _ in range(200)}
        assert victim not in answers and answers <= {server.pids[0], new_pid}
        if server.reuse_port:
            assert new_pid in answers
        server.proc.send_signal(signal.SIGTERM)
        # The crash happened: the exit status says so even though the service recovered.
        assert server.exit_status() == 1, server.drain()


def test_start_function_failure_stops_the_server(tmp_path):
    with Server(tmp_path, '--workers', '2', env={'APP_FAIL_START': '1'},
                expect_ready=False) as server:
        assert server.exit_status() == 1
        log = server.drain()
        assert 'RuntimeError: start failed on purpose' in log, log
        assert 'before it was ready' in log, log
        assert 'serving on' not in log, log


def test_ready_callback_error_propagates_and_no_worker_survives(tmp_path):
    with Server(tmp_path, '--workers', '2', '--ready-raises', expect_ready=False) as server:
        server.pids = [int(p) for p in server.wait_for(r'ready: pids ([\d, ]+)').group(1)
                       .split(', ')]
        # exit_status() also waits for stderr's EOF: every worker has exited by then.
        assert server.exit_status() == 1
        assert 'RuntimeError: ready failed on purpose' in server.drain()


def test_workers_stop_when_the_parent_dies(tmp_path):
    with Server(tmp_path, '--workers', '2') as server:
        server.proc.kill()
        server.proc.wait(DEADLINE)
        # stderr reaches EOF only once both workers have exited.
        log = server.drain()
        assert log.count('the parent process is gone') == 2, log


# ---- the API, in this process ----------------------------------------------------------------

async def _never_called(sock: socket.socket):  # pragma: no cover - refused before forking
    raise AssertionError('not reached')


@pytest.mark.parametrize('kwargs, error', [
    (dict(workers=0), ValueError),
    (dict(workers='2'), TypeError),
    (dict(workers=True), TypeError),
    (dict(port='80'), TypeError),
    (dict(grace=-1), ValueError),
])
def test_bad_arguments_are_refused_before_anything_starts(kwargs, error):
    with pytest.raises(error):
        serve(_never_called, **kwargs)


def test_non_callables_are_refused():
    with pytest.raises(TypeError):
        serve(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        serve_protocol(None)  # type: ignore[arg-type]


def test_refused_inside_a_running_loop():
    async def main():
        serve(_never_called, workers=1)

    with pytest.raises(RuntimeError, match='running event loop'):
        asyncio.run(main())


def test_refused_outside_the_main_thread():
    errors: list[BaseException] = []

    def target():
        try:
            serve(_never_called, workers=1)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(DEADLINE)
    assert len(errors) == 1 and isinstance(errors[0], RuntimeError), errors


def test_current_worker_is_none_outside_a_worker():
    assert current_worker() is None


def test_address_in_use_is_an_oserror():
    with socket.socket() as taken:
        taken.bind(('127.0.0.1', 0))
        taken.listen()
        with pytest.raises(OSError):
            serve(_never_called, port=taken.getsockname()[1], workers=1)
