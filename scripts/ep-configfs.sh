#!/usr/bin/env bash
# Brings up (and tears down) the PCIe endpoint function a board config's [soc] names, through the
# Linux PCI endpoint configfs (Documentation/PCI/endpoint/pci-endpoint-cfs.rst), on the EP:
#
#   scripts/ep-configfs.sh BOARD.toml up     create the function, set its IDs, interrupts and
#                                            BARs, bind it to the controller, start the link
#   scripts/ep-configfs.sh BOARD.toml down   stop the link, unbind and remove the function
#   scripts/ep-configfs.sh BOARD.toml show   what configfs holds for it now
#
# What it writes comes from `vepf-ep --check-config BOARD --configfs-env` (the config is
# validated first; see config::configfs_env()): soc.epc and soc.function, the function's IDs
# from host.device, MSI/MSI-X as [soc] allows, the EP window's BAR and size, and for
# pci_epf_vntb the control and doorbell BARs and the virtual device's IDs (ep.device).
# - pci_epf_test (board.platform = "devmem"): a function of plain BARs; the EP window's BAR
#   size is set where the kernel has bar<N>_size (Linux 6.20), else the function's default
#   size must hold the window (a warning says so).
# - pci_epf_vntb (board.platform = "vfio"): one memory window (MW1) of the EP window's size in
#   host.ep_window.bar, control registers and doorbells in the next two free BARs (ctrl_bar,
#   db_bar and mw1_bar from Linux 6.17; older kernels assign BARs in order: a warning says so).
#
# Environment: VEPF_CONFIGFS (default /sys/kernel/config); VEPF_EP_BIN (default: vepf-ep on
# PATH, else build/default/ep-firmware/vepf-ep); VEPF_EPF_NAME (the function's directory,
# default "vepf"); VEPF_CONFIGFS_FAKE=1 treats VEPF_CONFIGFS as a plain directory tree standing
# in for configfs (the tests): it then creates the attribute files the kernel would create, but
# those VEPF_CONFIGFS_FAKE_OMIT lists (space-separated: a kernel that lacks them).
# Exit: 0 done; 1 the system refused a step (the message says which; `down` undoes the rest);
# 2 bad arguments or board config.
set -euo pipefail

usage() { sed -n '2,9p' "$0" >&2; exit 2; }
[ $# -eq 2 ] || usage
board=$1
action=$2
case "$action" in up|down|show) ;; *) usage ;; esac
[ -r "$board" ] || { echo "ep-configfs: cannot read the board config '$board'" >&2; exit 2; }

here=$(cd "$(dirname "$0")/.." && pwd)
bin=${VEPF_EP_BIN:-$(command -v vepf-ep || echo "$here/build/default/ep-firmware/vepf-ep")}
[ -x "$bin" ] || { echo "ep-configfs: no vepf-ep at '$bin': build it or set VEPF_EP_BIN" >&2; exit 2; }
env_text=$("$bin" --check-config "$board" --configfs-env) || exit 2
# Every value is a token the config reader checked (names, hex numbers): plain assignments.
while IFS='=' read -r key value; do
  case "$key" in VEPF_[A-Z_]*) printf -v "$key" '%s' "$value" ;; *) ;; esac
done <<<"$env_text"

