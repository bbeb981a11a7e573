#!/usr/bin/env bash
# The README's main job: the benchmark comparison (bench/compare.py), asyncio, uvloop, rloop
# and pyloop interleaved in one run.  Makes .venv/py3.X with pyloop built into it and the
# bench dependencies at their pinned versions (tools/devenv.py, constraints/py3.X.txt),
# installs wrk for the HTTP group if it is missing (tools/ci_setup.sh bench), then runs
#   compare.py [args]   (see python bench/compare.py --help)
# PYTHON names the interpreter the venv is made from (default: python3).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/ci_setup.sh bench
venv_python=$("${PYTHON:-python3}" tools/devenv.py venv --extras bench)
exec "$venv_python" bench/compare.py "$@"
