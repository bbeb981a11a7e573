#!/usr/bin/env bash
# Run pytest against an ASan + UBSan build of pyloop's extensions.
#
#   tools/sanitize.sh [PYTEST ARGS...]          (default: tests)
#   tools/sanitize.sh --python [PYTHON ARGS...]  a reproduction script instead
#   tools/sanitize.sh --build-only
#
# Builds pl_core and the Cython modules with -DPYLOOP_SANITIZE (address,
# undefined unless $SANITIZE says otherwise) into build/asan, then assembles
# a copy of the tree in build/asan/pkg -- pyloop/ with the sanitized .so
# files, tests/, csrc/, examples/, pyproject.toml -- and runs pytest there.
# The worktree's own pyloop/*.so are never touched.  Why a copy of the tests
# too: several tests start child interpreters with PYTHONPATH set to "the
# repository" (their own parent directory); in the copy that is the sanitized
# tree, so the children run the sanitized modules as well.
#
# The python running the tests is not itself built with ASan, so the runtime
# has to be loaded before anything else: LD_PRELOAD of the compiler's libasan
# (and, for gcc, libubsan).  Settings, and why:
#   ASAN_OPTIONS detect_leaks=0     CPython does not free everything at exit
#                                   (interned strings, static types, module
#                                   state), so LeakSanitizer would report
#                                   thousands of blocks that are not bugs and
#                                   fail every run.  Leaks in csrc/ are checked
#                                   by tests/core (valgrind and the C driver's
#                                   own ASan build, with leak checking on).
#                halt_on_error=1    the first report ends the process.
#                allocator_may_return_null=1   a huge allocation fails as
#                                   malloc does (MemoryError), which tests may
#                                   rely on, instead of aborting.
#   UBSAN_OPTIONS halt_on_error=1:print_stacktrace=1
#   PYTHONMALLOC=malloc             every Python object comes from malloc, so
#                                   ASan sees a use-after-free or overflow of a
#                                   Python object in Cython code too (pymalloc
#                                   would hide it inside its arenas).
#   PYLOOP_TEST_LOOPS=pyloop        (unless set) the loop tests run on pyloop
#                                   only: their stock-asyncio runs exercise no
#                                   code of ours and, at ASan speed, some of
#                                   them (a 256 KiB stream read a byte at a
#                                   time) take most of their 30 s guard.
# PYLOOP_SANITIZED_RUN=1 tells tests/core to run its own C drivers (and
# valgrind) without these.
#
# Environment: CC (compiler, default cc), PYTHON (default python3),
# SANITIZE (default address,undefined), SANITIZE_BUILD (default build/asan),
# SANITIZE_VIA_PIP=1 (build through pip even where cmake is at hand).
# Exit status: pytest's, or 77 when the compiler has no ASan runtime.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

mode=pytest
case "${1:-}" in
  --build-only) mode=build; shift ;;
  --python) mode=python; shift ;;
