#!/usr/bin/env bash
# `--check-config` over every shipped board config, with both programs (issue 15): each must be
# valid, each real SoC's [soc] must cite its sources, and a broken config must exit 2 with the
# field named. Usage: check_configs_test.sh BUILD_DIR
set -euo pipefail
build=$1
src=$(cd "$(dirname "$0")/../.." && pwd)
ep="$build/ep-firmware/vepf-ep"
host="$build/host-driver/vepf-host"
n=0
socs=0
for f in "$src"/board-configs/*.toml; do
  for prog in "$ep" "$host"; do
    if ! out=$("$prog" --check-config "$f" 2>&1); then
      echo "FAIL: $(basename "$prog") --check-config $f:"; echo "$out"; exit 1
    fi
  done
  echo "$out" | head -1
  n=$((n + 1))
  if grep -q '^\[soc\]' "$f"; then
    socs=$((socs + 1))
    # Every constraint comes from somewhere: a "Sources:" block naming Linux files or manuals.
    grep -q '^# Sources:' "$f" || { echo "FAIL: $f has [soc] but no '# Sources:' block"; exit 1; }
    grep -Eq '^#  *- .*(drivers/|arch/|Documentation/|TRM|Reference Manual|datasheet)' "$f" ||
      { echo "FAIL: $f cites no Linux file or manual under '# Sources:'"; exit 1; }
  fi
done
echo "$n board configs valid, $socs with a real SoC's [soc]"
[ "$n" -ge 7 ] || { echo "FAIL: only $n board configs (issue 15 wants at least seven)"; exit 1; }
[ "$socs" -ge 6 ] || { echo "FAIL: only $socs real SoCs (issue 15 wants at least six)"; exit 1; }

# A broken config: exit 2, the field named, on both programs.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed 's/^bar_align = .*/bar_align = 0x3000/' "$(grep -l '^bar_align' "$src"/board-configs/*.toml | head -1)" >"$tmp/bad.toml"
for prog in "$ep" "$host"; do
  rc=0
  out=$("$prog" --check-config "$tmp/bad.toml" 2>&1) || rc=$?
  [ "$rc" -eq 2 ] || { echo "FAIL: $(basename "$prog") exits $rc on a bad config (want 2): $out"; exit 1; }
  echo "$out" | grep -q 'soc.bar_align' || { echo "FAIL: the message does not name soc.bar_align: $out"; exit 1; }
done
echo "a bad config exits 2 naming the field"
