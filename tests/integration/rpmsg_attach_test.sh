#!/usr/bin/env bash
# An application takes one rpmsg device with the library while vepf-ep and vepf-host keep running
# ([device.rpmsg] ep_serve / host_serve = "application", vepf_rpmsg_attach()):
#  1. the C echo service attaches to vepf-ep's device, the C echo client to vepf-host's: it finds
#     the service by the name service and 500 messages come back intact;
#  2. a second service is refused while the first holds the device (exit 1, a clear message);
#  3. the service is killed (SIGKILL) and started again: it attaches again, the client finds it;
#  4. vepf-ep stops and starts again while the service stays: the service's poll attaches again
#     by itself, re-announces, and the client's 500 messages come back;
#  5. a board whose device says "channels" for that side: attach fails naming host_serve.
# Meanwhile device 1, with the default ep_serve / host_serve, is served as socket channels.
# usage: rpmsg_attach_test.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
work=$(mktemp -d /tmp/vepf-attach.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ep_bin="$build/ep-firmware/vepf-ep"
host_bin="$build/host-driver/vepf-host"
svc_bin="$build/examples/rpmsg_echo_service"
client_bin="$build/examples/rpmsg_echo_client"

cat >"$work/board.toml" <<TOML
[board]
name = "attach-test"
platform = "loopback"
[link]
ep_window_size = 4194304
rc_window_size = 4194304
[loopback]
socket = "$work/link.sock"
[[device]]
type = "rpmsg"
queue_size = 64
rpmsg = { runtime_dir = "$work/rpmsg0", ep_serve = "application", host_serve = "application" }
[[device]]
type = "rpmsg"
queue_size = 16
rpmsg = { runtime_dir = "$work/rpmsg1" }
TOML
sed 's/host_serve = "application"/host_serve = "channels"/' "$work/board.toml" >"$work/channels.toml"

show_logs() {
  for f in "$work"/*.log "$work"/*.out; do [ -e "$f" ] && { echo "--- $f"; tail -n 20 "$f"; }; done
}
check() {  # description command...
  local what=$1; shift
  if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; show_logs; exit 1; fi
}
wait_file() {  # path seconds
  local i
  for i in $(seq $(($2 * 20))); do [ -e "$1" ] && return 0; sleep 0.05; done
  return 1
}
start_ep() {
  "$ep_bin" --board "$work/board.toml" >>"$work/ep.log" 2>&1 &
  ep_pid=$!
  pids+=("$ep_pid")
}
start_service() {
  "$svc_bin" --attach "$work/board.toml" 0 >"$work/service$1.log" 2>&1 &
  svc_pid=$!
  pids+=("$svc_pid")
}
echo_500() {
  timeout 60 "$client_bin" --attach "$work/board.toml" 0 500 64 >"$work/client.out" 2>&1 &&
    grep -q "500 echoed, 0 corrupt" "$work/client.out"
}

start_ep
check "vepf-ep lends device 0 on rpmsg0/ep/device.sock" wait_file "$work/rpmsg0/ep/device.sock" 10
check "vepf-ep serves device 1 as channels (rpmsg1/ep/announce.sock)" test -S "$work/rpmsg1/ep/announce.sock"
"$host_bin" --board "$work/board.toml" >"$work/host.log" 2>&1 &
pids+=($!)
check "vepf-host lends device 0 on rpmsg0/host/device.sock" wait_file "$work/rpmsg0/host/device.sock" 10
check "vepf-host serves device 1 as channels" wait_file "$work/rpmsg1/host/announce.sock" 10

start_service 1
check "the client attached to vepf-host finds the attached service and 500 echoes come back" echo_500
cat "$work/client.out"

rc=0
timeout 30 "$svc_bin" --attach "$work/board.toml" 0 >"$work/second.out" 2>&1 || rc=$?
check "a second service is refused while the first holds the device (exit $rc)" test "$rc" -eq 1
check "... saying another application has it" grep -q "another application has the rpmsg device" "$work/second.out"

kill -KILL "$svc_pid"
start_service 2
check "after a SIGKILL the service attaches again and the client finds it" echo_500

kill -TERM "$ep_pid"
wait "$ep_pid" || true
start_ep
check "after vepf-ep restarts, the service (still running) attaches again and echoes" echo_500
check "... the same service process" kill -0 "$svc_pid"

rc=0
timeout 30 "$client_bin" --attach "$work/channels.toml" 0 1 >"$work/channels.out" 2>&1 || rc=$?
check "attach to a device served as channels fails (exit $rc)" test "$rc" -eq 1
check "... naming host_serve and the fix" grep -q 'rpmsg.host_serve is "channels".*Set host_serve = "application"' "$work/channels.out"

kill -TERM "$svc_pid"
wait "$svc_pid" || true
check "the service echoed both runs of the client (1000)" grep -q "echoed 1000 message(s)" "$work/service2.log"
echo "rpmsg attach test passed"
