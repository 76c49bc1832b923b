#!/usr/bin/env bash
# The HIL stage: scenarios on two QEMU machines (scripts/qemu/rig.sh), each bounded in time.
# Prints what ran, what passed, and the stage's wall time; exits non-zero if any failed.
# Today: the rig itself (shared BAR2 between the machines, with ivshmem-plain and with
# ivshmem-doorbell served by vepf-ivshmem-server; vfio-pci binding under intel-iommu), the RC's
# PCI/VFIO layer against QEMU's edu device (vepf-vfio-check: errors, MMIO, MSI, DMA) and
# pci-testdev (memory and I/O BAR accesses), and the net
# device across the machines: vepf-ep on machine a (vfio platform, then devmem), vepf-host on
# machine b through VFIO; vepf-host's errors for an unusable function; ping both ways, iperf3 b->a;
# every device type at once (rpmsg echo, 64 MiB through NBD, console bytes); and the net scenario
# with machine a as an arm64 SoC running the cross-built vepf-ep (vfio, devmem).
# usage: tests/hil/run.sh [BUILD_DIR]   (default build/default)
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
rig=$top/scripts/qemu/rig.sh
guest=$top/scripts/qemu/guest
build=$(cd "${1:-$top/build/default}" && pwd)
t0=$(date +%s)
passed=() failed=()
run() {  # name rig-args...
  local name=$1; shift
  echo "-- hil: $name"
  if "$rig" "$@"; then passed+=("$name"); else failed+=("$name"); fi
}
run "shared BAR2 across the machines (ivshmem, devmem)" --scenario "$guest/smoke.sh" --timeout 90
run "shared BAR2 through vepf-ivshmem-server (ivshmem-doorbell)" --scenario "$guest/smoke.sh" \
  --doorbell "$build/tools/vepf-ivshmem-server/vepf-ivshmem-server" --timeout 90
run "vfio-pci binding under intel-iommu" --scenario "$guest/vfio-smoke.sh" --iommu --timeout 90
run "VFIO layer vs QEMU edu (errors, BAR, MSI, DMA through the IOMMU) and pci-testdev (memory and I/O BARs)" \
  --scenario "$guest/vfio-edu.sh" --iommu --device edu --device pci-testdev,membar=1M \
  --file "$build/tools/vepf-vfio-check/vepf-vfio-check" --file "$top/scripts/vfio-bind.sh:/usr/bin/vfio-bind.sh" --timeout 90
# The net device across the machines (board-configs/qemu-ivshmem.toml; BAR2 of 16 MiB holds both
# windows). Machine a runs the static vepf-ep when build/static has one (as on a SoC root
# filesystem), else the default build's.
ep_bin=$build/ep-firmware/vepf-ep
[ -x "$top/build/static/ep-firmware/vepf-ep" ] && ep_bin=$top/build/static/ep-firmware/vepf-ep
link=(--iommu --doorbell "$build/tools/vepf-ivshmem-server/vepf-ivshmem-server" --size 16777216 --modules tun --memory 512
  --file "$top/board-configs/qemu-ivshmem.toml:/etc/board.toml"
  --file "$top/scripts/vfio-bind.sh:/usr/bin/vfio-bind.sh"
  --file "$guest/passwd:/etc/passwd" --file "$guest/group:/etc/group" --timeout 240)
x86=(--file "$build/host-driver/vepf-host:/usr/bin/vepf-host" --file "$(command -v iperf3)")
# Every program runs with the strict link model (guest/lib.sh). Window memory beyond the default
# (device, every width): vepf-host's EP window write-combining here, vepf-ep's windows 32-bit
# accesses only on the arm64 /dev/mem run (LAYOUT.md §7).
run "net across the machines: vepf-ep ($(basename "$(dirname "$(dirname "$ep_bin")")")) on VFIO, vepf-host on VFIO with its EP window write-combining; errors, ping, iperf3, EP restart" \
  --scenario "$guest/net.sh" --append "vepf.mode=vfio vepf.host-wc=1" --file "$ep_bin:/usr/bin/vepf-ep" "${x86[@]}" "${link[@]}"
run "net across the machines: vepf-ep on /dev/mem (devmem), vepf-host on VFIO; ping, iperf3, EP restart" \
  --scenario "$guest/net.sh" --append vepf.mode=devmem --file "$build/ep-firmware/vepf-ep:/usr/bin/vepf-ep" "${x86[@]}" "${link[@]}"
# Every device type on one link across the machines (VFIO both sides): rpmsg echo, a 64 MiB block
# image through the NBD export and back, console bytes both ways (scripts/qemu/guest/devices.sh).
run "every device across the machines: net, rpmsg echo, 64 MiB through NBD, console bytes" \
  --scenario "$guest/devices.sh" --file "$build/ep-firmware/vepf-ep:/usr/bin/vepf-ep" \
  --file "$build/tools/vepf-rpmsg/vepf-rpmsg:/usr/bin/vepf-rpmsg" --file-b "$(command -v nbdcopy)" "${x86[@]}" "${link[@]}"
# Machine a as an arm64 EP SoC (virt, GICv3, SMMUv3) running the cross-built static vepf-ep
# (build/arm64: the arm64 preset) and Debian's iperf3:arm64; machine b is the x86-64 RC.
arm_ep=$top/build/arm64/ep-firmware/vepf-ep
arm_link=(--arm64-a --file-a "$arm_ep:/usr/bin/vepf-ep" --file-b "$build/host-driver/vepf-host:/usr/bin/vepf-host"
  --file-b "$(command -v iperf3)")
if [ -x "$arm_ep" ] && arm_root=$("$top/scripts/qemu/foreign-debs.sh" --arch arm64 iperf3); then
  arm_link+=(--file-a "$arm_root/usr/bin/iperf3:/usr/bin/iperf3")
  run "net arm64 EP <-> x86-64 RC: vepf-ep (arm64, static) on VFIO under SMMUv3, vepf-host on VFIO; ping, iperf3, EP restart" \
    --scenario "$guest/net.sh" --append vepf.mode=vfio "${arm_link[@]}" "${link[@]}"
  run "net arm64 EP <-> x86-64 RC: vepf-ep (arm64) on /dev/mem, enabling its function, windows 32-bit accesses only; ping, iperf3, EP restart" \
    --scenario "$guest/net.sh" --append "vepf.mode=devmem vepf.ep-widths=4" "${arm_link[@]}" "${link[@]}"
else
  echo "hil: no arm64 EP: $arm_ep missing (cmake --preset arm64 && cmake --build --preset arm64) or no iperf3:arm64"
  failed+=("net arm64 EP <-> x86-64 RC")
fi
echo "hil: ${#passed[@]} passed, ${#failed[@]} failed, $(( $(date +%s) - t0 )) s wall"
for f in "${failed[@]+"${failed[@]}"}"; do echo "hil: FAILED: $f"; done
[ ${#failed[@]} -eq 0 ]
