#!/usr/bin/env bash
# scripts/bench/compare.sh --smoke runs every comparison once (ring, rtt, tcp, rpmsg, block) and
# writes its report: a Markdown table with a row per comparison whose figures are all non-zero,
# the programs' checks (idle CPU, non-posted reads under traffic), and a PNG. Figures are not
# checked against any target (a smoke run is not a measurement).
# usage: compare_smoke_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1
build=$2
out=$(mktemp -d /tmp/vepf-compare-smoke.XXXXXX)
trap 'rm -rf "$out"' EXIT
"$src/scripts/bench/compare.sh" --smoke --build-dir "$build" --out "$out"
python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
records = [json.loads(l) for l in open(os.path.join(out, "compare.jsonl")) if l.strip()]
rows = [r for r in records if not r.get("check")]
checks = [r for r in records if r.get("check")]
names = {r["name"] for r in rows}
want = ["ring 64 B to-device", "RTT p50, 64 B, polling", "RTT p50, 64 B, notified", "TCP host->EP", "TCP EP->host",
        "rpmsg RTT p50, 64 B", "rpmsg one-way stream, 64 B", "NBD read", "NBD write"]
fail = [w for w in want if not any(w in n for n in names)]
fail += [f"{r['name']}: ours {r['ours']}, peer {r['peer']}" for r in rows if not (r["ours"] > 0 and r["peer"] > 0)]
for what in ("vepf-ep CPU on an idle link", "vepf-host CPU on an idle link", "vepf-ep non-posted reads",
             "vepf-host non-posted reads"):
    if not any(c["name"].startswith(what) for c in checks):
        fail.append(f"no check '{what}'")
md = open(os.path.join(out, "compare.md")).read()
fail += [f"check {c['name']} missing from compare.md" for c in checks if c["name"] not in md]
fail += [f"{n} missing from compare.md" for n in names if n not in md]
png = open(os.path.join(out, "compare.png"), "rb").read(8)
if png != b"\x89PNG\r\n\x1a\n":
    fail.append("compare.png is not a PNG")
for f in fail:
    print("FAIL:", f)
sys.exit(1 if fail else 0)
PY
