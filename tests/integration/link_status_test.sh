#!/usr/bin/env bash
# Link status follows the other side, and vepf-host survives an EP restart:
#  1. both up: both TAPs have carrier, ping passes;
#  2. vepf-ep stops (SIGTERM): the host TAP loses carrier, vepf-host keeps running;
#  3. vepf-ep starts again (new epoch): the host re-attaches by itself, carrier returns, ping passes;
#  4. vepf-host stops: the EP TAP loses carrier (the driver went away), vepf-ep keeps running.
# Meanwhile `vepf-ep status` and `vepf-host status` (readable and --json) report the link, its
# epoch, the net device with its negotiated features, queues and the frames the pings moved, and
# vepf-host's status says "waiting" while the EP is gone.
# Both run with the board's [affinity] on one CPU (the last this script may use), and each must
# run on exactly it; a board naming a CPU this machine lacks stops vepf-ep with exit code 2.
# usage: link_status_test.sh BUILD_DIR
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$top/build/default}" && pwd)
# shellcheck source=../../scripts/lib/netns.sh
. "$top/scripts/lib/netns.sh"
cpu=$(python3 -c "import os; print(max(os.sched_getaffinity(0)))")
board="$work/board.toml"
printf '%s\n[affinity]\nep = [%s]\nhost = [%s]\n' "$(cat "$top/board-configs/loopback.toml")" "$cpu" "$cpu" >"$board"

check() {  # description command...
  local what=$1; shift
  if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; show_logs; exit 1; fi
}
ping_ok() { ip netns exec "$ns_host" ping -n -q -c 2 -i 0.2 -W 2 "$ep_ip" >/dev/null; }

netns_setup
start_ep
start_host
check "EP TAP has carrier after DRIVER_OK" wait_carrier "$ns_ep" up 10
check "host TAP has carrier while the device reports LINK_UP" wait_carrier "$ns_host" up 10
ip -n "$ns_ep" addr add "$ep_ip/24" dev "$(carrier "$ns_ep")"
ip -n "$ns_host" addr add "$host_ip/24" dev "$(carrier "$ns_host")"
check "ping across the link" ping_ok
runs_on() { test "$(awk '/^Cpus_allowed_list:/ {print $2}' "/proc/$1/status")" = "$cpu"; }
check "vepf-ep runs on CPU $cpu only ([affinity] ep)" runs_on "$ep_pid"
check "vepf-host runs on CPU $cpu only ([affinity] host)" runs_on "$host_pid"

# status: both programs describe the same link and device, as text and as JSON.
status() {  # ep|host [--json]
  local prog=$1; shift
  "$build/$([ "$prog" = ep ] && echo ep-firmware/vepf-ep || echo host-driver/vepf-host)" status --board "$board" --socket "$sock" "$@"
}
check "vepf-ep status: the net device running" sh -c "'$build/ep-firmware/vepf-ep' status --board '$board' --socket '$sock' | grep -q '\[0\] net: DRIVER_OK'"
check "vepf-host status: the net device running" sh -c "'$build/host-driver/vepf-host' status --board '$board' --socket '$sock' | grep -q '\[0\] net: DRIVER_OK'"
status ep --json >"$work/ep-status.json"
status host --json >"$work/host-status.json"
check "status --json of both sides: one link, one net device with its features, queues and counters" \
  python3 - "$work/ep-status.json" "$work/host-status.json" <<'PY'
import json, sys
ep, host = (json.load(open(f)) for f in sys.argv[1:3])
assert ep["program"] == "vepf-ep" and host["program"] == "vepf-host", (ep["program"], host["program"])
for s in (ep, host):
    assert s["link"]["state"] == "attached", s["link"]
    d = s["devices"]
    assert len(d) == 1 and d[0]["type"] == "net" and d[0]["driver_ok"], d
    assert "VERSION_1" in d[0]["feature_names"] and "MAC" in d[0]["feature_names"], d[0]["feature_names"]
    assert [q["index"] for q in d[0]["queues"]] == [0, 1], d[0]["queues"]
    assert all(q["size"] == 256 and not q["broken"] for q in d[0]["queues"]), d[0]["queues"]
    assert s["link_model"]["posted_writes"] > 0, s["link_model"]
assert ep["link"]["epoch"] == host["link"]["epoch"], (ep["link"], host["link"])
assert ep["devices"][0]["features"] == host["devices"][0]["features"]
# The pings crossed: frames both ways on both sides.
assert ep["devices"][0]["counters"]["to_driver"] >= 2 and ep["devices"][0]["counters"]["from_driver"] >= 2, ep["devices"][0]
assert host["devices"][0]["counters"]["tx_frames"] >= 2 and host["devices"][0]["counters"]["rx_frames"] >= 2, host["devices"][0]
# vepf-host reads nothing across the link to answer (the EP window read count stays).
PY

check "vepf-ep exits 0 on SIGTERM" stop_pid "$ep_pid"
ep_pid=
check "host TAP loses carrier when the EP stops" wait_carrier "$ns_host" down 3
check "vepf-host keeps running without the EP" kill -0 "$host_pid"
check "vepf-host status says it waits for the EP" sh -c "'$build/host-driver/vepf-host' status --board '$board' --socket '$sock' --json | grep -q '\"state\": \"waiting\"'"

start_ep
check "host TAP regains carrier after the EP restarts" wait_carrier "$ns_host" up 10
ip -n "$ns_ep" addr add "$ep_ip/24" dev "$(carrier "$ns_ep")"
check "ping across the link after the EP restart" ping_ok
check "vepf-host logged the re-attach to a new epoch" test "$(grep -c 'attached: epoch' "$work/host.log")" -eq 2

check "vepf-host exits 0 on SIGTERM" stop_pid "$host_pid"
host_pid=
check "EP TAP loses carrier when the driver goes away" wait_carrier "$ns_ep" down 3
check "vepf-ep keeps running without the host" kill -0 "$ep_pid"
bad="$work/bad-affinity.toml"
printf '%s\n[affinity]\nep = [1023]\n' "$(cat "$top/board-configs/loopback.toml")" >"$bad"
rc=0
"$build/ep-firmware/vepf-ep" --board "$bad" --socket "$work/bad.sock" 2>"$work/bad.err" || rc=$?
check "a CPU this machine lacks: exit code 2 (got $rc)" test "$rc" -eq 2
check "... and a message naming affinity.ep" grep -q "affinity.ep = \[1023\]: this machine has no CPU 1023" "$work/bad.err"
echo "link status test passed"
