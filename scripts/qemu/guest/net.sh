# Rig scenario: the net device across two machines. Machine a is the EP (vepf-ep on its ivshmem
# function, through VFIO, or with vepf.mode=devmem through /dev/mem at the BAR's physical
# address); machine b is the RC (vepf-host through VFIO). Then: ping both ways and one iperf3
# run b -> a over the link. Prints its figures as "vepf-rig: ROLE: ..." lines.
# Window memory (LAYOUT.md §7), beyond the safe default (device memory, every width):
# vepf.ep-widths=4 gives vepf-ep's windows 32-bit accesses only; vepf.host-wc=1 maps vepf-host's
# EP window write-combining (the BAR's sysfs resource2_wc).
. /etc/rig-lib.sh
mode=vfio ep_widths= host_wc=
for a in $(cat /proc/cmdline); do
  case $a in
    vepf.mode=*) mode=${a#vepf.mode=} ;;
    vepf.ep-widths=*) ep_widths=${a#vepf.ep-widths=} ;;
    vepf.host-wc=*) host_wc=${a#vepf.host-wc=} ;;
  esac
done
d=$(pci_find 0x1af4 0x1110) || { say "no ivshmem function"; exit 1; }
bdf=$(basename "$d")
mkdir -p /run/vepf
board=/etc/board.toml
if [ "$ROLE" = a ] && [ "$mode" = devmem ]; then
  # The EP side through /dev/mem: the same places, as physical addresses of this machine's BARs;
  # `device` names the function vepf-ep enables first (arm64 leaves it off: BAR accesses vanish).
  bar0=$(bar_addr "$d" 0) bar2=$(bar_addr "$d" 2)
  hex() { printf '0x%x' "$1"; }
  awk -v bdf="$bdf" -v b0="$(hex $((bar0)))" -v epw="$(hex $((bar2 + 0x400000)))" -v rcw="$(hex $((bar2 + 0x800000)))" \
      -v ids="$(hex $((bar2)))" '
    /^platform = / { print "platform = \"devmem\""; next }
    /^\[ep\]/ { ep = 1; print; next }
    /^\[/ { ep = 0 }
    ep && /^device = / { print "device = \"" bdf "\""; next }
    ep && /^ep_window = / { print "ep_window = { phys = " epw " }"; next }
    ep && /^rc_window = / { print "rc_window = { phys = " rcw " }"; next }
    ep && /^doorbell_regs = / { print "doorbell_regs = { phys = " b0 " }"; next }
    ep && /^peer_ids = / { print "peer_ids = { phys = " ids " }"; next }
    { print }' /etc/board.toml >/tmp/board.toml
  board=/tmp/board.toml
  say "devmem: BAR0 at $(hex $((bar0))), BAR2 at $(hex $((bar2)))"
else
  if [ "$ROLE" = b ] && [ "$mode" = vfio ]; then
    # What vepf-host says when the function is not usable: one line that says what to do.
    bad=0
    expect_error() {  # SUBSTRING COMMAND...
      want=$1; shift
      out=$("$@" 2>&1); rc=$?
      if [ $rc -ne 0 ] && [ "$(echo "$out" | grep -c .)" -eq 1 ] && echo "$out" | grep -q "$want"; then
        say "error as expected (exit $rc): ${out#*\] }"
      else
        say "UNEXPECTED (exit $rc): $out"; bad=1
      fi
    }
    expect_error "run scripts/vfio-bind.sh $bdf" vepf-host --board /etc/board.toml --once
    sed "s/device = \"1af4:1110\"/device = \"0000:00:09.0\"/" /etc/board.toml >/tmp/wrong-bdf.toml
    expect_error "0000:00:09.0 does not exist" vepf-host --board /tmp/wrong-bdf.toml --once
  fi
  vfio-bind.sh "$bdf" >/dev/null || { say "vfio-bind.sh $bdf failed"; exit 1; }
  if [ "$ROLE" = a ]; then
    board_with_ep_bdf "$bdf" >/tmp/board.toml
    board=/tmp/board.toml
  fi
  if [ "$ROLE" = b ] && [ "$mode" = vfio ]; then
    group=$(basename "$(readlink "$d/iommu_group")")
    expect_error "/dev/vfio/$group" su -s /bin/sh nobody -c "vepf-host --board /etc/board.toml --once"
    mv "/dev/vfio/$group" /tmp/vfio-node
    expect_error "/dev/vfio/$group" vepf-host --board /etc/board.toml --once
    mv /tmp/vfio-node "/dev/vfio/$group"
    [ $bad -eq 0 ] || exit 1
  fi
fi

# a: waits for a one-shot iperf3 server (b's run is the barrier between the machines).
wait_server() {
  i=0
  while kill -0 $srv 2>/dev/null; do
    i=$((i + 1)); [ $i -le 900 ] || fail "iperf3 server: no client run within 90 s"
    sleep 0.1
  done
  wait $srv || fail "iperf3 server failed: $(tail -n 3 /tmp/iperf3.log)"
}
client() {  # SECONDS
  i=0
  until iperf3 -c "$peer" -t "$1" -f m >/tmp/iperf3.log 2>&1; do
    i=$((i + 1)); [ $i -le 10 ] || fail "iperf3 -c $peer: $(tail -n 3 /tmp/iperf3.log)"
    sleep 1
  done
}

if [ "$ROLE" = a ] && [ -n "$ep_widths" ]; then
  [ "$board" = /tmp/board.toml ] || cp "$board" /tmp/board.toml
  board=/tmp/board.toml
  window_keys "$board" ep "(ep|rc)" "memory = \"device\", widths = [$ep_widths]"
fi
if [ "$ROLE" = b ] && [ -n "$host_wc" ]; then
  cp "$board" /tmp/board.toml
  board=/tmp/board.toml
  window_keys "$board" host ep "memory = \"wc\""
fi

start
say "$(grep -m1 -oE '(vfio|devmem) platform: .*|EP function: .*' /tmp/$prog.log)"
[ "$ROLE" = a ] && { iperf3 -s -1 -B "$me" >/tmp/iperf3.log 2>&1 & srv=$!; }
reach 60
ping -c 20 -i 0.2 "$peer" >/tmp/ping.log 2>&1 || fail "ping $peer lost packets: $(tail -n 2 /tmp/ping.log)"
say "ping $peer: $(grep -oE '[0-9]+ packets transmitted.*' /tmp/ping.log); rtt $(grep -oE 'min/avg/max = [0-9./]+ ms' /tmp/ping.log)"

# iperf3 b -> a; then vepf-ep restarts on a, and vepf-host must notice (a new epoch in the EP
# window's header) and attach again: traffic flows once more.
if [ "$ROLE" = b ]; then
  client 5
  say "iperf3 b->a: $(grep -E 'receiver' /tmp/iperf3.log | grep -oE '[0-9.]+ Mbits/sec')"
  i=0
  until [ "$(grep -c 'attached: epoch' /tmp/$prog.log)" -ge 2 ]; do
    i=$((i + 1)); [ $i -le 600 ] || fail "no second attach within 60 s of the EP restart"
    sleep 0.1
  done
  reach 30
  client 1
  say "after the EP restarted: $(grep -m1 -oE 'the EP.s header changed.*' /tmp/$prog.log); attached again, iperf3 $(grep -E 'receiver' /tmp/iperf3.log | grep -oE '[0-9.]+ Mbits/sec')"
else
  wait_server
  stop
  say "vepf-ep stopped; starting it again"
  start
  iperf3 -s -1 -B "$me" >/tmp/iperf3.log 2>&1 &
  srv=$!
  reach 60
  wait_server
fi
stop
grep -E "counters|link model" /tmp/$prog.log | tail -n 1 | sed "s/^/vepf-rig: $ROLE: /"
exit 0
