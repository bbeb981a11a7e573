"""pytest-benchmark versions of bench/micro.py, one per benchmark and loop.

    pytest bench/ --benchmark-only                        # all loops that are installed
    pytest bench/ --benchmark-only -k "pyloop or uvloop"  # a subset
    pytest bench/ --benchmark-only --benchmark-group-by=group --benchmark-columns=median,iqr,rounds

Not part of the normal test suite: pyproject.toml sets testpaths = ["tests"].  Each benchmark is its own
pytest-benchmark *group*, so the summary table puts the loops side by side.  pytest-benchmark times a whole
call (n operations, plus ~10 us of run_until_complete set-up); ``extra_info`` holds the per-operation figure
measured inside the loop, as compare.py reports it.  For the interleaved, subprocess-isolated comparison with
ratios and DESIGN.md targets, use ``python bench/compare.py``.
"""
from __future__ import annotations

import os
import statistics
import sys

import pytest

pytest.importorskip("pytest_benchmark")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchlib  # noqa: E402

# Only the groups whose benchmarks are func(loop, n); echo and http run servers (compare.py --group echo,http).
BENCHMARKS = [b for b in benchlib.load_benchmarks().values() if not benchlib.runs_itself(b.group)]
SCALE = 0.25  # a quarter of compare.py's operation counts: ~10-100 ms per round
ROUNDS = 7


def _loop_param(name: str):
    try:
        benchlib.make_loop(name).close()
    except ImportError as exc:
        return pytest.param(name, id=name, marks=pytest.mark.skip(reason=f"{name} not installed: {exc}"))
    return pytest.param(name, id=name)


@pytest.fixture(params=[_loop_param(name) for name in benchlib.LOOPS])
def loop(request):
    lp = benchlib.make_loop(request.param)
    lp.set_debug(False)
    yield lp
    lp.close()


@pytest.mark.parametrize("bench", BENCHMARKS, ids=[b.name for b in BENCHMARKS])
def test_micro(benchmark, loop, bench):
    n = max(1, int(bench.n * SCALE))
    per_op: list[float] = []

    def one_round():
        per_op.append(bench.func(loop, n))

    benchmark.group = bench.name
    benchmark.pedantic(one_round, rounds=ROUNDS, warmup_rounds=1, iterations=1)
    measured = per_op[1:] or per_op  # the first is the warm-up round (none with --benchmark-disable)
    benchmark.extra_info.update(operations=n, unit=bench.unit,
                                per_op_median=statistics.median(measured), per_op_min=min(measured))
    assert all(v > 0 for v in measured)
