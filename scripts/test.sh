#!/usr/bin/env bash
# The test command (README's second command; .ci/run calls it): installs what is missing,
# builds the default and asan-ubsan presets, runs every test of the default build (unit,
# integration over loopback, network namespaces) and the unit tests under ASan+UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${VEPF_JOBS:-2}
scripts/install-deps.sh

echo "== default build"
cmake --preset default >/dev/null
cmake --build --preset default -j "$jobs"
ctest --preset default -j 1

echo "== asan-ubsan build (unit tests)"
cmake --preset asan-ubsan >/dev/null
cmake --build --preset asan-ubsan -j "$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --preset asan-ubsan -L unit -j "$jobs"
