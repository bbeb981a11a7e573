"""pyloop's compiled modules under AddressSanitizer and UBSan.

tools/sanitize.sh builds pl_core and the Cython modules with
``-fsanitize=address,undefined`` into a build directory of its own, puts
them in a copy of the tree and runs pytest there with the ASan runtime
preloaded (see the script for every setting and why).  These tests run it:

* first a canary: a heap overflow made on purpose must stop the process with
  an ASan report, so a broken setup cannot pass as a clean run;
* then a subset of the suite that drives the C core and all three modules
  (timers, scheduling, thread-safe wakeups, TCP/UDP/pipe transports), which
  must pass with no sanitizer report.

The whole suite runs the same way with ``tools/sanitize.sh`` (no
arguments); it takes a while.  Without a compiler that has the ASan/UBSan
runtimes these tests skip, saying so; with ``CI`` set they fail instead.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SANITIZE_SH = ROOT / "tools" / "sanitize.sh"
IN_CI = bool(os.environ.get("CI"))

# On pyloop only (tools/sanitize.sh's default): about two minutes under ASan
# on a loaded 2-core machine, after the build (one to four minutes).
SUBSET = [
    "tests/loop/test_timers.py",
    "tests/loop/test_scheduling.py",
    "tests/loop/test_threadsafe.py",
    "tests/loop/test_fd_watch.py",
    "tests/transports/test_stream_transport.py",
    "tests/transports/test_datagram.py",
    "tests/transports/test_pipes.py",
]

if not sys.platform.startswith("linux"):
    pytest.skip("tools/sanitize.sh preloads the runtime the Linux way",
                allow_module_level=True)
if os.environ.get("PYLOOP_SANITIZED_RUN"):
    pytest.skip("already running under tools/sanitize.sh",
                allow_module_level=True)

CANARY = """
import ctypes
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
p = libc.malloc(16)
ctypes.memset(p, 0, 17)
print("overflow went unnoticed")
"""


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("asan")


def _sanitize(build_dir: Path, *args: str, timeout: int):
    env = dict(os.environ, SANITIZE_BUILD=str(build_dir), PYTHON=sys.executable)
    proc = subprocess.run(
        [str(SANITIZE_SH), *args], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )
    out = proc.stdout + proc.stderr
    if proc.returncode == 77:
        reason = "no compiler with the ASan/UBSan runtimes: " + out.strip()
        if IN_CI:
            pytest.fail(reason + " (CI is set)")
        pytest.skip(reason)
    return proc.returncode, out


@pytest.mark.timeout(1800)
def test_asan_catches_a_heap_overflow(build_dir):
    rc, out = _sanitize(build_dir, "--python", "-c", CANARY, timeout=1500)
    assert "sanitized pyloop at" in out, out[-4000:]
    assert rc != 0, out[-4000:]
    assert "AddressSanitizer: heap-buffer-overflow" in out, out[-4000:]
    assert "overflow went unnoticed" not in out


@pytest.mark.timeout(2400)
def test_suite_subset_is_clean(build_dir):
    rc, out = _sanitize(build_dir, *SUBSET, "-q", "-o", "timeout=600",
                        timeout=2100)
    tail = out[-8000:]
    assert "ERROR: AddressSanitizer" not in out, tail
    assert "runtime error:" not in out, tail
    assert rc == 0, tail
    m = re.search(r"(\d+) passed", out)
    assert m is not None and int(m.group(1)) >= 100, tail
    assert not re.search(r"\d+ (failed|error)", out), tail
    print(out.strip().splitlines()[-1])
