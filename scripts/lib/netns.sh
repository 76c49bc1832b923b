# Shared by scripts/demo-loopback.sh and tests/integration/*.sh: two network namespaces with
# vepf-ep in one and vepf-host in the other, and a cleanup that leaves nothing behind.
# Source it after setting: build (dir with ep-firmware/vepf-ep, host-driver/vepf-host), board.
# Provides: ns_ep ns_host work sock ep_ip host_ip ep_pid host_pid, and the functions below.

ns_ep="vepf-ep-$$"
ns_host="vepf-host-$$"
work=$(mktemp -d /tmp/vepf-netns.XXXXXX)
sock="$work/link.sock"
ep_ip=198.18.0.2     # RFC 2544 benchmarking range, inside the namespaces only
host_ip=198.18.0.1
ep_pid=
host_pid=
extra_pids=

netns_cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for p in $extra_pids $host_pid $ep_pid; do kill -TERM "$p" 2>/dev/null || true; done
  for p in $extra_pids $host_pid $ep_pid; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  ip netns del "$ns_ep" 2>/dev/null || true
  ip netns del "$ns_host" 2>/dev/null || true
  rm -rf "$work"
  exit "$rc"
}

netns_setup() {
  [ "$(id -u)" -eq 0 ] || { echo "needs root for network namespaces and TAP devices" >&2; exit 2; }
  [ -x "$build/ep-firmware/vepf-ep" ] && [ -x "$build/host-driver/vepf-host" ] || {
    echo "no binaries in $build: build first (cmake --preset default && cmake --build --preset default)" >&2
    exit 2
  }
  trap netns_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  ip netns add "$ns_ep"
  ip netns add "$ns_host"
  ip -n "$ns_ep" link set lo up
  ip -n "$ns_host" link set lo up
}

start_ep() {  # extra args...; log appended to $work/ep.log
  ip netns exec "$ns_ep" "$build/ep-firmware/vepf-ep" --board "$board" --socket "$sock" "$@" >>"$work/ep.log" 2>&1 &
  ep_pid=$!
}

start_host() {
  ip netns exec "$ns_host" "$build/host-driver/vepf-host" --board "$board" --socket "$sock" "$@" >>"$work/host.log" 2>&1 &
  host_pid=$!
}

# carrier NS: prints the name of the namespace's vepf* interface if it is up with carrier.
carrier() {
  ip -n "$1" -o link show up 2>/dev/null | awk -F': ' '$2 ~ /^vepf/ && /LOWER_UP/ {print $2; exit}'
}

# wait_carrier NS up|down SECONDS: waits until the interface has (up) or lacks (down) carrier.
wait_carrier() {
  local i
  for i in $(seq $(($3 * 10))); do
    if [ "$2" = up ]; then [ -n "$(carrier "$1")" ] && return 0; else [ -z "$(carrier "$1")" ] && return 0; fi
    sleep 0.1
  done
  return 1
}

stop_pid() {  # pid: SIGTERM, wait, return its exit status
  kill -TERM "$1" 2>/dev/null || true
  local rc=0
  wait "$1" || rc=$?
  return $rc
}

# run_waiting OUTFILE CMD...: runs CMD in the background and waits for it, so that a signal to
# this script runs its trap at once (bash defers traps while a foreground command runs).
run_waiting() {
  local out=$1; shift
  "$@" >"$out" 2>&1 &
  local p=$!
  extra_pids="$extra_pids $p"
  local rc=0
  wait "$p" || rc=$?
  extra_pids=${extra_pids% $p}
  return $rc
}

show_logs() {
  echo "--- vepf-ep log"; cat "$work/ep.log" 2>/dev/null
  echo "--- vepf-host log"; cat "$work/host.log" 2>/dev/null
}
