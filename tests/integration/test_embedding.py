"""The two embedding hosts of examples/ run to completion: a selectors loop and a C program.

Both drive a pyloop loop from a main loop they own (``backend_fd``, ``backend_timeout``,
``run_nowait``; the rules are tested in tests/loop/test_embed.py).  The C host embeds CPython
through cffi's embedding mode: the test builds it from scratch with the C compiler (``$CC``,
default ``cc``) into a temporary directory and runs it.  It needs Linux (epoll, timerfd), a
shared libpython, cffi and a compiler: without them it is skipped, except under CI (the ``CI``
environment variable), where it must run.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytest.importorskip("pyloop._core.loop", reason="pyloop is not built")

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
TIMEOUT = 120


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def test_selectors_host_drives_a_pyloop_server_to_completion():
    proc = subprocess.run([sys.executable, str(EXAMPLES / "embed_selectors_host.py")],
                          capture_output=True, text=True, env=_env(), timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["host got: b'HELLO FROM THE HOST'",
                                        "pyloop: served 2 clients on Loop"]
    assert proc.stderr == ""


def _c_host_missing():
    if not sys.platform.startswith("linux"):
        return "the C host uses epoll and timerfd (Linux)"
    if importlib.util.find_spec("cffi") is None:
        return "cffi is not installed"
    if shutil.which(os.environ.get("CC", "cc")) is None:
        return "no C compiler"
    if not sysconfig.get_config_var("Py_ENABLE_SHARED"):
        return "this Python has no shared libpython to embed"
    return None


def test_c_host_embeds_cpython_through_cffi_and_drives_pyloop_from_its_epoll(tmp_path):
    missing = _c_host_missing()
    if missing is not None:
        if os.environ.get("CI") and sys.platform.startswith("linux"):
            pytest.fail(f"the C embedding host must run under CI: {missing}", pytrace=False)
        pytest.skip(missing)
    proc = subprocess.run([sys.executable, str(EXAMPLES / "embed_c_host" / "build.py"),
                           "--out", str(tmp_path), "--run"],
                          capture_output=True, text=True, env=_env(), timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    listens, got, steps, served = proc.stdout.splitlines()[-4:]   # after cffi's build chatter
    assert listens.startswith("host: pyloop listens on port ")
    assert got == 'host: got "HELLO FROM C"'
    assert steps.startswith("host: ") and steps.endswith(" pyloop steps")
    assert served == "pyloop: served 1 client on Loop"
    assert (tmp_path / "host").exists() and (tmp_path / "lib_pyloop_host.so").exists()
