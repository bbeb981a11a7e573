"""Tests for the C engine in csrc/.

The cases themselves are C (test_*.c, fuzz_model.c, listed in cases.h).  This
file builds the C test driver with the system compiler, once per *variant*,
asks it for its case names and runs every case in its own process, so each C
case is its own pytest test, named ``test_c_case[<variant>-<case>]``.

Variants on Linux:

* ``epoll``            reactor_epoll.c with epoll_pwait2, eventfd wakeup
* ``epoll_compat``     epoll_wait with millisecond rounding (what kernels
                       before 5.11 get) and the self-pipe wakeup the BSDs use
* ``kqueue_emul``      reactor_kqueue.c against tests/core/kqueue_emul, a
                       small kqueue-over-epoll stand-in (Debian ships no
                       libkqueue any more), self-pipe wakeup made as on
                       macOS (pipe + fcntl, no pipe2)
* ``kqueue_emul_noreceipt``  the same without EV_RECEIPT

On macOS and the BSDs the only variant is ``kqueue``, the real thing.

Besides the cases: every csrc/ file must compile warning-free as strict C11,
the driver must run clean under valgrind (no errors, no definite leaks, no
leaked fds) and under ASan+UBSan.  Build output goes to tests/core/_build/
(git-ignored), keyed by a hash of sources and flags.
"""

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CSRC = ROOT / "csrc"
BUILD = HERE / "_build"
EMUL = HERE / "kqueue_emul"

IS_LINUX = sys.platform.startswith("linux")

COMMON_C = ["timer_heap.c", "ready_queue.c", "wakeup.c", "pl_clock.c"]
DRIVER_C = [
    "test_main.c",
    "test_ready_queue.c",
    "test_timer_heap.c",
    "fuzz_model.c",
    "test_clock.c",
    "test_reactor.c",
    "test_wakeup.c",
    "test_metrics.c",
]
HEADERS = [HERE / "pltest.h", HERE / "cases.h", EMUL / "sys" / "event.h"] + sorted(
    CSRC.glob("*.h")
)
WARN = ["-Wall", "-Wextra", "-Werror"]
# Allocation fault injection needs GNU ld's --wrap.
WRAP = ["-DPLTEST_WRAP_ALLOC", "-Wl,--wrap=malloc,--wrap=realloc,--wrap=calloc"]

CASE_TIMEOUT = 120
VALGRIND_TIMEOUT = 900

# tools/sanitize.sh runs the suite with the ASan runtime preloaded for the
# Python process.  The C drivers here are their own programs: valgrind cannot
# run one with ASan preloaded, and the driver's own ASan build must keep
# LeakSanitizer on.  So they get the environment without that setup.
_SANITIZER_ENV = ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS", "PYTHONMALLOC")
CHILD_ENV = (
    {k: v for k, v in os.environ.items() if k not in _SANITIZER_ENV}
    if os.environ.get("PYLOOP_SANITIZED_RUN")
    else None
)


def _run(args, **kwargs):
    return subprocess.run(args, env=CHILD_ENV, **kwargs)


def _find_cc():
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name.split()[0]):
            return name.split()
    return None


CC = _find_cc()
if CC is None:
    pytest.skip("no C compiler found", allow_module_level=True)


def _variants():
    if IS_LINUX:
        kq = {
            "backend": [CSRC / "reactor_kqueue.c", EMUL / "kqueue_emul.c"],
            # Like macOS: kqueue, and a pipe made without pipe2().
            "flags": [
                "-D_GNU_SOURCE",
                f"-I{EMUL}",
                "-DPL_WAKEUP_FORCE_PIPE",
                "-DPL_WAKEUP_NO_PIPE2",
            ],
        }
        return {
            "epoll": {
                "backend": [CSRC / "reactor_epoll.c"],
                "flags": ["-D_GNU_SOURCE"],
            },
            "epoll_compat": {
                "backend": [CSRC / "reactor_epoll.c"],
                "flags": [
                    "-D_GNU_SOURCE",
                    "-DPL_EPOLL_NO_PWAIT2",
                    "-DPL_WAKEUP_FORCE_PIPE",
                ],
            },
            "kqueue_emul": kq,
            "kqueue_emul_noreceipt": {
                "backend": kq["backend"],
                "flags": kq["flags"] + ["-DPLTEST_KQ_NO_RECEIPT"],
            },
        }
    return {"kqueue": {"backend": [CSRC / "reactor_kqueue.c"], "flags": []}}


VARIANTS = _variants()


class Build:
    def __init__(self, variant, path=None, error=None, cases=()):
        self.variant = variant
        self.path = path
        self.error = error
        self.cases = list(cases)


