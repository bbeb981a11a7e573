"""Fuzzing the C core's data structures against their models.

tests/core/fuzz/ holds one libFuzzer harness per structure -- the timer heap
(csrc/timer_heap.c) and the ready ring (csrc/ready_queue.c) -- each checking
every operation against a brute-force model, under ASan and UBSan.  Here:

* ``test_fuzz``: build each harness with clang's libFuzzer into a temporary
  directory and fuzz it for a bounded time (``PYLOOP_FUZZ_SECONDS``, default
  10), starting from the committed seed corpus.  Exit status 0 means no model
  mismatch, no sanitizer report, no crash and no hang; the number of
  executions is printed.
* ``test_corpus_replays_clean``: replay the committed corpus through the
  harness with a plain ``main`` (any compiler with ASan), so the seeds stay
  a regression test where libFuzzer is missing (gcc, Apple clang).
* ``test_seed_corpus_is_current``: the committed seeds are what
  make_seeds.py writes, so they keep up with the harnesses' input language.

Where the toolchain lacks libFuzzer or the sanitizer runtimes the tests skip,
saying so; with ``CI`` set they fail instead, so CI cannot silently lose them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parents[2]
CSRC = ROOT / "csrc"
FUZZ = ROOT / "tests" / "core" / "fuzz"
CORPUS = FUZZ / "corpus"
HARNESSES = ["timer_heap", "ready_queue"]

FUZZ_SECONDS = int(os.environ.get("PYLOOP_FUZZ_SECONDS", "10"))
IN_CI = bool(os.environ.get("CI"))

SANITIZE = [
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",
    "-fno-omit-frame-pointer",
]
CFLAGS = ["-g", "-O1", "-Wall", "-Wextra", f"-I{CSRC}", f"-I{FUZZ}"]

# tools/sanitize.sh preloads ASan into the Python running this file; the
# harnesses are programs of their own and need none of that.
_SANITIZER_ENV = ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS", "PYTHONMALLOC")
CHILD_ENV = {k: v for k, v in os.environ.items() if k not in _SANITIZER_ENV}

if not sys.platform.startswith(("linux", "darwin", "freebsd")):
    pytest.skip("the harnesses need a POSIX C toolchain", allow_module_level=True)


def _unavailable(reason: str) -> NoReturn:
    if IN_CI:
        pytest.fail(f"{reason} (CI is set: install clang with libFuzzer; "
                    "tools/ci_setup.sh does on Debian/Ubuntu)")
    pytest.skip(reason)


def _compile(cc: str, sources: list[Path], flags: list[str], out: Path):
    return subprocess.run(
        [cc, *CFLAGS, *flags, *map(str, sources), "-o", str(out)],
        capture_output=True, text=True, env=CHILD_ENV, timeout=300,
    )


@pytest.fixture(scope="module")
def fuzzers(tmp_path_factory) -> dict[str, Path]:
    clang = shutil.which(os.environ.get("PYLOOP_FUZZ_CC", "clang"))
    if clang is None:
        _unavailable("clang not found: libFuzzer needs it")
    out = tmp_path_factory.mktemp("fuzz")
    probe = out / "probe.c"
    probe.write_text(
        "#include <stddef.h>\n#include <stdint.h>\n"
        "int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)"
        " { (void)d; (void)n; return 0; }\n")
    proc = _compile(clang, [probe], ["-fsanitize=fuzzer", *SANITIZE],
                    out / "probe")
    if proc.returncode != 0:
        _unavailable(f"{clang} cannot build a libFuzzer target with "
                     f"ASan/UBSan:\n{proc.stderr[-2000:]}")
    built = {}
    for name in HARNESSES:
        exe = out / f"fuzz_{name}"
        proc = _compile(clang, [FUZZ / f"fuzz_{name}.c"],
                        ["-Werror", "-fsanitize=fuzzer", *SANITIZE], exe)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        built[name] = exe
    return built


def _stat(output: str, name: str) -> int | None:
    m = re.search(rf"^stat::{name}:\s*(\d+)", output, re.M)
    return int(m.group(1)) if m else None


@pytest.mark.timeout(FUZZ_SECONDS + 300)
@pytest.mark.parametrize("name", HARNESSES)
def test_fuzz(name, fuzzers, tmp_path):
    exe = fuzzers[name]
    work = tmp_path / "corpus"     # new inputs go here, never into the repo
    work.mkdir()
    proc = subprocess.run(
        [
            str(exe),
            f"-max_total_time={FUZZ_SECONDS}",
            "-print_final_stats=1",
            "-timeout=30",          # one input running this long is a hang
            "-rss_limit_mb=2048",
            "-max_len=4096",
            f"-artifact_prefix={tmp_path}/",
            str(work),
            str(CORPUS / name),
        ],
        capture_output=True, text=True, env=CHILD_ENV,
        timeout=FUZZ_SECONDS + 240, cwd=tmp_path,
    )
    out = proc.stdout + proc.stderr
    crashes = sorted(p for p in tmp_path.iterdir()
                     if p.name.startswith(("crash-", "leak-", "timeout-", "oom-")))
    detail = "".join(f"\n{p.name}: {p.read_bytes().hex()}" for p in crashes)
    assert proc.returncode == 0, f"{out[-6000:]}\nfailing inputs:{detail}"
    execs = _stat(out, "number_of_executed_units")
    cov = re.findall(r"\bcov: (\d+)", out)
    print(f"fuzz_{name}: {execs} executions in {FUZZ_SECONDS} s, "
          f"{_stat(out, 'new_units_added')} new inputs, "
          f"coverage {cov[-1] if cov else '?'} edges")
    assert execs is not None and execs >= 100, out[-3000:]


def _sanitizer_cc() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return name
    return None


@pytest.mark.parametrize("name", HARNESSES)
def test_corpus_replays_clean(name, tmp_path):
    cc = _sanitizer_cc()
    if cc is None:
        _unavailable("no C compiler found")
    exe = tmp_path / f"replay_{name}"
    proc = _compile(cc, [FUZZ / f"fuzz_{name}.c", FUZZ / "replay_main.c"],
                    SANITIZE, exe)
    if proc.returncode != 0:
        if re.search(r"asan|ubsan|sanitize", proc.stderr):
            _unavailable(f"{cc} lacks the ASan/UBSan runtimes")
        pytest.fail(proc.stdout + proc.stderr)
    seeds = sorted((CORPUS / name).iterdir())
    assert len(seeds) >= 3
    proc = subprocess.run([str(exe), str(CORPUS / name)], capture_output=True,
                          text=True, env=CHILD_ENV, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"replayed {len(seeds)} inputs" in proc.stdout, proc.stdout


def test_seed_corpus_is_current(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(FUZZ / "make_seeds.py"), str(tmp_path)],
        capture_output=True, text=True, env=CHILD_ENV, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    for name in HARNESSES:
        fresh = {p.name: p.read_bytes() for p in (tmp_path / name).iterdir()}
        committed = {p.name: p.read_bytes() for p in (CORPUS / name).iterdir()}
        assert fresh == committed, (
            f"corpus/{name} differs from make_seeds.py's output; "
            "run python tests/core/fuzz/make_seeds.py")


# One planted bug per harness: the committed seeds alone must expose it, or
# the model has stopped checking what it claims to.
PLANTED = {
    "timer_heap": ("timer_heap.c", "return a->seq < b->seq;",
                   "return a->seq > b->seq;"),      # ties out of push order
    "ready_queue": ("ready_queue.c", "    q->head = 0;\n    q->mask = new_cap - 1;",
                    "    q->mask = new_cap - 1;"),  # growth forgets to unwrap
}


@pytest.mark.parametrize("name", HARNESSES)
def test_harness_catches_a_planted_bug(name, tmp_path):
    cc = _sanitizer_cc()
    if cc is None:
        _unavailable("no C compiler found")
    mutant = tmp_path / "csrc"
    shutil.copytree(CSRC, mutant)
    fname, old, new = PLANTED[name]
    src = (mutant / fname).read_text()
    assert src.count(old) == 1, f"{fname} changed: update PLANTED"
    (mutant / fname).write_text(src.replace(old, new))
    exe = tmp_path / "replay"
    proc = subprocess.run(
        [cc, "-g", "-O1", f"-I{mutant}", f"-I{FUZZ}",
         str(FUZZ / f"fuzz_{name}.c"), str(FUZZ / "replay_main.c"),
         "-o", str(exe)],
        capture_output=True, text=True, env=CHILD_ENV, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = subprocess.run([str(exe), str(CORPUS / name)], capture_output=True,
                          text=True, env=CHILD_ENV, timeout=300)
    assert proc.returncode != 0, proc.stdout
    assert "MODEL MISMATCH" in proc.stderr, proc.stderr[-3000:]
