#!/usr/bin/env bash
# Link status follows the other side, and vepf-host survives an EP restart:
#  1. both up: both TAPs have carrier, ping passes;
#  2. vepf-ep stops (SIGTERM): the host TAP loses carrier, vepf-host keeps running;
#  3. vepf-ep starts again (new epoch): the host re-attaches by itself, carrier returns, ping passes;
#  4. vepf-host stops: the EP TAP loses carrier (the driver went away), vepf-ep keeps running.
# usage: link_status_test.sh BUILD_DIR
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$top/build/default}" && pwd)
board="$top/board-configs/loopback.toml"
# shellcheck source=../../scripts/lib/netns.sh
. "$top/scripts/lib/netns.sh"

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

check "vepf-ep exits 0 on SIGTERM" stop_pid "$ep_pid"
ep_pid=
check "host TAP loses carrier when the EP stops" wait_carrier "$ns_host" down 3
check "vepf-host keeps running without the EP" kill -0 "$host_pid"

start_ep
check "host TAP regains carrier after the EP restarts" wait_carrier "$ns_host" up 10
ip -n "$ns_ep" addr add "$ep_ip/24" dev "$(carrier "$ns_ep")"
check "ping across the link after the EP restart" ping_ok
check "vepf-host logged the re-attach to a new epoch" test "$(grep -c 'attached: epoch' "$work/host.log")" -eq 2

check "vepf-host exits 0 on SIGTERM" stop_pid "$host_pid"
host_pid=
check "EP TAP loses carrier when the driver goes away" wait_carrier "$ns_ep" down 3
check "vepf-ep keeps running without the host" kill -0 "$ep_pid"
echo "link status test passed"
