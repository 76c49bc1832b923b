#!/usr/bin/env bash
# Every device type on one loopback link at once, each with traffic from its standard client, and
# devices added and removed while that traffic runs:
#   net (TAP, in network namespaces): iperf3 host -> EP for the whole run, ping at the end;
#   rpmsg: vepf-rpmsg echo on the EP, vepf-rpmsg bench on the host (random sizes, checked);
#   block: nbdcopy of a 64 MiB random image to the device and back, byte-identical;
#   console: 8 MiB of random bytes each way between a socket port on the EP and its host pty;
#   meanwhile `vepf-ep ctl add` puts a second block device, a second rpmsg device and a second
#   console device in the table; vepf-host brings them up (nbdinfo reads the new export, the new
#   console's pty appears), then `ctl remove` takes them away again; the traffic on the first four
#   devices must not notice.
# usage: all_devices_test.sh BUILD_DIR
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$top/build/default}" && pwd)
for t in ip ping iperf3 nbdinfo nbdcopy python3; do
  command -v "$t" >/dev/null || { echo "$t missing: run scripts/install-deps.sh" >&2; exit 1; }
done
# shellcheck source=../../scripts/lib/netns.sh
. "$top/scripts/lib/netns.sh"
# shellcheck source=../../scripts/lib/all_devices.sh
. "$top/scripts/lib/all_devices.sh"
board="$work/board.toml"
rt="$work/rt"  # all_devices_tables puts the rpmsg runtime_dir here
size=$((64 << 20))
cat >"$board" <<TOML
[board]
name = "all-devices-test"
platform = "loopback"
[link]
ep_window_size = 8388608
rc_window_size = 8388608
[loopback]
socket = "$sock"
# Both windows as a BAR that takes 32-bit accesses only (LAYOUT.md §7): every device's data goes
# through the aligned copies, and the 16-bit ring fields through read-modify-writes of their words.
memory = "device"
widths = [4]
[control]
allowed_dirs = ["$work"]              # where ctl add below may put files
TOML
all_devices_tables "$size" >>"$board"

fail() { echo "FAIL: $*"; show_logs; exit 1; }
check() { local what=$1; shift; if "$@"; then echo "ok: $what"; else fail "$what"; fi; }
wait_gone() { for _ in $(seq 50); do [ -e "$1" ] || return 0; sleep 0.1; done; return 1; }
ctl() { "$build/ep-firmware/vepf-ep" ctl --board "$board" --ctl-socket "$sock.ctl" "$@"; }
add_device() {  # what config-lines...: `ctl add`, prints the slot
  local what=$1 out="$work/add-$1.out"; shift
  ctl add "$@" >"$out" || { echo "FAIL: ctl add $what: $(cat "$out")" >&2; show_logs >&2; exit 1; }
  echo "ok: ctl add: a second $what device" >&2
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["slot"])' "$out"
}

netns_setup
start_ep
start_host
check "all four devices up (TAP carrier, NBD export, console pty, rpmsg echo announced to the host)" all_devices_up

# Traffic on all four, in the background.
ip netns exec "$ns_ep" iperf3 -s -1 -B "$ep_ip" >"$work/iperf-server.log" 2>&1 &
extra_pids="$extra_pids $!"
sleep 0.3
ip netns exec "$ns_host" timeout 60 iperf3 -c "$ep_ip" -t 8 -f m >"$work/iperf.out" 2>&1 &
iperf_pid=$!
"$build/tools/vepf-rpmsg/vepf-rpmsg" bench --socket "$rt/host/echo.sock" --count 20000 --size random \
  >"$work/bench.out" 2>&1 &
bench_pid=$!
head -c "$size" /dev/urandom >"$work/src.img"
( nbdcopy "$work/src.img" "nbd+unix:///?socket=$work/blk.sock" &&
  nbdcopy "nbd+unix:///?socket=$work/blk.sock" "$work/back.img" ) >"$work/nbdcopy.out" 2>&1 &
copy_pid=$!
python3 "$top/tests/integration/console_pump.py" "$work/console/data" "$work/console-data.sock" $((8 << 20)) \
  >"$work/console.out" 2>&1 &
console_pid=$!

# Hot add and remove under that traffic.
t0=$(date +%s%N)
slot_blk=$(add_device block 'type = "block"' "block = { path = \"$work/disk2.img\", size = 1048576 }")
# The host does not know the EP's nbd_socket for a slot beyond its board config: the default path.
added_sock="/run/vepf/block$slot_blk.sock"
check "host: the added block device appears ($added_sock)" wait_path "$added_sock" 5
t1=$(date +%s%N)
echo "hot-added block device served on the host $(( (t1 - t0) / 1000000 )) ms after 'ctl add' started (process start and 100 ms polling included)"
check "nbdinfo reads the added device (1 MiB)" bash -c "nbdinfo 'nbd+unix:///?socket=$added_sock' | grep -q 'export-size: 1048576'"
slot_rp=$(add_device rpmsg 'type = "rpmsg"' "rpmsg = { runtime_dir = \"$work/rt2\" }")
slot_con=$(add_device console 'type = "console"' "console = { port = [ { backend = \"pty\", link = \"$work/ep-tty\" } ] }")
# As for block: the host links the added console's ptys under the default host_dir of its slot.
added_pty="/run/vepf/console$slot_con/port0"
check "host: the added console's pty appears ($added_pty)" wait_path "$added_pty" 5
check "ctl list shows seven devices" test "$(ctl list | grep -c '"slot"')" -eq 7
ctl remove "$slot_blk" >/dev/null || fail "ctl remove $slot_blk"
echo "ok: ctl remove the added block device"
check "host: its NBD socket goes away" wait_gone "$added_sock"
ctl remove "$slot_rp" >/dev/null || fail "ctl remove $slot_rp"
echo "ok: ctl remove the added rpmsg device"
ctl remove "$slot_con" >/dev/null || fail "ctl remove $slot_con"
check "host: the removed console's pty link goes away" wait_gone "$added_pty"

wait "$copy_pid" || fail "nbdcopy: $(cat "$work/nbdcopy.out")"
check "block: 64 MiB round trip byte-identical during hot-plug" cmp "$work/src.img" "$work/back.img"
wait "$bench_pid" || fail "rpmsg bench: $(cat "$work/bench.out")"
echo "rpmsg: $(cat "$work/bench.out")"
check "rpmsg: 20000 echoes, no mismatch, none lost" \
  bash -c "grep -q 'messages 20000' '$work/bench.out' && grep -q 'mismatches 0' '$work/bench.out' && grep -q 'lost 0' '$work/bench.out'"
wait "$console_pid" || fail "console: $(cat "$work/console.out")"
cat "$work/console.out"
echo "ok: console: 8 MiB each way byte-identical"
wait "$iperf_pid" || fail "iperf3: $(cat "$work/iperf.out")"
rate=$(awk '/receiver/ {print $7, $8}' "$work/iperf.out")
echo "net: iperf3 host -> EP during all of it: $rate"
[ -n "$rate" ] || fail "iperf3 printed no result"
check "net: ping across the link after it all" ip netns exec "$ns_host" ping -n -q -c 2 -i 0.2 -W 2 "$ep_ip"
check "the four board devices are still driven (DRIVER_OK)" test "$(ctl list | grep -c '"driver_ok": true')" -eq 4
echo "all devices test passed"
