"""One measurement in a fresh interpreter; compare.py runs this as a subprocess and reads one JSON line.

    python bench/_worker.py probe LOOP                  -> {"ok": true, "version": "..."}
    python bench/_worker.py run LOOP BENCH N REPEAT [CLOCK]   -> {"ok": true, "values": [v1, ...]}

``run`` makes one loop, warms it up with a tenth of the operations (so the interpreter's adaptive
specialisation, the loop's free lists and the allocator have settled), then times REPEAT runs of N operations,
each after a ``gc.collect()``, and prints every value.  CLOCK is ``wall`` (default) or ``cpu``.  Failures print ``{"ok": false, "error": ...}`` and exit
non-zero; they never raise past here, so the runner can report them in the table.
"""
from __future__ import annotations

import gc
import json
import os
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchlib  # noqa: E402


def _emit(obj, code=0):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()
    # os._exit: a loop that leaves a non-daemon thread or a bad finaliser behind must not hang the runner.
    os._exit(code)


def probe(loop_name: str) -> None:
    try:
        loop = benchlib.make_loop(loop_name)
        loop.close()
        version = benchlib.loop_version(loop_name)
    except ImportError as exc:
        _emit({"ok": False, "missing": True, "error": f"not installed ({exc})"}, 3)
    except Exception as exc:
        _emit({"ok": False, "error": f"{type(exc).__name__}: {exc}"}, 1)
    _emit({"ok": True, "version": version})


def run(loop_name: str, bench_name: str, n: int, repeat: int, clock: str = "wall") -> None:
    try:
        benchlib.use_clock(clock)
        bench = benchlib.load_benchmarks()[bench_name]
        loop = benchlib.make_loop(loop_name)
        loop.set_debug(False)
        try:
            bench.func(loop, max(n // 10, 1))
            values = []
            for _ in range(repeat):
                gc.collect()
                values.append(bench.func(loop, n))
        finally:
            loop.close()
    except Exception as exc:
        tb = traceback.format_exc(limit=-3)
        _emit({"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": tb}, 1)
    _emit({"ok": True, "values": values})


def main(argv: list[str]) -> None:
    if len(argv) == 2 and argv[0] == "probe":
        probe(argv[1])
    elif len(argv) in (5, 6) and argv[0] == "run":
        run(argv[1], argv[2], int(argv[3]), int(argv[4]), *argv[5:])
    sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
