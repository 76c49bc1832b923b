#!/usr/bin/env bash
# The loopback demo: vepf-ep and vepf-host as two processes joined by the loopback platform, each
# in its own network namespace with a TAP interface; IP traffic crosses the virtio-net link.
# Shows ping both ways, iperf3 both ways, and the link-model counters per frame.
# Leaves nothing behind (namespaces, processes, TAPs, sockets), also when interrupted.
# Needs root (network namespaces, TAP). Exit status 0 only if all traffic passed.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: scripts/demo-loopback.sh [--build-dir DIR] [--iperf-seconds N] [--pings N] [--board FILE] [--no-offloads]
  --build-dir DIR      where vepf-ep and vepf-host were built (default: build/default)
  --iperf-seconds N    length of each iperf3 run (default: 10; 0 skips iperf3)
  --pings N            pings in each direction (default: 5)
  --board FILE         board config (default: board-configs/loopback.toml)
  --no-offloads        the board config with every net device's offloads masked (offloads = false)
USAGE
}

top=$(cd "$(dirname "$0")/.." && pwd)
build="$top/build/default"
secs=10
pings=5
board="$top/board-configs/loopback.toml"
no_offloads=0
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build=$(cd "$2" && pwd); shift 2 ;;
    --iperf-seconds) secs=$2; shift 2 ;;
    --pings) pings=$2; shift 2 ;;
    --board) board=$2; shift 2 ;;
    --no-offloads) no_offloads=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "demo: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
case "$secs$pings" in *[!0-9]*) echo "demo: --iperf-seconds and --pings take whole numbers" >&2; exit 2 ;; esac
for t in ip ping iperf3; do
  command -v "$t" >/dev/null || { echo "demo: '$t' missing: run scripts/install-deps.sh" >&2; exit 2; }
done
# shellcheck source=lib/netns.sh
. "$top/scripts/lib/netns.sh"
iperf_pid=

fail() { echo "demo: FAIL: $*" >&2; failed=1; }
failed=0

netns_setup
if [ "$no_offloads" = 1 ]; then
  # A copy of the board config with offloads = false in every [device.net] table.
  awk '{ if ($0 ~ /^[[:space:]]*offloads[[:space:]]*=/) next; print } /^\[device\.net\]/ { print "offloads = false" }' \
    "$board" >"$work/board.toml"
  board="$work/board.toml"
fi
start_ep
start_host --once

# The TAPs have carrier once the driver set DRIVER_OK (EP) and the device reports link up (host).
if ! wait_carrier "$ns_ep" up 10 || ! wait_carrier "$ns_host" up 10; then
  show_logs
  echo "demo: FAIL: the link did not come up within 10 s" >&2
  exit 1
fi
ep_if=$(carrier "$ns_ep")
host_if=$(carrier "$ns_host")
ip -n "$ns_ep" addr add "$ep_ip/24" dev "$ep_if"
ip -n "$ns_host" addr add "$host_ip/24" dev "$host_if"

echo "== virtio-epf loopback demo: $ns_host ($host_if $host_ip) <-> virtio-net <-> $ns_ep ($ep_if $ep_ip)"

ping_dir() {  # ns target label
  local out
  if run_waiting "$work/ping.out" ip netns exec "$1" ping -n -q -c "$pings" -i 0.2 -W 2 "$2"; then
    out=$(cat "$work/ping.out")
    local rx rtt
    rx=$(printf '%s\n' "$out" | awk '/packets transmitted/ {print $4}')
    rtt=$(printf '%s\n' "$out" | awk -F'/' '/^rtt/ {print $5}')
    printf 'ping %-8s %s/%s replies, RTT avg %s ms\n' "$3" "$rx" "$pings" "$rtt"
    [ "$rx" = "$pings" ] || fail "ping $3 lost replies"
  else
    cat "$work/ping.out"
    fail "ping $3"
  fi
}
if [ "$pings" -gt 0 ]; then
  ping_dir "$ns_host" "$ep_ip" "host->EP"
  ping_dir "$ns_ep" "$host_ip" "EP->host"
fi

iperf_dir() {  # label extra-args
  ip netns exec "$ns_ep" iperf3 -s -1 -B "$ep_ip" >"$work/iperf-server.log" 2>&1 &
  iperf_pid=$!
  extra_pids="$extra_pids $iperf_pid"
  for _ in $(seq 50); do ip netns exec "$ns_ep" ss -ltn 2>/dev/null | grep -q ":5201 " && break; sleep 0.1; done
  local out
  if run_waiting "$work/iperf.out" ip netns exec "$ns_host" timeout $((secs + 20)) iperf3 -c "$ep_ip" -t "$secs" -f g $2; then
    out=$(cat "$work/iperf.out")
    local rate
    rate=$(printf '%s\n' "$out" | awk '/receiver$/ {for (i = 1; i <= NF; i++) if ($i ~ /bits\/sec$/) print $(i-1), $i}')
    printf 'iperf3 %-8s %s s: %s\n' "$1" "$secs" "${rate:-?}"
    [ -n "$rate" ] || fail "iperf3 $1 printed no result"
  else
    cat "$work/iperf.out"
    fail "iperf3 $1"
  fi
  wait "$iperf_pid" 2>/dev/null || true
  extra_pids=${extra_pids% $iperf_pid}
  iperf_pid=
}
if [ "$secs" -gt 0 ]; then
  iperf_dir "host->EP" ""
  iperf_dir "EP->host" "-R"
fi

# Stop the host first (it prints its steady-state counters), then the EP.
stop_pid "$host_pid" || fail "vepf-host exited with status $?"
host_pid=
stop_pid "$ep_pid" || fail "vepf-ep exited with status $?"
ep_pid=
echo "link model (ARCHITECTURE.md §1): what crossed the link, per frame, after setup"
grep -h -A2 "link model:" "$work/host.log" | tail -n 3 | sed 's/^[0-9:.]* info \[[a-z.]*\] /  /'
grep -h -A2 "link model:" "$work/ep.log" | tail -n 3 | sed 's/^[0-9:.]* info \[[a-z.]*\] /  /'
if grep -qE " (error|warning|critical) \[" "$work/ep.log" "$work/host.log"; then
  echo "--- warnings and errors from the programs"
  grep -hE " (error|warning|critical) \[" "$work/ep.log" "$work/host.log" || true
fi
if [ "$failed" -ne 0 ]; then
  echo "demo: some traffic failed" >&2
  exit 1
fi
echo "demo: all traffic passed"