root=${VEPF_CONFIGFS:-/sys/kernel/config}
fake=${VEPF_CONFIGFS_FAKE:-0}
name=${VEPF_EPF_NAME:-vepf}
case "$name" in ''|*/*|.|..) echo "ep-configfs: VEPF_EPF_NAME='$name' is not a directory name" >&2; exit 2 ;; esac
ctrl="$root/pci_ep/controllers/$VEPF_EPC"
fdir="$root/pci_ep/functions/$VEPF_EPF"
func="$fdir/$name"
sub="$func/$VEPF_EPF.0"  # the function driver's own attributes (its configfs group)

die() { echo "ep-configfs: $*" >&2; exit 1; }
say() { echo "ep-configfs: $*"; }
# Writes one attribute; a missing attribute or a refused value stops the bring-up.
put() {
  local file=$1 value=$2
  [ -e "$file" ] || die "$file does not exist: this kernel's $VEPF_EPF lacks it"
  echo "$value" >"$file" 2>/dev/null || die "the kernel refused $value for $file"
}
# Writes an attribute that only newer kernels have; older ones get a warning.
put_if() {
  local file=$1 value=$2 why=$3
  if [ -e "$file" ]; then put "$file" "$value"; else echo "ep-configfs: warning: no $(basename "$file"): $why" >&2; fi
}

# The attribute files the kernel creates with a function's directory (pci-ep-cfs.c and the
# function driver); only for a fake tree.
fake_mkdir() {
  mkdir "$func"
  local a omit=" ${VEPF_CONFIGFS_FAKE_OMIT:-} "
  for a in vendorid deviceid revid progif_code subclass_code baseclass_code cache_line_size \
           subsys_vendor_id subsys_id interrupt_pin msi_interrupts msix_interrupts; do
    echo 0 >"$func/$a"
  done
  mkdir "$func/primary" "$func/secondary" "$sub"
  if [ "$VEPF_EPF" = pci_epf_vntb ]; then
    for a in db_count spad_count num_mws mw1 mw2 mw3 mw4 vbus_number vntb_vid vntb_pid ctrl_bar \
             db_bar mw1_bar mw2_bar mw3_bar mw4_bar; do
      echo 0 >"$sub/$a"
    done
  else
    for a in 0 1 2 3 4 5; do echo 0 >"$sub/bar${a}_size"; done
  fi
  for a in $omit; do rm -f "$func/$a" "$sub/$a"; done
}

up() {
  if [ "$fake" != 1 ] && [ ! -d "$root/pci_ep" ]; then
    [ "$(id -u)" -eq 0 ] || die "run as root (configfs and modprobe)"
    mountpoint -q "$root" || mount -t configfs none "$root" || die "cannot mount configfs on $root"
  fi
  [ -d "$root/pci_ep" ] || die "no $root/pci_ep: the kernel lacks CONFIG_PCI_ENDPOINT_CONFIGFS"
  [ -d "$ctrl" ] || die "no EP controller $VEPF_EPC under $root/pci_ep/controllers: is its EP node enabled in the device tree? (ls /sys/class/pci_epc)"
  if [ ! -d "$fdir" ] && [ "$fake" != 1 ]; then
    modprobe "${VEPF_EPF//_/-}" 2>/dev/null || true
  fi
  [ -d "$fdir" ] || die "no function driver $VEPF_EPF: load it (modprobe ${VEPF_EPF//_/-}, CONFIG_PCI_EPF_${VEPF_EPF#pci_epf_})"
  [ ! -e "$func" ] || die "$func exists already: run '$0 $board down' first"
  if [ "$(cat "$ctrl/start" 2>/dev/null || echo 0)" = 1 ]; then
    die "$VEPF_EPC is started already (another function?): stop it first"
  fi
  if [ "$fake" = 1 ]; then fake_mkdir; else mkdir "$func" || die "cannot create $func"; fi
  trap 'echo "ep-configfs: bring-up failed; undoing" >&2; down >/dev/null 2>&1 || true' ERR EXIT
  put "$func/vendorid" "$VEPF_VENDOR_ID"
  put "$func/deviceid" "$VEPF_DEVICE_ID"
  put "$func/baseclass_code" 0x05   # memory controller (PCI Code and ID Assignment §1.6)
  put "$func/subclass_code" 0x80    # other memory controller
  [ "$VEPF_MSI" = 0 ] || put "$func/msi_interrupts" 1
  [ "$VEPF_MSIX" = 0 ] || put "$func/msix_interrupts" 1
  if [ "$VEPF_EPF" = pci_epf_vntb ]; then
    put "$sub/num_mws" 1
    put "$sub/mw1" "$VEPF_BAR_SIZE"
    put "$sub/db_count" 4
    put "$sub/spad_count" 16
    put "$sub/vbus_number" 0x10
    put "$sub/vntb_vid" "$VEPF_VNTB_VID"
    put "$sub/vntb_pid" "$VEPF_VNTB_PID"
    local why="this kernel (before 6.17) assigns the control, doorbell and window BARs in order: check that MW1 is BAR$VEPF_BAR (lspci -v on the RC)"
    put_if "$sub/ctrl_bar" "$VEPF_CTRL_BAR" "$why"
    put_if "$sub/db_bar" "$VEPF_DB_BAR" "$why"
    put_if "$sub/mw1_bar" "$VEPF_BAR" "$why"
    ln -s "$ctrl" "$func/primary/$VEPF_EPC" || die "cannot bind $func to $VEPF_EPC"
  else
    put_if "$sub/bar${VEPF_BAR}_size" "$VEPF_BAR_SIZE" \
      "this kernel's pci_epf_test sizes its BARs itself: BAR$VEPF_BAR must hold the EP window ($VEPF_BAR_SIZE bytes)"
    ln -s "$func" "$ctrl/$name" || die "cannot bind $func to $VEPF_EPC"
  fi
  put "$ctrl/start" 1
  trap - ERR EXIT
  say "$VEPF_EPF/$name bound to $VEPF_EPC and started (IDs $VEPF_VENDOR_ID:$VEPF_DEVICE_ID, EP window in BAR$VEPF_BAR, $VEPF_BAR_SIZE bytes)"
  say "next: vepf-ep --board $board"
}

down() {
  [ -d "$root/pci_ep" ] || { say "no $root/pci_ep: nothing to undo"; return 0; }
  if [ -e "$ctrl/start" ] && [ "$(cat "$ctrl/start")" = 1 ]; then
    echo 0 >"$ctrl/start" || die "cannot stop $VEPF_EPC"
  fi
  [ ! -L "$func/primary/$VEPF_EPC" ] || rm "$func/primary/$VEPF_EPC" || die "cannot unbind $func"
  [ ! -L "$ctrl/$name" ] || rm "$ctrl/$name" || die "cannot unbind $func"
  if [ -d "$func" ]; then
    if [ "$fake" = 1 ]; then rm -rf "$func"; else rmdir "$func" || die "cannot remove $func"; fi
  fi
  say "$VEPF_EPF/$name removed from $VEPF_EPC; the link is stopped"
}

show() {
  echo "controller $VEPF_EPC: start = $(cat "$ctrl/start" 2>/dev/null || echo '?')"
  if [ ! -d "$func" ]; then echo "function $VEPF_EPF/$name: absent"; return 0; fi
  echo "function $VEPF_EPF/$name:"
  local f
  for f in "$func"/* "$sub"/*; do
    [ -f "$f" ] && printf '  %s = %s\n' "${f#"$func"/}" "$(cat "$f" 2>/dev/null || echo '?')"
  done
  return 0
}

"$action"
