#!/usr/bin/env python3
"""Turns compare.sh's pairs (one JSON object per line) into a Markdown table and a PNG plot.

usage: report.py [--smoke] RESULTS.jsonl OUT_DIR
Each comparison's ratio is ours / peer for every pair; the table gives the median ratio, the
spread (min-max) and whether the median meets the target ("≥ 1.3×" for figures where higher is
better, "≤ 4×" where lower is better). Writes OUT_DIR/compare.md and OUT_DIR/compare.png
(gnuplot: one bar per comparison at its median, the whisker spanning the pairs' min-max).
"""
import datetime
import json
import os
import re
import statistics
import subprocess
import sys


def load(path):
    groups, checks = {}, []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                if r.get("check"):
                    checks.append(r)
                else:
                    groups.setdefault(r["name"], []).append(r)
    return groups, checks


def check_met(target, value):
    m = re.match(r"([≥≤])?\s*([0-9.]+)", target)
    if not m:
        return "–"
    bound = float(m.group(2))
    ok = value >= bound if m.group(1) == "≥" else value <= bound if m.group(1) == "≤" else value == bound
    return "yes" if ok else "**no**"


def meets(target, median):
    m = re.match(r"([≥≤])\s*([0-9.]+)", target)
    if not m:
        return "–"
    bound = float(m.group(2))
    ok = median >= bound if m.group(1) == "≥" else median <= bound
    return "yes" if ok else "**no**"


def main():
    args = sys.argv[1:]
    smoke = bool(args) and args[0] == "--smoke"
    if smoke:
        args = args[1:]
    if len(args) != 2:
        sys.exit(__doc__)
    results, out = args
    groups, checks = load(results)
    rows = []
    for name, pairs in groups.items():
        ratios = [p["ours"] / p["peer"] if p["peer"] else 0.0 for p in pairs]
        first = pairs[0]
        rows.append({
            "name": name, "peer": first["peer_name"], "unit": first["unit"], "better": first["better"],
            "target": first["target"], "median": statistics.median(ratios), "min": min(ratios), "max": max(ratios),
            "ours": statistics.median(p["ours"] for p in pairs), "peer_fig": statistics.median(p["peer"] for p in pairs),
            "pairs": len(pairs), "ratios": ratios,
        })
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "**Smoke run (one short pair each): checks that every comparison runs; not a measurement.**",
        "",
    ] if smoke else []
    lines += [
        f"Run {when} on {os.cpu_count()} CPUs by scripts/bench/compare.sh: each line alternates ours and the peer "
        "(A B, B A, ...); the ratio is ours / peer per pair.",
        "",
        "| comparison | peer | unit | ours (median) | peer (median) | pairs | median ratio | spread | target | met |",
        "|---|---|---|---:|---:|---:|---:|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['peer']} | {r['unit']} ({r['better']} is better) | {r['ours']:.3f} | {r['peer_fig']:.3f} "
            f"| {r['pairs']} | {r['median']:.3f}× | {r['min']:.3f}–{r['max']:.3f}× | {r['target']} | {meets(r['target'], r['median'])} |")
    if checks:
        lines += ["", "| check | value | target | met |", "|---|---:|---|---|"]
        for c in checks:
            lines.append(f"| {c['name']} | {c['value']} | {c['target']} | {check_met(c['target'], float(c['value']))} |")
    table_end = len(lines)
    lines += ["", "Ratios of each pair, in order:", ""]
    for r in rows:
        lines.append(f"- {r['name']}: " + ", ".join(f"{x:.3f}" for x in r["ratios"]))
    md = os.path.join(out, "compare.md")
    with open(md, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines[:table_end]))

    dat = os.path.join(out, "compare.dat")
    with open(dat, "w", encoding="utf-8") as f:
        for i, r in enumerate(rows):
            label = r["name"].replace('"', "'")
            f.write(f'{i} {r["median"]:.4f} {r["min"]:.4f} {r["max"]:.4f} "{label}"\n')
    png = os.path.join(out, "compare.png")
    script = f"""
set terminal pngcairo size 1200,{300 + 40 * len(rows)} font ",10"
set output "{png}"
set title "virtio-epf against its peers: ours / peer, median of pairs (whiskers: min-max)"
set style fill solid 0.5
set boxwidth 0.6
set yrange [-0.5:{len(rows) - 0.5}]
unset ytics
set arrow from 1, graph 0 to 1, graph 1 nohead lc rgb "red" dt 2
set grid xtics
set xlabel "ratio ours / peer"
set key off
plot "{dat}" using 2:1:(0):2:($1-0.3):($1+0.3) with boxxyerror lc rgb "#4a7ebb", \\
     "{dat}" using 2:1:3:4 with xerrorbars lc rgb "black" pt 7 ps 0.6, \\
     "{dat}" using (0.02):1:5 with labels left offset 0,0.9 font ",9"
"""
    try:
        subprocess.run(["gnuplot"], input=script, text=True, check=True)
        print(f"report: {md} and {png}")
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"report: {md} (no plot: {e})")


if __name__ == "__main__":
    main()
