#!/usr/bin/env bash
# Two QEMU machines (x86-64 q35, TCG unless the CPU shows vmx/svm; machine a optionally an arm64
# virt machine) joined by one ivshmem function, each running a guest script with its role (a, b).
# Bounded in time; QEMU, the shared memory and temporary files are cleaned up, also on failure.
# usage: rig.sh --scenario GUEST_SCRIPT [--timeout SECONDS] [--modules "..."]
#              [--file SRC[:DEST]]... (into both machines) [--file-a ...] [--file-b ...] (one only)
#              [--arm64-a] (machine a is `qemu-system-aarch64 -M virt,gic-version=3` with a
#                           cortex-a57, Debian's arm64 kernel and busybox-static:arm64; with
#                           --iommu an SMMUv3: an arm64 EP SoC against the x86-64 RC)
#              [--device QEMU_DEVICE]... (added to both machines, e.g. edu)
#              [--doorbell SERVER] (ivshmem-doorbell with 2 MSI-X vectors, served by SERVER =
#                           vepf-ivshmem-server, instead of ivshmem-plain)
#              [--iommu]   (intel-iommu in both machines, intel_iommu=on, the vfio-pci modules:
#                           what VFIO in the guest needs; Debian's kernel has no no-IOMMU mode)
#              [--size BYTES] (the shared memory behind BAR2; default 4194304, a power of 2)
#              [--append "vepf.KEY=VALUE ..."] (more kernel parameters: the scenario reads them)
#              [--memory MIB] (RAM of each machine; default 256)
# exit 0 when both guests report `exit 0`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
scenario= timeout=120 modules= iommu=0 server= size=4194304 more= mem=256 arch_a=amd64
files=() files_a=() files_b=() extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --scenario) scenario=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    --file) files+=(--file "$2"); shift 2 ;;
    --file-a) files_a+=(--file "$2"); shift 2 ;;
    --file-b) files_b+=(--file "$2"); shift 2 ;;
    --arm64-a) arch_a=arm64; shift ;;
    --modules) modules=$2; shift 2 ;;
    --iommu) iommu=1; shift ;;
    --device) extra+=(-device "$2"); shift 2 ;;
    --doorbell) server=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --append) more=$2; shift 2 ;;
    --memory) mem=$2; shift 2 ;;
    *) echo "rig.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -f "$scenario" ] || { echo "rig.sh: --scenario FILE is required (a guest script)" >&2; exit 2; }
archs=amd64
[ "$arch_a" = amd64 ] || archs="amd64 arm64"
for q in qemu-system-x86_64 $([ "$arch_a" = amd64 ] || echo qemu-system-aarch64); do
  command -v "$q" >/dev/null || { echo "rig.sh: $q missing: run scripts/install-deps.sh" >&2; exit 1; }
done

# Per architecture: the kernel (KERNEL_<arch>, KVER_<arch>, KDIR_<arch>) and busybox.
for arch in $archs; do
  eval "$("$here/guest-kernel.sh" --arch "$arch" | sed "s/\([A-Z]*\)=/\1_$arch=/g")"
done
BUSYBOX_amd64=/bin/busybox
[ "$arch_a" = amd64 ] || BUSYBOX_arm64=$("$here/foreign-debs.sh" --arch arm64 busybox-static)/bin/busybox
work=$(mktemp -d /tmp/vepf-rig.XXXXXX)
shm=/dev/shm/vepf-rig-$$
pids=
cleanup() {
  local rc=$?
  for p in $pids; do kill -KILL "$p" 2>/dev/null || true; done
  for p in $pids; do wait "$p" 2>/dev/null || true; done
  if [ $rc -ne 0 ]; then
    for r in a b; do [ -f "$work/$r.log" ] && { echo "--- machine $r"; tail -n 40 "$work/$r.log"; }; done
  fi
  rm -rf "$work" "$shm"
  exit $rc
}
trap cleanup EXIT INT TERM