esac
[ $# -gt 0 ] || [ "$mode" != pytest ] || set -- tests

cc=${CC:-cc}
py=${PYTHON:-python3}
sanitize=${SANITIZE:-address,undefined}
bdir=${SANITIZE_BUILD:-build/asan}
case "$bdir" in /*) ;; *) bdir="$root/$bdir" ;; esac
pkg="$bdir/pkg"

# The real interpreter, not a version-manager shim (a shell script).
py=$("$py" -c 'import sys; print(sys.executable)')

# ---- the runtime to preload --------------------------------------------------
runtime() {   # print the full path of a runtime library, or nothing
  local p
  p=$("$cc" -print-file-name="$1" 2>/dev/null) || return 0
  case "$p" in /*) [ -e "$p" ] && echo "$p" ;; esac
}
preload=()
if "$cc" --version 2>/dev/null | grep -qi clang; then
  # clang's shared ASan runtime carries UBSan as well.
  lib=$(runtime "libclang_rt.asan-$(uname -m).so")
  [ -n "$lib" ] && preload+=("$lib")
else
  if [[ "$sanitize" == *address* ]]; then
    lib=$(runtime libasan.so)
    [ -n "$lib" ] && preload+=("$lib")
  fi
  if [[ "$sanitize" == *undefined* ]]; then
    lib=$(runtime libubsan.so)
    [ -n "$lib" ] && preload+=("$lib") || preload=()
  fi
fi
if [ ${#preload[@]} -eq 0 ]; then
  echo "sanitize.sh: $cc has no shared ASan/UBSan runtime" >&2
  exit 77
fi

# ---- build ------------------------------------------------------------------
# Straight CMake where the build tools are importable here (a developer
# checkout); otherwise through pip and scikit-build-core in an isolated build
# environment, as `pip install` builds (CI installs the project that way, so
# cmake/cython-cmake need not be in the test environment).  The option travels
# in SKBUILD_CMAKE_ARGS; the wheel's modules are unpacked into the build dir.
mkdir -p "$bdir"
if [ -z "${SANITIZE_VIA_PIP:-}" ] && command -v cmake >/dev/null &&
   "$py" -c 'import cython_cmake, Cython' 2>/dev/null; then
  modpath=$("$py" -c 'import cython_cmake, os; print(os.path.join(os.path.dirname(cython_cmake.__file__), "cmake"))')
  gen=()
  command -v ninja >/dev/null && gen=(-G Ninja)
  cmake -S . -B "$bdir" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER="$cc" -DPYLOOP_SANITIZE="$sanitize" \
    -DPython_EXECUTABLE="$py" -DCMAKE_MODULE_PATH="$modpath" >/dev/null
  cmake --build "$bdir" >/dev/null
else
  rm -rf "$bdir/wheel"
  CC="$cc" SKBUILD_CMAKE_ARGS="-DPYLOOP_SANITIZE=$sanitize" \
    "$py" -m pip wheel --no-deps --quiet -w "$bdir/wheel" \
    -Cbuild-dir="$bdir/skbuild" .
  "$py" - "$bdir" <<'EOF'
import glob, os, sys, zipfile
bdir = sys.argv[1]
(wheel,) = glob.glob(os.path.join(bdir, "wheel", "pyloop-*.whl"))
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith("pyloop/") and name.endswith(".so"):
            os.makedirs(os.path.join(bdir, os.path.dirname(name)), exist_ok=True)
            with open(os.path.join(bdir, name), "wb") as f:
                f.write(z.read(name))
EOF
fi

# ---- assemble the sanitized tree ----------------------------------------------
# Keep the C core tests' compile cache between runs; everything else is fresh.
cache="$bdir/core_build_cache"
rm -rf "$cache"
[ -d "$pkg/tests/core/_build" ] && mv "$pkg/tests/core/_build" "$cache"
rm -rf "$pkg"
mkdir -p "$pkg"
tar -C "$root" --exclude='*.so' --exclude=__pycache__ --exclude=_build \
  --exclude=.pytest_cache -cf - pyloop tests csrc examples pyproject.toml |
  tar -C "$pkg" -xf -
[ -d "$cache" ] && mv "$cache" "$pkg/tests/core/_build"
# An editable install (`pip install -e .`, as CI does) puts an import hook at
# the front of sys.meta_path that sends `import pyloop` to the worktree,
# whatever PYTHONPATH says.  site runs sitecustomize after the .pth files that
# install such hooks, so this one (first on PYTHONPATH) can drop them again.
cat > "$pkg/sitecustomize.py" <<'EOF'
"""Written by tools/sanitize.sh: make `import pyloop` find this sanitized copy.

Removes any import hook ahead of sys.path (an editable install's redirect)
that would load pyloop from somewhere else.  Shadows any other sitecustomize.
"""
import importlib.machinery
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_STANDARD = (importlib.machinery.BuiltinImporter,
             importlib.machinery.FrozenImporter,
             importlib.machinery.PathFinder)


def _sends_pyloop_elsewhere(finder):
    if finder in _STANDARD or isinstance(finder, _STANDARD):
        return False
    try:
        spec = finder.find_spec("pyloop", None)
    except Exception:
        return False
    origin = getattr(spec, "origin", None)
    return origin is not None and not os.path.abspath(origin).startswith(_HERE + os.sep)


sys.meta_path[:] = [f for f in sys.meta_path if not _sends_pyloop_elsewhere(f)]
EOF
# Both builds leave the modules in $bdir/pyloop/, laid out as the package.
sos=$(cd "$bdir" && find pyloop -name '*.so' 2>/dev/null)
if [ -z "$sos" ]; then
  echo "sanitize.sh: no extension modules in $bdir/pyloop" >&2
  exit 1
fi
for so in $sos; do cp "$bdir/$so" "$pkg/$so"; done

# ---- run ----------------------------------------------------------------------
export LD_PRELOAD="${preload[*]}${LD_PRELOAD:+ $LD_PRELOAD}"
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:allocator_may_return_null=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export PYTHONMALLOC=malloc
export PYTHONPATH="$pkg"
export PYLOOP_SANITIZED_RUN=1
export PYLOOP_TEST_LOOPS="${PYLOOP_TEST_LOOPS:-pyloop}"
sym=$(command -v llvm-symbolizer || true)
[ -n "$sym" ] && export ASAN_SYMBOLIZER_PATH="$sym"

cd "$pkg"
# Refuse to report on the wrong modules: they must be the copies just made,
# and ASan must really be in the process.
SANITIZE_LIST="$sanitize" "$py" - <<'EOF'
import glob, importlib, os, sys
import pyloop
here = os.getcwd()
# Every compiled module of the package, found by its file, so a new one is never left out.
names = sorted(os.path.relpath(so, here).split(".")[0].replace(os.sep, ".")
               for so in glob.glob(os.path.join(here, "pyloop", "**", "*.so"), recursive=True))
for m in map(importlib.import_module, names):
    if not os.path.abspath(m.__file__).startswith(here + os.sep):
        sys.exit(f"sanitize.sh: {m.__name__} came from {m.__file__}, not {here}")
want = []
if "address" in os.environ["SANITIZE_LIST"]:
    want.append(b"__asan_report")
if "undefined" in os.environ["SANITIZE_LIST"]:
    want.append(b"__ubsan_handle")
for so in glob.glob(os.path.join(here, "pyloop", "**", "*.so"), recursive=True):
    with open(so, "rb") as f:
        body = f.read()
    for sym in want:
        if sym not in body:
            sys.exit(f"sanitize.sh: {so} is not instrumented ({sym.decode()})")
with open("/proc/self/maps") as f:
    maps = f.read()
for part in os.environ["SANITIZE_LIST"].split(","):
    lib = {"address": "asan", "undefined": "ubsan"}.get(part)
    if lib and lib not in maps and "asan" not in maps:   # clang's asan has ubsan
        sys.exit(f"sanitize.sh: the {lib} runtime is not loaded")
print(f"sanitize.sh: sanitized pyloop at {os.path.dirname(pyloop.__file__)}")
EOF
case "$mode" in
  build) exit 0 ;;
  python) exec "$py" "$@" ;;
esac
exec "$py" -m pytest -p no:cacheprovider "$@"
