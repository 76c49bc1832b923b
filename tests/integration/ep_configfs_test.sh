#!/usr/bin/env bash
# scripts/ep-configfs.sh against a fake configfs tree (a plain directory standing in for
# /sys/kernel/config, VEPF_CONFIGFS_FAKE=1): `up` creates and binds the function the board's
# [soc] names with the IDs, interrupts and BARs its config gives, and starts the controller;
# `down` undoes all of it; the errors a user meets name the fix. Usage: ep_configfs_test.sh BUILD_DIR
set -euo pipefail
build=$1
src=$(cd "$(dirname "$0")/../.." && pwd)
script="$src/scripts/ep-configfs.sh"
export VEPF_EP_BIN="$build/ep-firmware/vepf-ep" VEPF_CONFIGFS_FAKE=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export VEPF_CONFIGFS="$tmp/config"

fail() { echo "FAIL: $*"; exit 1; }
expect() {  # expect FILE VALUE
  [ -e "$1" ] || fail "$1 missing"
  [ "$(cat "$1")" = "$2" ] || fail "$1 = $(cat "$1"), want $2"
}
fresh_tree() {  # what the kernel shows with the controller's EP node and both function drivers
  rm -rf "$VEPF_CONFIGFS"
  mkdir -p "$VEPF_CONFIGFS/pci_ep/functions/pci_epf_test" "$VEPF_CONFIGFS/pci_ep/functions/pci_epf_vntb"
  for epc in "$@"; do
    mkdir -p "$VEPF_CONFIGFS/pci_ep/controllers/$epc"
    echo 0 >"$VEPF_CONFIGFS/pci_ep/controllers/$epc/start"
  done
}
cfs=$VEPF_CONFIGFS/pci_ep

# pci_epf_test (devmem): RK3588.
fresh_tree a40000000.pcie-ep
"$script" "$src/board-configs/rk3588.toml" up
f=$cfs/functions/pci_epf_test/vepf
expect "$f/vendorid" 0x1d87
expect "$f/deviceid" 0x3588
expect "$f/msi_interrupts" 1
expect "$f/msix_interrupts" 1
expect "$f/baseclass_code" 0x05
expect "$f/pci_epf_test.0/bar0_size" 0x100000
[ "$(readlink "$cfs/controllers/a40000000.pcie-ep/vepf")" = "$f" ] || fail "function not linked into the controller"
expect "$cfs/controllers/a40000000.pcie-ep/start" 1
shown=$("$script" "$src/board-configs/rk3588.toml" show)
grep -q "start = 1" <<<"$shown" || fail "show does not report the start: $shown"
grep -q "vendorid = 0x1d87" <<<"$shown" || fail "show does not list the attributes: $shown"
# A second `up` refuses and leaves the running function alone.
if out=$("$script" "$src/board-configs/rk3588.toml" up 2>&1); then fail "a second up succeeded"; fi
echo "$out" | grep -q "exists already: run .*down. first" || fail "second up: $out"
expect "$cfs/controllers/a40000000.pcie-ep/start" 1
"$script" "$src/board-configs/rk3588.toml" down
[ ! -e "$f" ] || fail "down left $f"
[ ! -L "$cfs/controllers/a40000000.pcie-ep/vepf" ] || fail "down left the controller link"
expect "$cfs/controllers/a40000000.pcie-ep/start" 0
"$script" "$src/board-configs/rk3588.toml" down >/dev/null  # twice: nothing left to undo, still 0
echo "pci_epf_test: up, show, refused second up, down, down again"

# pci_epf_vntb (vfio): R-Car S4, the control and doorbell BARs around the memory window.
fresh_tree e65d0000.pcie-ep
"$script" "$src/board-configs/rcar-s4.toml" up
f=$cfs/functions/pci_epf_vntb/vepf
expect "$f/vendorid" 0x1912
expect "$f/deviceid" 0x0031
expect "$f/msi_interrupts" 1
expect "$f/msix_interrupts" 0
v=$f/pci_epf_vntb.0
expect "$v/num_mws" 1
expect "$v/mw1" 0x100000
expect "$v/mw1_bar" 2
expect "$v/ctrl_bar" 0
expect "$v/db_bar" 4
expect "$v/vntb_vid" 0x1912
expect "$v/vntb_pid" 0x0030
[ "$(readlink "$f/primary/e65d0000.pcie-ep")" = "$cfs/controllers/e65d0000.pcie-ep" ] || fail "vNTB not bound as primary"
expect "$cfs/controllers/e65d0000.pcie-ep/start" 1
"$script" "$src/board-configs/rcar-s4.toml" down
[ ! -e "$f" ] || fail "down left $f"
expect "$cfs/controllers/e65d0000.pcie-ep/start" 0
# A kernel before 6.17 (no *_bar attributes): it assigns BARs itself; up warns and goes on.
out=$(VEPF_CONFIGFS_FAKE_OMIT="ctrl_bar db_bar mw1_bar" "$script" "$src/board-configs/rcar-s4.toml" up 2>&1) ||
  fail "up on a kernel without *_bar: $out"
echo "$out" | grep -q "warning: no mw1_bar: .*check that MW1 is BAR2" || fail "no warning about BAR order: $out"
expect "$cfs/controllers/e65d0000.pcie-ep/start" 1
"$script" "$src/board-configs/rcar-s4.toml" down >/dev/null
echo "pci_epf_vntb: up with ctrl_bar/db_bar/mw1_bar, down; without them (before 6.17) a warning"

# Errors: no such controller (nothing created); a kernel without an attribute (the bring-up is
# undone); a board without [soc] (exit 2).
fresh_tree some-other.pcie-ep
if out=$("$script" "$src/board-configs/rk3588.toml" up 2>&1); then fail "up without the controller succeeded"; fi
echo "$out" | grep -q "no EP controller a40000000.pcie-ep" || fail "missing controller: $out"
[ ! -e "$cfs/functions/pci_epf_test/vepf" ] || fail "a failed up left the function"
# A kernel whose pci_epf_test has no msix_interrupts: the step fails naming the file, and
# what was made is undone.
fresh_tree a40000000.pcie-ep
rc=0
out=$(VEPF_CONFIGFS_FAKE_OMIT=msix_interrupts "$script" "$src/board-configs/rk3588.toml" up 2>&1) || rc=$?
[ "$rc" -eq 1 ] || fail "a missing attribute: exit $rc, want 1: $out"
echo "$out" | grep -q "msix_interrupts does not exist" || fail "missing attribute: $out"
[ ! -e "$cfs/functions/pci_epf_test/vepf" ] || fail "a failed up left the function"
expect "$cfs/controllers/a40000000.pcie-ep/start" 0
rc=0
out=$("$script" "$src/board-configs/loopback.toml" up 2>&1) || rc=$?
[ "$rc" -eq 2 ] || fail "a loopback board: exit $rc, want 2"
echo "$out" | grep -q "has no \[soc\]" || fail "loopback board: $out"
echo "errors: missing controller, missing attribute (undone), board without [soc] (exit 2)"
