#!/usr/bin/env bash
# Fuzzes every libFuzzer target (tests/fuzz) for a bounded time, then reports per target the
# executions and, for the files the targets exercise, the line coverage the corpora reach (the
# committed seeds plus what this run found), from clang's source-based coverage.
#
#   scripts/fuzz.sh [--seconds N] [--only t1,t2]
#
# The fuzz preset builds with clang++ (libFuzzer, ASan, UBSan, coverage) under build/fuzz. Each
# target starts from a copy of tests/fuzz/corpus/<target>/ (the committed corpus is not changed).
# A crash, a leak, a hang or a failed check fails the run; the input stays in
# build/fuzz/run/<target>/ (crash-*, leak-*, timeout-*): add it to tests/fuzz/corpus/<target>/
# with the fix, so that the corpus replay (ctest fuzz.<target>.corpus) keeps it fixed.
# Writes build/fuzz/report.md. VEPF_FUZZ_JOBS (default 2) targets run at once. CI
# (scripts/test.sh) runs it with the default 60 s per target.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=60
only=
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) secs=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "fuzz: unknown argument '$1' (--seconds N, --only t1,t2)" >&2; exit 2 ;;
  esac
done
case "$secs" in ''|*[!0-9]*) echo "fuzz: --seconds takes a whole number of seconds, e.g. --seconds 60" >&2; exit 2 ;; esac

tool() {  # the LLVM tool matching clang's major version, else the unversioned one
  local v
  v=$(clang++ -dumpversion | cut -d. -f1)
  if command -v "$1-$v" >/dev/null; then echo "$1-$v"; else echo "$1"; fi
}
profdata=$(tool llvm-profdata)
cov=$(tool llvm-cov)
command -v "$profdata" >/dev/null && command -v "$cov" >/dev/null ||
  { echo "fuzz: $profdata / $cov missing: run scripts/install-deps.sh" >&2; exit 2; }

echo "== fuzz build (clang++, libFuzzer + ASan + UBSan, coverage)"
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz --target vepf_fuzz_all -j "${VEPF_JOBS:-2}"
bin=build/fuzz/tests/fuzz
mapfile -t all < <(find "$bin" -maxdepth 1 -type f -name '*_fuzz' -perm -u+x -printf '%f\n' | sort)
[ ${#all[@]} -gt 0 ] || { echo "fuzz: no libFuzzer target was built (is libclang-rt-14-dev installed?)" >&2; exit 1; }
targets=()
for t in "${all[@]}"; do
  if [ -z "$only" ] || [[ ",$only," == *",$t,"* ]]; then targets+=("$t"); fi
done
[ ${#targets[@]} -gt 0 ] || { echo "fuzz: --only matches none of: ${all[*]}" >&2; exit 2; }

run=build/fuzz/run
report=build/fuzz/report.md
rm -rf "$run" && mkdir -p "$run"
# One target: fuzz it, then replay its corpus once for coverage. Writes $w/summary (what to
# print), $w/row (its line of the report) and $w/rc; always returns 0 (the caller reads rc).
fuzz_one() {
  local t=$1 w="$run/$1" seeds rc=0 execs edges found
  mkdir -p "$w/corpus"
  [ -d "tests/fuzz/corpus/$t" ] && cp -r "tests/fuzz/corpus/$t/." "$w/corpus/"
  seeds=$(find "$w/corpus" -type f | wc -l)
  LLVM_PROFILE_FILE=/dev/null "$bin/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$w/" "$w/corpus" >"$w/fuzz.log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$w/fuzz.log" | tail -1)
  edges=$(grep -o 'cov: [0-9]*' "$w/fuzz.log" | tail -1 | cut -d' ' -f2 || true)  # none when it failed at once
  found=$(( $(find "$w/corpus" -type f | wc -l) - seeds ))
  {
    echo "== $t: $secs s from $seeds inputs"
    if [ "$rc" -ne 0 ]; then
      echo "FAIL: $t (exit $rc); the input that failed:"
      ls "$w" | grep -E '^(crash|leak|timeout|oom|slow-unit)-' || true
      tail -40 "$w/fuzz.log"
    fi
    echo "   ${execs:-?} executions, ${edges:-?} edges, $found new inputs, exit $rc"
  } >"$w/summary"
  # Coverage: every corpus input once, through the same binary (-runs=0 replays and exits).
  LLVM_PROFILE_FILE="$w/cov.profraw" "$bin/$t" -runs=0 -artifact_prefix="$w/replay-" "$w/corpus" >"$w/replay.log" 2>&1 || true
  echo "| $t | ${execs:-?} | $(( ${execs:-0} / (secs > 0 ? secs : 1) )) | ${edges:-?} | $seeds | $found | $([ "$rc" -eq 0 ] && echo ok || echo "**failed**") |" >"$w/row"
  echo "$rc" >"$w/rc"
}

# VEPF_FUZZ_JOBS targets at once (default 2: each libFuzzer process keeps one CPU busy).
parallel=${VEPF_FUZZ_JOBS:-2}
echo "== fuzzing ${#targets[@]} targets, $parallel at a time, $secs s each"
for t in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do wait -n || true; done
  fuzz_one "$t" &
done
wait
rows=()
objects=()
failed=0
for t in "${targets[@]}"; do
  w="$run/$t"
  if [ "$(cat "$w/rc" 2>/dev/null || echo 1)" -ne 0 ]; then
    failed=1
    cat "$w/summary" >&2 || echo "FAIL: $t: no result" >&2
  else
    cat "$w/summary"
  fi
  objects+=("$bin/$t")
  rows+=("$(cat "$w/row" 2>/dev/null || echo "| $t | ? | ? | ? | ? | ? | **failed** |")")
done

profs=()
for t in "${targets[@]}"; do [ -s "$run/$t/cov.profraw" ] && profs+=("$run/$t/cov.profraw"); done
cov_table="(no coverage data)"
if [ ${#profs[@]} -gt 0 ]; then
  "$profdata" merge -sparse "${profs[@]}" -o "$run/all.profdata"
  args=("${objects[0]}")
  for o in "${objects[@]:1}"; do args+=(-object "$o"); done
  # The project's parsers of peer-written memory, not the harnesses or system headers.
  cov_table=$("$cov" report "${args[@]}" -instr-profile="$run/all.profdata" \
    -ignore-filename-regex='(^/usr/|tests/|/include/)' 2>/dev/null |
    awk 'NR == 1 || /^-/ || /\.cc / || /^TOTAL/ { print }' | sed "s#$PWD/##")
fi

{
  echo "# Fuzzing: $secs s per target ($(date -u '+%Y-%m-%d %H:%M UTC'), $(git rev-parse --short HEAD 2>/dev/null || echo '?'))"
  echo
  echo "| target | executions | per second | edges | seed inputs | new inputs | result |"
  echo "|---|---:|---:|---:|---:|---:|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "Line coverage of the corpora (seeds and new inputs), all targets together:"
  echo
  echo '```'
  echo "$cov_table"
  echo '```'
} >"$report"
cat "$report"
exit "$failed"
