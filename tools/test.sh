#!/usr/bin/env bash
# The README's test command, from nothing to the whole suite:
#   1. system packages the tests need (tools/ci_setup.sh: PostgreSQL, Redis, clang, ...);
#   2. a venv, .venv/py3.X, with pyloop built into it and every test dependency at the
#      version pinned in constraints/py3.X.txt (tools/devenv.py) -- the Python that runs
#      this script gets nothing installed;
#   3. python -m pytest in that venv.
#
#   bash tools/test.sh [pytest args]            the pinned versions (what CI runs)
#   bash tools/test.sh --latest [pytest args]   the newest release of every dependency, in
#                                               .venv/py3.X-latest; runs tests/integration
#                                               unless pytest args say otherwise
# PYTHON names the interpreter the venv is made from (default: python3).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=pinned
if [ "${1:-}" = --latest ]; then
  mode=latest
  shift
fi
bash tools/ci_setup.sh
flags=(--extras test)
[ "$mode" = latest ] && flags+=(--latest)
venv_python=$("${PYTHON:-python3}" tools/devenv.py venv "${flags[@]}")
# tests/test_environment.py checks the installed versions against the pins in pinned mode
# and reports how far the newest releases are from them in latest mode.
export PYLOOP_TEST_DEPS=$mode
if [ "$mode" = latest ] && [ $# -eq 0 ]; then
  set -- tests/integration tests/test_environment.py
fi
exec "$venv_python" -m pytest "$@"
