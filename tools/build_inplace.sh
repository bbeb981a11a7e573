#!/usr/bin/env bash
# Developer build: compile the extensions with CMake into build/dev and copy
# them next to the sources, so `PYTHONPATH=. python ...` uses the working tree.
# (`pip install -e .` is the packaged alternative; see README.)
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
modpath=$("$py" -c 'import cython_cmake, os; print(os.path.join(os.path.dirname(cython_cmake.__file__), "cmake"))')
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
cmake -S . -B build/dev "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DPython_EXECUTABLE="$(command -v "$py")" -DCMAKE_MODULE_PATH="$modpath" >/dev/null
cmake --build build/dev
# The build tree mirrors the package: each module goes to the same path under pyloop/,
# atomically (a rename), so running tests keep the old mapping.
(cd build/dev && find pyloop -name '*.so') | while read -r so; do
  cp "build/dev/$so" "$(dirname "$so")/.$(basename "$so").tmp" && mv "$(dirname "$so")/.$(basename "$so").tmp" "$so"
done
