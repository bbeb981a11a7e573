"""The README's examples run as copied, and ``import pyloop`` is what the README says it is.

Every fenced ```` ```python ```` block of README.md is run on its own in a fresh interpreter, from a
directory outside the repository (as a reader would run it), and must exit 0 within a timeout.  A
block that cannot run standalone is marked by an HTML comment on the line before it:
``<!-- readme-test: skip (the reason) -->``; there are none today, and a skip without a reason
fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import pyloop

pytest.importorskip('pyloop._core.loop', reason='pyloop is not built')

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / 'README.md').read_text(encoding='utf-8')
# Where the pyloop under test lives: the source tree (built in place) or an installed copy.
PYLOOP_HOME = str(Path(pyloop.__file__).resolve().parents[1])
TIMEOUT = 60
_SKIP = re.compile(r'<!--\s*readme-test:\s*skip\s*(.*?)\s*-->')


def python_blocks(text: str) -> list[tuple[int, str, str | None]]:
    """``(line number, source, skip reason or None)`` for each ```python block."""
    blocks = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == '```python':
            start = i + 1
            end = next(j for j in range(start, len(lines)) if lines[j].strip() == '```')
            before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), '')
            marker = _SKIP.search(before)
            blocks.append((start + 1, '\n'.join(lines[start:end]) + '\n',
                           marker.group(1) if marker else None))
            i = end
        i += 1
    return blocks


BLOCKS = python_blocks(README)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [PYLOOP_HOME, env.get('PYTHONPATH')]))
    env.pop('PYTHONSTARTUP', None)
    return env


def _run(code: str, cwd: Path, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, '-c', code], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=timeout)


def test_the_readme_has_python_examples():
    assert len(BLOCKS) >= 6


@pytest.mark.parametrize('line,source,skip', BLOCKS, ids=[f'README.md:{b[0]}' for b in BLOCKS])
def test_readme_example_runs(line, source, skip, tmp_path):
    if skip is not None:
        assert skip.strip('() '), f'README.md:{line}: a skipped example says why'
        pytest.skip(f'README.md:{line}: {skip}')
    proc = _run(source, tmp_path)
    assert proc.returncode == 0, (f'README.md:{line} failed (exit {proc.returncode}):\n'
                                  f'{proc.stdout}\n{proc.stderr}')


def test_the_echo_example_prints_what_it_says():
    source = next(src for _, src, _ in BLOCKS if 'TcpListener' in src)
    assert "b'hello'" in subprocess.run([sys.executable, '-c', source], env=_env(),
                                        capture_output=True, text=True, timeout=TIMEOUT).stdout


def test_toolbox_modules_are_attributes_after_a_plain_import(tmp_path):
    proc = _run('import pyloop\n'
                'tx, rx = pyloop.sync.channel(1)\n'
                'tx.try_send(5)\n'
                'assert rx.try_recv() == 5\n'
                'for name in ("task", "time", "sync", "fs", "net", "serving"):\n'
                '    assert name in dir(pyloop) and name in pyloop.__all__, name\n'
                '    assert getattr(pyloop, name).__name__ == "pyloop." + name\n'
                'from pyloop import net\n'
                'assert net is pyloop.net\n'
                'try:\n'
                '    pyloop.no_such_module\n'
                'except AttributeError:\n'
                '    pass\n'
                'else:\n'
                '    raise AssertionError("pyloop.no_such_module")\n', tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_import_pyloop_does_not_import_the_toolbox(tmp_path):
    proc = _run('import sys, pyloop\n'
                'print(sorted(m for m in ("pyloop.task", "pyloop.time", "pyloop.sync", "pyloop.fs",\n'
                '                         "pyloop.net") if m in sys.modules))\n', tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == '[]', f'imported by a plain import pyloop: {proc.stdout}'


def test_the_repository_root_caveat_quotes_the_real_error(tmp_path):
    # A source tree without the compiled modules, as the repository is before any build: the
    # README quotes the error Python gives when that tree shadows an installed pyloop (-S: no
    # site-packages, so an editable install's import hook cannot step in).
    shutil.copytree(ROOT / 'pyloop', tmp_path / 'pyloop',
                    ignore=shutil.ignore_patterns('*.so', '*.pyd', '__pycache__'))
    proc = subprocess.run([sys.executable, '-S', '-c', 'import pyloop'], cwd=tmp_path, capture_output=True,
                          text=True, timeout=TIMEOUT, env={**_env(), 'PYTHONPATH': ''})
    assert proc.returncode != 0
    error = proc.stderr.strip().splitlines()[-1]
    assert error.startswith('ModuleNotFoundError: No module named ')
    assert f'`{error}`' in ' '.join(README.split()), f'the README should quote: {error}'
