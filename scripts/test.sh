#!/usr/bin/env bash
# The test command (README's second command; .ci/run calls it): installs what is missing,
# builds the default, static, arm64 and sanitizer presets, checks format and clang-tidy on the
# files the last change touched (scripts/tidy.sh), runs every test of the default build
# (unit, integration over loopback, network namespaces), checks the static vepf-ep against the
# default vepf-host, runs the unit tests cross-built for arm64 under qemu-user, under ASan+UBSan
# and under TSan, fuzzes every libFuzzer target for 60 s, two at a time (scripts/fuzz.sh: executions and the
# corpora's line coverage in build/fuzz/report.md), and the HIL stage on two QEMU machines (tests/hil/run.sh), where an arm64
# machine runs the arm64 vepf-ep. Between them it builds the .deb packages and checks them
# (tests/packaging/check_debs.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${VEPF_JOBS:-2}
scripts/install-deps.sh
scripts/check-barriers.sh

echo "== default build"
cmake --preset default >/dev/null
cmake --build --preset default -j "$jobs"
echo "== clang-format and clang-tidy on the files the last change touched (scripts/tidy.sh)"
scripts/tidy.sh
ctest --preset default -j 1

echo "== static vepf-ep (no shared libraries), serving a link to the default vepf-host"
cmake --preset static >/dev/null
cmake --build --preset static -j "$jobs"
if readelf -d build/static/ep-firmware/vepf-ep | grep -q NEEDED; then
  echo "static vepf-ep still needs shared libraries:" >&2
  readelf -d build/static/ep-firmware/vepf-ep | grep NEEDED >&2
  exit 1
fi
mix=build/static-mix
rm -rf "$mix" && mkdir -p "$mix/ep-firmware" "$mix/host-driver"
ln -s "$PWD/build/static/ep-firmware/vepf-ep" "$mix/ep-firmware/vepf-ep"
ln -s "$PWD/build/default/host-driver/vepf-host" "$mix/host-driver/vepf-host"
VEPF_STRICT_LINK=1 tests/integration/link_status_test.sh "$mix"

echo "== arm64 vepf-ep (cross-built, static) and its unit tests under qemu-aarch64-static"
cmake --preset arm64 >/dev/null
cmake --build --preset arm64 -j "$jobs"
ctest --preset arm64 -j "$jobs"

echo "== packages: vepf-host (default), vepf-ep (static, amd64 and arm64), unpacked and checked"
tests/packaging/check_debs.sh

echo "== asan-ubsan build (unit tests)"
cmake --preset asan-ubsan >/dev/null
cmake --build --preset asan-ubsan -j "$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --preset asan-ubsan -L unit -j "$jobs"

echo "== tsan build (unit tests)"
cmake --preset tsan >/dev/null
cmake --build --preset tsan -j "$jobs"
TSAN_OPTIONS=halt_on_error=1 ctest --preset tsan -L unit -j "$jobs"

echo "== fuzz: every libFuzzer target for ${VEPF_FUZZ_SECONDS:-60} s, then the corpora's line coverage (build/fuzz/report.md)"
scripts/fuzz.sh --seconds "${VEPF_FUZZ_SECONDS:-60}"

echo "== HIL: two QEMU machines"
tests/hil/run.sh
