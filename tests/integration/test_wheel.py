"""The wheel and the sdist that tools/wheel.sh builds install and work where users will put them.

* the wheel is manylinux-tagged (``auditwheel repair``) and carries the compiled modules;
* installed into a fresh venv **where no compiler can run** (no cc/gcc/clang on PATH, ``CC=false``;
  checked first), it passes the smoke suite (_wheel_smoke.py: loop, TCP echo, subprocess,
  channels, virtual clock, the pytest plugin's entry point), run isolated (``-I``) from outside
  the checkout;
* the sdist holds the sources, not build output, and ``pip install`` of the sdist alone (in a
  fresh venv, pip's isolated build) builds pyloop from scratch, which then imports and passes the
  same smoke suite.

They build pyloop from nothing twice (minutes), so they run once per run of the test command: on
its primary Python, where tools/matrix.py sets ``PYLOOP_WHEEL_TESTS=1`` (and deselects them on the
other versions); under CI; or when ``PYLOOP_WHEEL_TESTS=1`` asks for them.  Otherwise they skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SMOKE = Path(__file__).with_name("_wheel_smoke.py")
BUILD_TIMEOUT = 1500
COMPILERS = ("cc", "gcc", "clang", "c99", "tcc", "g++", "c++", "clang++")

_wanted = os.environ.get("PYLOOP_WHEEL_TESTS")
pytestmark = [
    pytest.mark.timeout(2 * BUILD_TIMEOUT),
    pytest.mark.skipif(_wanted == "0" or (_wanted is None and not os.environ.get("CI")),
                       reason="builds pyloop from scratch (minutes): run once per test command "
                              "(tools/test.sh), under CI, or with PYLOOP_WHEEL_TESTS=1"),
]


def _run(args, **kwargs):
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kwargs)
    assert proc.returncode == 0, f"{args}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """tools/wheel.sh's sdist and wheel, built with this interpreter."""
    for module in ("build", "auditwheel") if sys.platform.startswith("linux") else ("build",):
        pytest.importorskip(module, reason=f"{module} is a test dependency (pip install -e '.[test]')")
    out = tmp_path_factory.mktemp("dist")
    _run(["bash", ROOT / "tools" / "wheel.sh", out], cwd=ROOT, timeout=BUILD_TIMEOUT,
         env=dict(os.environ, PYTHON=sys.executable))
    sdists, wheels = sorted(out.glob("*.tar.gz")), sorted(out.glob("*.whl"))
    assert len(sdists) == 1 and len(wheels) == 1, sorted(p.name for p in out.iterdir())
    return sdists[0], wheels[0]


def _fresh_venv(where: Path) -> Path:
    _run([sys.executable, "-m", "venv", where], timeout=300)
    return where / "bin" / "python"


def _no_compiler_env(venv_python: Path, home: Path) -> dict[str, str]:
    """An environment where no C compiler can run: only the venv's bin on PATH, CC/CXX false."""
    return {"PATH": str(venv_python.parent), "HOME": str(home), "CC": "false", "CXX": "false",
            "LANG": "C.UTF-8", "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def _smoke(venv_python: Path, cwd: Path, env: dict[str, str]) -> str:
    script = cwd / "smoke.py"
    shutil.copy(SMOKE, script)
    proc = _run([venv_python, "-I", script], cwd=cwd, env=env, timeout=300)
    assert "smoke ok" in proc.stdout, proc.stdout
    return proc.stdout


def test_wheel_is_manylinux_with_the_compiled_modules(built):
    _, wheel = built
    if sys.platform.startswith("linux"):
        assert "manylinux" in wheel.name, wheel.name
    tag = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    assert f"-{tag}-{tag}-" in wheel.name, wheel.name
    names = zipfile.ZipFile(wheel).namelist()
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    for module in ("pyloop/_core/loop", "pyloop/_core/handles", "pyloop/_transports/stream",
                   "pyloop/sync/_channels"):
        assert module + suffix in names, f"{module}{suffix} is not in {wheel.name}"
    assert "pyloop/pytest_plugin.py" in names
    # Cython's generated C and object files are build output; the .pyx/.pxd sources may ship.
    assert not [n for n in names if n.endswith((".c", ".o", ".a"))], "build output in the wheel"


def test_wheel_installs_and_works_without_a_compiler(built, tmp_path):
    _, wheel = built
    venv_python = _fresh_venv(tmp_path / "venv")
    env = _no_compiler_env(venv_python, tmp_path)
    # First: a compile really cannot run here (the compiler sysconfig names, CC, any cc on PATH).
    probe = tmp_path / "probe.c"
    probe.write_text("int main(void) { return 0; }\n", encoding="utf-8")
    check = _run([venv_python, "-I", "-c", (
        "import os, shlex, shutil, subprocess, sys, sysconfig\n"
        f"found = [c for c in {COMPILERS!r} if shutil.which(c)]\n"
        "assert not found, found\n"
        "for cc in (os.environ['CC'], shlex.split(sysconfig.get_config_var('CC') or 'cc')[0]):\n"
        "    try:\n"
        f"        ok = subprocess.run([cc, {str(probe)!r}, '-o', 'a.out']).returncode == 0\n"
        "    except OSError:\n"
        "        ok = False\n"
        "    assert not ok, cc + ' compiled'\n"
        "print('no compiler')\n")], cwd=tmp_path, env=env, timeout=60)
    assert "no compiler" in check.stdout
    _run([venv_python, "-m", "pip", "install", "--no-index", "--no-deps", "--only-binary=:all:", wheel],
         cwd=tmp_path, env=env, timeout=300)
    _smoke(venv_python, tmp_path, env)


def test_sdist_builds_from_scratch_and_imports(built, tmp_path):
    sdist, _ = built
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
    top = names[0].split("/")[0]
    for needed in ("pyproject.toml", "CMakeLists.txt", "csrc/reactor.h", "pyloop/_core/loop.pyx",
                   "pyloop/sync/_channels.pyx", "pyloop/pytest_plugin.py"):
        assert f"{top}/{needed}" in names, f"{needed} is not in {sdist.name}"
    built_output = [n for n in names if n.endswith((".so", ".o")) or "/build/" in n or "/.venv/" in n]
    assert not built_output, built_output[:10]
    venv_python = _fresh_venv(tmp_path / "venv")
    env = dict(os.environ)
    for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
        env.pop(name, None)
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    pins = ROOT / "constraints" / f"py{version}.txt"
    if pins.exists():
        env["PIP_CONSTRAINT"] = str(pins)      # the build requirements at their pins
    # pip's isolated build, from the sdist alone: no checkout, no build tree to reuse.
    _run([venv_python, "-m", "pip", "install", "--no-cache-dir", sdist], cwd=tmp_path, env=env,
         timeout=BUILD_TIMEOUT)
    _smoke(venv_python, tmp_path, env)