def _compile(name, sources, flags):
    """Compile sources into BUILD/<name>-<hash>/driver; reuse a cached one."""
    cmd = list(CC) + ["-O1", "-g"] + WARN + [f"-I{CSRC}", f"-I{HERE}"] + flags
    link = ["-pthread"]
    if IS_LINUX:
        cmd += WRAP
    h = hashlib.sha256(" ".join(cmd + link).encode())
    for f in list(sources) + HEADERS:
        h.update(str(f).encode())
        h.update(Path(f).read_bytes())
    out_dir = BUILD / f"{name}-{h.hexdigest()[:12]}"
    exe = out_dir / "driver"
    if exe.exists():
        return exe, None
    # Drop this variant's builds for older sources so _build/ stays small.
    if BUILD.is_dir():
        stale = re.compile(rf"^{re.escape(name)}-[0-9a-f]{{12}}$")
        for d in BUILD.iterdir():
            if d.is_dir() and stale.match(d.name):
                shutil.rmtree(d, ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f"driver.tmp{os.getpid()}"
    proc = _run(
        cmd + [str(s) for s in sources] + ["-o", str(tmp)] + link,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        return None, f"$ {' '.join(proc.args)}\n{proc.stdout}{proc.stderr}"
    os.replace(tmp, exe)
    return exe, None


def _build(variant):
    spec = VARIANTS[variant]
    sources = (
        [CSRC / f for f in COMMON_C]
        + spec["backend"]
        + [HERE / f for f in DRIVER_C]
    )
    exe, err = _compile(variant, sources, spec["flags"])
    if err:
        return Build(variant, error=err)
    proc = _run([str(exe), "--list"], capture_output=True, text=True)
    if proc.returncode != 0:
        return Build(variant, error=f"--list failed:\n{proc.stdout}{proc.stderr}")
    return Build(variant, exe, cases=proc.stdout.split())


BUILDS = {v: _build(v) for v in VARIANTS}

CASES = [
    pytest.param(v, c, id=f"{v}-{c}") for v, b in BUILDS.items() for c in b.cases
]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_driver_builds(variant):
    b = BUILDS[variant]
    assert b.error is None, b.error
    assert len(b.cases) >= 50


def test_variants_list_the_same_cases():
    lists = {v: b.cases for v, b in BUILDS.items() if b.error is None}
    assert len(set(map(tuple, lists.values()))) <= 1, lists


@pytest.mark.parametrize("variant,case", CASES)
def test_c_case(variant, case):
    exe = BUILDS[variant].path
    proc = _run(
        [str(exe), case],
        capture_output=True,
        text=True,
        timeout=CASE_TIMEOUT,
        close_fds=True,
    )
    out = proc.stdout + proc.stderr
    m = re.search(rf"^SKIP {re.escape(case)}: (.*)$", proc.stdout, re.M)
    if m and proc.returncode == 0:
        pytest.skip(m.group(1))
    assert proc.returncode == 0, out
    assert re.search(rf"^PASS {re.escape(case)}$", proc.stdout, re.M), out


def _strict_sources():
    files = [CSRC / f for f in COMMON_C]
    if IS_LINUX:
        files.append(CSRC / "reactor_epoll.c")
    files.append(CSRC / "reactor_kqueue.c")
    return files


@pytest.mark.parametrize("src", _strict_sources(), ids=lambda p: p.name)
def test_csrc_compiles_strict(src):
    """No GNU dialect, no feature macros from the build: each file asks for
    what it uses, as it must on macOS/BSD.  On Linux reactor_kqueue.c is
    checked against the stand-in <sys/event.h>."""
    cmd = list(CC) + [
        "-std=c11",
        "-pedantic",
        "-D_POSIX_C_SOURCE=200809L",
        "-fsyntax-only",
        f"-I{CSRC}",
    ] + WARN
    if src.name == "reactor_kqueue.c" and IS_LINUX:
        cmd += [f"-I{EMUL}", "-D_DEFAULT_SOURCE"]
    proc = _run(cmd + [str(src)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_valgrind_clean(variant):
    """Every case in one process under memcheck: no errors, no definite
    leaks, and no file descriptor left open besides stdio."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        pytest.skip("valgrind not installed")
    b = BUILDS[variant]
    assert b.error is None, b.error
    proc = _run(
        [
            valgrind,
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
            "--error-exitcode=99",
            "--track-fds=yes",
            str(b.path),
            "--all",
        ],
        capture_output=True,
        text=True,
        timeout=VALGRIND_TIMEOUT,
        close_fds=True,
        stdin=subprocess.DEVNULL,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "FAIL " not in proc.stdout, out
    assert re.search(r"ERROR SUMMARY: 0 errors", proc.stderr), out
    m = re.search(r"definitely lost: ([\d,]+) bytes", proc.stderr)
    assert m is None or m.group(1) == "0", out
    m = re.search(r"FILE DESCRIPTORS: (\d+) open \((\d+) std\) at exit", proc.stderr)
    assert m is not None and m.group(1) == m.group(2), out


def test_sanitizers_clean():
    """ASan + UBSan over every case (first variant), where the compiler has
    the runtimes."""
    variant = next(iter(VARIANTS))
    spec = VARIANTS[variant]
    sources = (
        [CSRC / f for f in COMMON_C]
        + spec["backend"]
        + [HERE / f for f in DRIVER_C]
    )
    flags = spec["flags"] + [
        "-fsanitize=address,undefined",
        "-fno-sanitize-recover=all",
        "-fno-omit-frame-pointer",
    ]
    exe, err = _compile(f"{variant}-asan", sources, flags)
    if err is not None:
        if "sanitize" in err or "asan" in err or "ubsan" in err:
            pytest.skip("compiler lacks the sanitizer runtimes")
        pytest.fail(err)
    proc = _run(
        [str(exe), "--all"],
        capture_output=True,
        text=True,
        timeout=VALGRIND_TIMEOUT,
        close_fds=True,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "FAIL " not in proc.stdout, out
