#!/usr/bin/env bash
# Soak (not in CI): every device type on one loopback link with traffic, round after round, and a
# block device hot-added and removed each round, for a given time; both programs' RSS and open
# descriptors are sampled every round.
#   net: iperf3 host -> EP for the round; rpmsg: vepf-rpmsg bench (echoes checked, none lost);
#   block: nbdcopy of 16 MiB to the device and back, byte-identical; console: 1 MiB each way
#   between a socket port and its pty, byte-identical.
# usage: scripts/soak.sh [--minutes M] [--build-dir DIR]     (default 60 minutes; needs root)
# Writes build/soak/samples.csv (round, seconds, RSS KiB and fds of each program) and prints the
# growth of RSS and descriptors from the first to the last quarter of the run. Exit status 1 on any
# lost or corrupt message, frame or byte, a failed hot-plug, or growth of 5 % or more.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build="$top/build/default"
minutes=60
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes=$2; shift 2 ;;
    --build-dir) build=$(cd "$2" && pwd); shift 2 ;;
    *) echo "soak: unknown argument '$1' (--minutes M, --build-dir DIR)" >&2; exit 2 ;;
  esac
done
case "$minutes" in ''|*[!0-9]*) echo "soak: --minutes takes a whole number, e.g. --minutes 60" >&2; exit 2 ;; esac
[ "$(id -u)" -eq 0 ] || { echo "soak: needs root (network namespaces, TAPs)" >&2; exit 2; }
for t in ip iperf3 nbdcopy python3; do
  command -v "$t" >/dev/null || { echo "soak: $t missing: run scripts/install-deps.sh" >&2; exit 2; }
done
# shellcheck source=lib/netns.sh
. "$top/scripts/lib/netns.sh"
# shellcheck source=lib/all_devices.sh
. "$top/scripts/lib/all_devices.sh"
out="$top/build/soak"
mkdir -p "$out"
board="$work/board.toml"
rt="$work/rt"  # all_devices_tables puts the rpmsg runtime_dir here
cat >"$board" <<TOML
[board]
name = "soak"
platform = "loopback"
[loopback]
socket = "$sock"
[control]
allowed_dirs = ["$work"]
TOML
all_devices_tables $((32 << 20)) >>"$board"

ctl() { "$build/ep-firmware/vepf-ep" ctl --board "$board" --ctl-socket "$sock.ctl" "$@"; }
fail() { echo "soak: FAIL: $*" >&2; show_logs >&2; exit 1; }

netns_setup
start_ep
start_host
all_devices_up || fail "the devices did not come up"
ip netns exec "$ns_ep" iperf3 -s -B "$ep_ip" >"$work/iperf-server.log" 2>&1 &
extra_pids="$extra_pids $!"
ep_pid=$(pgrep -f "vepf-ep --board $board" | head -1)
host_pid=$(pgrep -f "vepf-host --board $board" | head -1)
sample() {  # round seconds: one CSV line
  local r=$1 s=$2 er eh ef hf
  er=$(awk '/VmRSS/ {print $2}' "/proc/$ep_pid/status")
  eh=$(awk '/VmRSS/ {print $2}' "/proc/$host_pid/status")
  ef=$(ls "/proc/$ep_pid/fd" | wc -l)
  hf=$(ls "/proc/$host_pid/fd" | wc -l)
  echo "$r,$s,$er,$ef,$eh,$hf" >>"$out/samples.csv"
}
echo "round,seconds,ep_rss_kib,ep_fds,host_rss_kib,host_fds" >"$out/samples.csv"
head -c $((16 << 20)) /dev/urandom >"$work/src.img"

t0=$(date +%s)
end=$((t0 + minutes * 60))
round=0
sleep 1
sample 0 0
while [ "$(date +%s)" -lt "$end" ]; do
  round=$((round + 1))
  ip netns exec "$ns_host" timeout 60 iperf3 -c "$ep_ip" -t 8 >"$work/iperf.out" 2>&1 &
  iperf_pid=$!
  "$build/tools/vepf-rpmsg/vepf-rpmsg" bench --socket "$rt/host/echo.sock" --count 2000 --size random >"$work/bench.out" 2>&1 &
  bench_pid=$!
  ( nbdcopy "$work/src.img" "nbd+unix:///?socket=$work/blk.sock" &&
    nbdcopy "nbd+unix:///?socket=$work/blk.sock" "$work/back.img" ) >"$work/nbdcopy.out" 2>&1 &
  copy_pid=$!
  python3 "$top/tests/integration/console_pump.py" "$work/console/data" "$work/console-data.sock" $((1 << 20)) \
    >"$work/console.out" 2>&1 &
  console_pid=$!
  # Hot add and remove under that traffic.
  add=$(ctl add 'type = "block"' "block = { path = \"$work/disk-r.img\", size = 1048576 }") || fail "round $round: ctl add: $add"
  slot=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["slot"])' "$add")
  wait_path "/run/vepf/block$slot.sock" || fail "round $round: the added block device did not appear on the host"
  ctl remove "$slot" >/dev/null || fail "round $round: ctl remove $slot"
  wait "$copy_pid" || fail "round $round: nbdcopy: $(cat "$work/nbdcopy.out")"
  cmp -s -n $((16 << 20)) "$work/src.img" "$work/back.img" || fail "round $round: block round trip differs"
  wait "$bench_pid" || fail "round $round: rpmsg bench: $(cat "$work/bench.out")"
  grep -q 'mismatches 0' "$work/bench.out" && grep -q 'lost 0' "$work/bench.out" ||
    fail "round $round: rpmsg: $(cat "$work/bench.out")"
  wait "$console_pid" || fail "round $round: console: $(cat "$work/console.out")"
  wait "$iperf_pid" || fail "round $round: iperf3: $(cat "$work/iperf.out")"
  sample "$round" $(($(date +%s) - t0))
  echo "round $round ok ($(($(date +%s) - t0)) s): $(tail -1 "$out/samples.csv")"
done

python3 - "$out/samples.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))[1:]  # round 0 is before any traffic
if len(rows) < 4:
    print(f"soak: {len(rows)} rounds: too few to compare quarters"); sys.exit(0)
q = max(1, len(rows) // 4)
bad = False
for key in ("ep_rss_kib", "ep_fds", "host_rss_kib", "host_fds"):
    first = max(int(r[key]) for r in rows[:q])
    last = max(int(r[key]) for r in rows[-q:])
    growth = (last - first) / first * 100 if first else 0.0
    print(f"{key}: first quarter max {first}, last quarter max {last}, growth {growth:+.1f} %")
    bad |= growth >= 5.0
print(f"rounds: {len(rows)}; no loss, no corruption")
sys.exit(1 if bad else 0)
PY
