#!/usr/bin/env bash
# The benchmarks run (DEVELOPERS.md: benchmarks are programs, never timed tests): a few short
# iterations of every mode, direction, copy count and variant of vepf-bench-ring, its references,
# the Google Benchmark micro-benchmarks and vepf-bench-copy. Asserts what they report, never how
# fast: every case moved messages without an error, the ring made no non-posted read in any case,
# a polled case sent no signal, and the data path made no heap allocation.
# usage: bench_smoke_test.sh BUILD_DIR
set -euo pipefail
build=$1
ring="$build/bench/vepf-bench-ring"
work=$(mktemp -d /tmp/vepf-bench-smoke.XXXXXX)
trap 'rm -rf "$work"' EXIT

"$ring" --json --ms 20 --mode poll,notify,adaptive --size 64,65536 --copies 0,1,2 >"$work/stream.json"
"$ring" --json --ms 20 --mode poll,notify,adaptive --pingpong --size 64,1500 >"$work/pingpong.json"
"$ring" --json --ms 20 --threads --size 1500 >"$work/threads.json"
"$ring" --json --ms 20 --memory device --size 1500 --copies 2 >"$work/device.json"
"$ring" --json --ms 20 --no-event-idx --mode notify --size 256 >"$work/flags.json"
"$ring" --json --ms 20 --reference cacheline >"$work/cacheline.json"
"$ring" --json --ms 20 --reference eventfd >"$work/eventfd.json"
"$build/bench/vepf-bench-ring-micro" --benchmark_min_time=0.01 --benchmark_format=json >"$work/micro.json"
"$build/bench/vepf-bench-copy" --pairs 2 --ms 1 --json >"$work/copy.json"

python3 - "$work" <<'PY'
import json, os, sys
work = sys.argv[1]
fail = []
cases = 0
for name in ("stream", "pingpong", "threads", "device", "flags"):
    for c in json.load(open(os.path.join(work, name + ".json"))):
        cases += 1
        what = f"{name}: {c['mode']} {c['direction']} {c['bytes']} B, {c['copies']} copies"
        if "error" in c:
            fail.append(f"{what}: {c['error']}")
            continue
        if c["messages"] <= 0:
            fail.append(f"{what}: no messages")
        for side in ("device", "driver"):
            if c[side]["nonposted_reads_per_message"] != 0:
                fail.append(f"{what}: the {side} made non-posted reads")
        if c["mode"] == "poll" and c["signals_per_message"] != 0:
            fail.append(f"{what}: polling sent signals")
        if c["direction"] == "pingpong" and not c["rtt_p50_us"] > 0:
            fail.append(f"{what}: no round-trip figure")
expected = 3 * 2 * 2 * 3 + 3 * 2 + 2 + 2 + 2
if cases != expected:
    fail.append(f"{cases} ring cases reported, {expected} expected")
for ref in ("cacheline", "eventfd"):
    r = json.load(open(os.path.join(work, ref + ".json")))[0]
    if "error" in r or r["samples"] <= 0:
        fail.append(f"{ref} reference: {r}")
micro = json.load(open(os.path.join(work, "micro.json")))["benchmarks"]
if len(micro) != 3:
    fail.append(f"{len(micro)} micro-benchmarks ran, 3 expected")
for b in micro:
    if b.get("allocs_per_chain", 1) != 0:
        fail.append(f"{b['name']}: {b.get('allocs_per_chain')} heap allocations per chain")
copy = json.load(open(os.path.join(work, "copy.json")))
if not copy or any(not r["median_ratio"] > 0 for r in copy):
    fail.append("vepf-bench-copy reported no ratios")
for f in fail:
    print("FAIL:", f)
print(f"bench smoke: {cases} ring cases, 2 references, {len(micro)} micro-benchmarks, {len(copy)} copy cases")
sys.exit(1 if fail else 0)
PY
