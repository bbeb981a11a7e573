#!/usr/bin/env bash
# The README's test command, from nothing to the whole suite on every CPython >= 3.11 here:
#   1. system packages the tests need (tools/ci_setup.sh: PostgreSQL, Redis, clang, ...);
#   2. per interpreter, a venv .venv/py3.X with pyloop built into it and every test
#      dependency at the version pinned in constraints/py3.X.txt (tools/devenv.py) -- the
#      Pythons that run this get nothing installed;
#   3. python -m pytest in each venv, one version after the other, and a summary per version
#      (tools/matrix.py: which tests run on which version, and why).
#
#   bash tools/test.sh [pytest args]            every CPython >= 3.11 found (python3.X on PATH,
#                                               pyenv); the one python3 is runs the whole suite,
#                                               the others what can differ between versions;
#                                               pytest args run as given on every version
#   PYTHON=python3.12 bash tools/test.sh ...    that interpreter only, the whole suite
#   bash tools/test.sh --latest [pytest args]   the newest release of every dependency, in
#                                               .venv/py3.X-latest; runs tests/integration
#                                               unless pytest args say otherwise
# Under CI (CI set, as .ci/run does) fewer than two versions found is an error.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/ci_setup.sh
exec "${PYTHON:-python3}" tools/matrix.py "$@"