[ "$iommu" = 0 ] || modules="vfio-pci $modules"
for r in a b; do
  arch=amd64 own=("${files_b[@]+"${files_b[@]}"}")
  [ "$r" = b ] || arch=$arch_a own=("${files_a[@]+"${files_a[@]}"}")
  eval "kdir=\$KDIR_$arch kver=\$KVER_$arch busybox=\$BUSYBOX_$arch"
  "$here/mkinitramfs.sh" --kdir "$kdir" --kver "$kver" --busybox "$busybox" --out "$work/initrd-$r.gz" --modules "$modules" \
    --file "$here/guest/lib.sh:/etc/rig-lib.sh" --file "$scenario:/scenario.sh" "${files[@]+"${files[@]}"}" \
    "${own[@]+"${own[@]}"}" | sed "s/^/[$r] /"
done
ivshmem=(-object "memory-backend-file,id=hmb,share=on,mem-path=$shm,size=$size" -device ivshmem-plain,memdev=hmb,addr=0x5)
if [ -n "$server" ]; then
  # QEMU fails when the server's socket is not there yet: wait for it.
  "$server" --socket "$work/ivshmem.sock" --shm-path "$shm" --size "$size" --vectors 2 >"$work/server.log" 2>&1 &
  pids="$pids $!"
  for _ in $(seq 100); do [ -S "$work/ivshmem.sock" ] && break; sleep 0.05; done
  [ -S "$work/ivshmem.sock" ] || { echo "rig.sh: $server did not listen" >&2; cat "$work/server.log" >&2; exit 1; }
  ivshmem=(-chardev "socket,path=$work/ivshmem.sock,id=ivs" -device ivshmem-doorbell,chardev=ivs,vectors=2,addr=0x5)
else
  truncate -s "$size" "$shm"
fi
append="quiet panic=-1 vepf.run=/scenario.sh $more"
x86=(qemu-system-x86_64 -M q35) x86_append="console=ttyS0"
if [ "$iommu" = 1 ]; then
  # The vIOMMU comes before the other devices; caching-mode lets VFIO map DMA through it.
  x86+=(-device intel-iommu,intremap=on,caching-mode=on)
  x86_append="$x86_append intel_iommu=on"
fi
# arm64: GICv3 (its ITS carries MSI-X), and SMMUv3 for VFIO (with GICv2, VFIO_SET_IOMMU fails).
arm=(qemu-system-aarch64 -M "virt,gic-version=3$([ "$iommu" = 0 ] || echo ,iommu=smmuv3)" -cpu cortex-a57)
arm_append="console=ttyAMA0"

accel=tcg
if grep -qwE 'vmx|svm' /proc/cpuinfo && [ -w /dev/kvm ]; then accel=kvm; fi
t0=$(date +%s%N)
for r in a b; do
  if [ "$r" = a ] && [ "$arch_a" = arm64 ]; then
    qemu=("${arm[@]}" -accel tcg) kernel=$KERNEL_arm64 console=$arm_append
  else
    qemu=("${x86[@]}" -accel "$accel") kernel=$KERNEL_amd64 console=$x86_append
  fi
  timeout "$timeout" "${qemu[@]}" -m "${mem}M" -smp 1 -nographic -no-reboot -nic none \
    -kernel "$kernel" -initrd "$work/initrd-$r.gz" -append "$console $append vepf.role=$r" \
    "${ivshmem[@]}" \
    "${extra[@]+"${extra[@]}"}" \
    </dev/null >"$work/$r.log" 2>&1 &
  pids="$pids $!" qemu_pids="${qemu_pids:-} $!"
done
rc=0
for p in $qemu_pids; do wait "$p" || rc=1; done
t1=$(date +%s%N)
ok=0
for r in a b; do
  grep -a "vepf-rig: " "$work/$r.log" | sed "s/^/  [$r] /" || true
  grep -aq "vepf-rig: $r: exit 0" "$work/$r.log" && ok=$((ok + 1))
done
echo "rig: two machines (a: $arch_a, b: amd64; $accel), $(( (t1 - t0) / 1000000 )) ms wall"
[ "$ok" -eq 2 ] || { echo "rig: scenario $(basename "$scenario") failed" >&2; exit 1; }
echo "rig: scenario $(basename "$scenario") passed"
