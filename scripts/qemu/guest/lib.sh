# Helpers for the rig's guest scripts (busybox sh), installed as /etc/rig-lib.sh.

# The sysfs directory of the first PCI function with vendor $1 and device $2 (0x1af4 0x1110:
# ivshmem). busybox has no lspci.
pci_find() {
  for d in /sys/bus/pci/devices/*; do
    [ "$(cat "$d/vendor")" = "$1" ] && [ "$(cat "$d/device")" = "$2" ] && { echo "$d"; return 0; }
  done
  return 1
}

# The physical start address of BAR $2 of PCI function directory $1 (line $2 of `resource`).
bar_addr() {
  sed -n "$(($2 + 1))p" "$1/resource" | cut -d' ' -f1
}

# Polls until the 32-bit word at physical address $1 equals $2, at most $3 tenths of a second.
wait_word() {
  i=0
  while [ $(($(devmem "$1" 32))) -ne $(($2)) ]; do
    i=$((i + 1))
    [ "$i" -le "$3" ] || return 1
    sleep 0.1
  done
}

# ---- the link scenarios (net.sh, devices.sh): vepf-ep on machine a, vepf-host on machine b

# Both programs run with the strict link model: an access to a window that real device memory
# would fault on (QEMU's TCG never faults) aborts the program, and the scenario fails.
export VEPF_STRICT_LINK=1

say() { echo "vepf-rig: $ROLE: $*"; }

# This machine's program, its TAP interface and the addresses on the link.
if [ "$ROLE" = a ]; then
  prog=vepf-ep if=vepf-ep0 me=198.18.0.2 peer=198.18.0.1
else
  prog=vepf-host if=vepf-host0 me=198.18.0.1 peer=198.18.0.2
fi

# Says why, shows the end of the program's log, stops it and leaves the scenario.
fail() { say "$*"; tail -n 20 /tmp/$prog.log | sed "s/^/vepf-rig: $ROLE: log: /"; kill $pid 2>/dev/null; exit 1; }

# Starts $prog with $board (appending to its log), waits for its TAP and gives it our address.
start() {
  $prog --board "$board" >>/tmp/$prog.log 2>&1 &
  pid=$!
  i=0
  until ip link show "$if" >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -le 600 ] || fail "no $if after 60 s"
    kill -0 $pid 2>/dev/null || fail "$prog exited"
    sleep 0.1
  done
  ip addr add "$me/24" dev "$if"
  ip link set "$if" up
}

# Pings the peer until it answers (it may still be booting or re-attaching), at most $1 s.
reach() {
  i=0
  until ping -c 1 -W 1 "$peer" >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -le "$1" ] || fail "no reply from $peer within $1 s"
  done
}

# Stops $prog with SIGTERM; it must exit 0.
stop() {
  kill -TERM $pid
  wait $pid
  rc=$?
  [ $rc -eq 0 ] || fail "$prog exited with $rc on SIGTERM"
}

# Waits until path $1 exists, at most $2 s.
wait_path() {
  i=0
  until [ -e "$1" ]; do
    i=$((i + 1)); [ $i -le $(($2 * 10)) ] || fail "no $1 after $2 s"
    sleep 0.1
  done
}

# Adds `$4` (e.g. memory = "wc") to the window places `$3` (a regex: ep, rc or (ep|rc)) of
# section [$2] of board file $1, in place.
window_keys() {
  awk -v sec="[$2]" -v which="^$3_window = [{]" -v keys="$4" '/^\[/ { in_sec = (index($0, sec) == 1) }
    in_sec && $0 ~ which { sub(/ *[}]/, ", " keys " }") } { print }' "$1" >"$1.new" && mv "$1.new" "$1"
}

# Writes /etc/board.toml with [ep] device = "$1" (a BDF) to stdout: the EP names its function
# by address (the static vepf-ep has no libpci to look up IDs).
board_with_ep_bdf() {
  awk -v bdf="$1" '/^\[ep\]/ { ep = 1 } /^\[/ && !/^\[ep\]/ { ep = 0 }
    ep && /^device = / { print "device = \"" bdf "\""; next } { print }' /etc/board.toml
}
