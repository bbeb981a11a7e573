"""pyloop type-checks: the examples, code written against the public API, and the stubs.

pyloop ships ``py.typed``, so mypy reads its annotations and its ``.pyi`` stubs for the Cython
modules.  These tests run mypy the way a user's project would see pyloop: imports of pyloop's
own modules are followed silently (``--follow-imports=silent``), so only errors in the checked
files count, as when pyloop is installed in site-packages.

* examples/ must check with ``--check-untyped-defs``;
* a typed snippet using the public API must check with ``--strict``, and a wrong call must be
  caught (so the first check cannot pass because pyloop looked like ``Any``);
* pyloop.serving (fully annotated) must check with ``--strict``;
* ``mypy.stubtest`` compares the Cython modules' stubs with the compiled modules.

mypy is a test dependency.  Without it these tests skip locally and fail in CI (``CI`` set).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip('pyloop._core.loop', reason='pyloop is not built')

ROOT = Path(__file__).resolve().parents[2]
ALLOWLIST = Path(__file__).with_name('stubtest_allowlist.txt')
TIMEOUT = 600

try:
    import mypy  # noqa: F401
except ImportError:  # pragma: no cover - depends on the environment
    if os.environ.get('CI'):
        raise RuntimeError('mypy is a test dependency (pip install mypy); CI must have it')
    pytest.skip('mypy is not installed (pip install mypy)', allow_module_level=True)


def _mypy(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop('MYPYPATH', None)
    return subprocess.run([sys.executable, '-m', 'mypy', '--follow-imports=silent',
                           '--cache-dir', str(tmp_path / 'mypy-cache'), '--no-color-output',
                           '--show-error-codes', *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT)


SNIPPET = textwrap.dedent('''
    """Code a user writes against pyloop's public API, fully typed."""
    import asyncio
    import socket
    import sys
    from typing import assert_type

    import pyloop
    from pyloop.serving import ServeInfo, Worker, current_worker, serve, serve_protocol


    class Echo(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            self.transport.write(data)


    async def start(sock: socket.socket) -> asyncio.Server:
        return await asyncio.start_server(lambda r, w: None, sock=sock)


    def on_ready(info: ServeInfo) -> None:
        assert_type(info.port, int)
        assert_type(info.pids, tuple[int, ...])
        print(info, file=sys.stderr)


    async def inside_a_worker() -> None:
        worker = current_worker()
        if worker is not None:
            assert_type(worker, Worker)
            assert_type(worker.index, int)
            await worker.stopping.wait()


    async def main() -> None:
        loop = asyncio.get_running_loop()
        handle = loop.call_later(1.0, print, 'late')
        handle.cancel()
        await asyncio.sleep(0)


    def entry_points() -> None:
        pyloop.run(main())
        with asyncio.Runner(loop_factory=pyloop.new_event_loop) as runner:
            runner.run(main())
        pyloop.install()
        assert isinstance(pyloop.__version__, str)


    def serving() -> int:
        status = serve(start, host='127.0.0.1', port=0, workers=2, grace=5.0, ready=on_ready)
        assert_type(status, int)
        return serve_protocol(Echo, '127.0.0.1', 8000, workers=2, restart=True)
''')

WRONG = textwrap.dedent('''
    import asyncio
    from pyloop.serving import serve_protocol

    serve_protocol(asyncio.Protocol, '127.0.0.1', 8000, workers='2')
''')


def test_examples_type_check(tmp_path):
    examples = sorted(str(p.relative_to(ROOT)) for p in (ROOT / 'examples').glob('*.py'))
    assert examples, 'examples/ is empty'
    proc = _mypy(tmp_path, '--check-untyped-defs', *examples)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_public_api_snippet_type_checks_strictly(tmp_path):
    snippet = tmp_path / 'uses_pyloop.py'
    snippet.write_text(SNIPPET)
    # --strict, less no-untyped-call: pyloop.run/new_event_loop/install carry no annotations
    # yet, and calling them must still be allowed in a user's strictly typed code.
    proc = _mypy(tmp_path, '--strict', str(snippet))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_wrong_call_is_caught(tmp_path):
    wrong = tmp_path / 'wrong.py'
    wrong.write_text(WRONG)
    proc = _mypy(tmp_path, str(wrong))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert '[arg-type]' in proc.stdout and '"workers"' in proc.stdout, proc.stdout


def test_serve_modules_check_strictly(tmp_path):
    proc = _mypy(tmp_path, '--strict', 'pyloop/serving/__init__.py', 'pyloop/serving/_workers.py')
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cython_stubs_match_the_compiled_modules(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    # Run from tmp_path: no project mypy configuration applies, as for the checks above.
    proc = subprocess.run([sys.executable, '-m', 'mypy.stubtest', '--allowlist', str(ALLOWLIST),
                           'pyloop._core.handles', 'pyloop._core.loop', 'pyloop._transports.stream',
                           'pyloop._transports.tls_protocol'],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
