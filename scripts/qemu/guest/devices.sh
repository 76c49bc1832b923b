# Rig scenario: every device type on one link across the two machines, both on VFIO (machine a:
# vepf-ep, machine b: vepf-host). /etc/board.toml's net device plus, appended here:
#   rpmsg: vepf-rpmsg echo on a, vepf-rpmsg bench on b (random sizes, each echo checked);
#   block: a 64 MiB image on a; b copies 64 MiB of random bytes through the NBD export with
#          nbdcopy and back, compares them, and sends its SHA-256 to a, which checks its disk file;
#   console: a pty port; bytes each way between a's pty and b's, compared on arrival.
# The net device carries the barriers between the machines (busybox nc). Prints "vepf-rig: ROLE:"
# lines with the figures.
. /etc/rig-lib.sh
d=$(pci_find 0x1af4 0x1110) || { say "no ivshmem function"; exit 1; }
bdf=$(basename "$d")
mkdir -p /run/vepf
vfio-bind.sh "$bdf" >/dev/null || { say "vfio-bind.sh $bdf failed"; exit 1; }
size=$((64 << 20))
board=/tmp/board.toml
{
  board_with_ep_bdf "$bdf"
  cat <<TOML
[[device]]
type = "rpmsg"
[device.rpmsg]
runtime_dir = "/run/vepf/rpmsg"
[[device]]
type = "block"
[device.block]
path = "/tmp/disk.img"
size = $size
nbd_socket = "/run/vepf/block.sock"
[[device]]
type = "console"
[device.console]
host_dir = "/run/vepf/console"
[[device.console.port]]
name = "data"
backend = "pty"
link = "/run/vepf/ep-tty"
TOML
} >"$board"

# Console payloads: deterministic, so that each side knows what the other sends.
seq 1 40000 >/tmp/to-ep.txt
seq 40001 80000 >/tmp/to-host.txt
# Milliseconds since boot, to 10 ms (busybox date has no %N).
now_ms() { read -r up _ </proc/uptime; echo $((${up%.*}${up#*.} * 10)); }
# Connects to $peer:$1 until it listens (at most 120 s) and sends the line $2.
send_to_peer() {
  i=0
  until echo "$2" | nc -w 2 "$peer" "$1"; do
    i=$((i + 1)); [ $i -le 240 ] || fail "nothing listens on $peer:$1 after 120 s"
    sleep 0.5
  done
}

start
reach 60
say "$(grep -m1 -oE 'vfio platform: .*|EP function: .*' /tmp/$prog.log)"
if [ "$ROLE" = a ]; then
  wait_path /run/vepf/rpmsg/ep/announce.sock 30
  vepf-rpmsg echo --announce /run/vepf/rpmsg/ep/announce.sock --name echo >/tmp/echo.log 2>&1 &
  wait_path /run/vepf/ep-tty 30
  stty -F /run/vepf/ep-tty raw -echo
  head -c "$(wc -c </tmp/to-ep.txt)" /run/vepf/ep-tty >/tmp/got.txt &
  reader=$!
  # Barrier: b's console reader is up when it connects to 7001; ours is up now.
  nc -l -p 7001 </dev/null >/dev/null || fail "nc -l 7001"
  cat /tmp/to-host.txt >/run/vepf/ep-tty
  wait $reader
  cmp -s /tmp/got.txt /tmp/to-ep.txt || fail "console: the bytes from b differ ($(wc -c </tmp/got.txt) bytes arrived)"
  say "console: $(wc -c </tmp/to-ep.txt) bytes from b arrived unchanged"
  # b's block copy: its SHA-256 arrives when it is done (read by cat to the end of the connection:
  # busybox nc alone would stop at its own stdin's end).
  printf '#!/bin/sh\ncat >/tmp/b-sha\n' >/tmp/recv.sh && chmod +x /tmp/recv.sh
  nc -l -p 7000 -e /tmp/recv.sh </dev/null || fail "nc -l 7000"
  want=$(cat /tmp/b-sha)
  sync
  got=$(head -c "$size" /tmp/disk.img | sha256sum | cut -d' ' -f1)
  [ "$got" = "$want" ] || fail "block: the EP's disk file has SHA-256 $got, b wrote $want"
  say "block: the EP's disk file holds what b wrote (SHA-256 ${got%${got#????????????}}...)"
else
  wait_path /run/vepf/console/data 30
  stty -F /run/vepf/console/data raw -echo
  head -c "$(wc -c </tmp/to-host.txt)" /run/vepf/console/data >/tmp/got.txt &
  reader=$!
  send_to_peer 7001 ready
  t0=$(now_ms)
  cat /tmp/to-ep.txt >/run/vepf/console/data
  wait $reader
  t1=$(now_ms)
  cmp -s /tmp/got.txt /tmp/to-host.txt || fail "console: the bytes from a differ ($(wc -c </tmp/got.txt) bytes arrived)"
  say "console: $(wc -c </tmp/to-host.txt) bytes from a arrived unchanged; $(wc -c </tmp/to-ep.txt) bytes sent, both ways in $((t1 - t0)) ms"

  wait_path /run/vepf/rpmsg/host/echo.sock 30
  vepf-rpmsg bench --socket /run/vepf/rpmsg/host/echo.sock --count 2000 --size random >/tmp/bench.log 2>&1 ||
    fail "rpmsg bench: $(tail -n 3 /tmp/bench.log)"
  grep -q 'messages 2000' /tmp/bench.log && grep -q 'mismatches 0' /tmp/bench.log && grep -q 'lost 0' /tmp/bench.log ||
    fail "rpmsg: $(cat /tmp/bench.log)"
  say "rpmsg echo: $(tr '\n' ' ' </tmp/bench.log)"

  wait_path /run/vepf/block.sock 30
  nbd="nbd+unix:///?socket=/run/vepf/block.sock"
  head -c "$size" /dev/urandom >/tmp/src.img
  t0=$(now_ms)
  nbdcopy /tmp/src.img "$nbd" >/tmp/nbdcopy.log 2>&1 || fail "nbdcopy to the device: $(cat /tmp/nbdcopy.log)"
  t1=$(now_ms)
  nbdcopy "$nbd" /tmp/back.img >>/tmp/nbdcopy.log 2>&1 || fail "nbdcopy from the device: $(cat /tmp/nbdcopy.log)"
  t2=$(now_ms)
  cmp -s /tmp/src.img /tmp/back.img || fail "block: the 64 MiB read back differ from what was written"
  say "block: 64 MiB through NBD and back, identical; write $((t1 - t0)) ms, read $((t2 - t1)) ms"
  rm -f /tmp/back.img
  send_to_peer 7000 "$(sha256sum /tmp/src.img | cut -d' ' -f1)"
fi
stop
grep -E "counters|link model" /tmp/$prog.log | tail -n 1 | sed "s/^/vepf-rig: $ROLE: /"
exit 0
