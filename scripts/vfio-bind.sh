#!/bin/sh
# Binds a PCI function to vfio-pci (driver_override, unbind, drivers_probe), or with --undo gives
# it back to the driver the kernel would choose. POSIX sh: runs in the rig's busybox guests too.
# usage: vfio-bind.sh [--undo] DDDD:BB:DD.F
set -eu
undo=0
if [ "${1:-}" = --undo ]; then undo=1; shift; fi
bdf=${1:-}
dev=/sys/bus/pci/devices/$bdf
if [ -z "$bdf" ] || [ ! -d "$dev" ]; then
  echo "vfio-bind.sh: no PCI function '$bdf': give its address as DDDD:BB:DD.F (lspci -D)" >&2
  exit 2
fi
if [ "$undo" = 0 ]; then
  [ -e /sys/bus/pci/drivers/vfio-pci ] || modprobe vfio-pci 2>/dev/null || true
  [ -e /sys/bus/pci/drivers/vfio-pci ] || { echo "vfio-bind.sh: no vfio-pci driver: modprobe vfio-pci" >&2; exit 1; }
  echo vfio-pci >"$dev/driver_override"
else
  echo >"$dev/driver_override"
fi
if [ -e "$dev/driver" ]; then echo "$bdf" >"$dev/driver/unbind"; fi
echo "$bdf" >/sys/bus/pci/drivers_probe
drv=none
if [ -e "$dev/driver" ]; then drv=$(basename "$(readlink "$dev/driver")"); fi
echo "vfio-bind.sh: $bdf now bound to $drv"
if [ "$undo" = 0 ] && [ "$drv" != vfio-pci ]; then exit 1; fi
exit 0
