#!/usr/bin/env bash
# System packages beyond Python.
#   bash tools/ci_setup.sh          what the test suite needs: PostgreSQL and Redis for
#                                   tests/integration, clang (libFuzzer, sanitizers) and
#                                   valgrind for the C core and reliability tests, wrk for
#                                   the HTTP benchmark smoke test, tmux for the terminal test
#                                   of `python -m pyloop top`, a C compiler
#   bash tools/ci_setup.sh bench    what the benchmark comparison needs: a C compiler, wrk
# Installs only what is missing; needs root (or sudo) for apt-get.
set -euo pipefail
need=()
if [ "${1:-test}" = bench ]; then
  command -v wrk >/dev/null || need+=(wrk)
  command -v cc >/dev/null || need+=(build-essential)
else
  command -v redis-server >/dev/null || need+=(redis-server)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
  command -v clang >/dev/null || need+=(clang)
  command -v llvm-symbolizer >/dev/null || need+=(llvm)
  if command -v clang >/dev/null &&
     ! [ -e "$(clang -print-file-name=libclang_rt.fuzzer-$(uname -m).a 2>/dev/null)" ] &&
     apt-cache show libclang-rt-dev >/dev/null 2>&1; then
    need+=(libclang-rt-dev)   # libFuzzer and clang's sanitizer runtimes: clang only recommends them
  elif ! command -v clang >/dev/null; then
    need+=(libclang-rt-dev)
  fi
  command -v valgrind >/dev/null || need+=(valgrind)
  command -v wrk >/dev/null || need+=(wrk)
  command -v openssl >/dev/null || need+=(openssl)
  command -v tmux >/dev/null || need+=(tmux)
  command -v cc >/dev/null || need+=(build-essential)
fi
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "ci_setup: please install: ${need[*]}" >&2
  exit 1
fi
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
echo "ci_setup: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
