#!/usr/bin/env bash
# Two QEMU machines (x86-64 q35, TCG unless the CPU shows vmx/svm) joined by one ivshmem
# function, each running a guest script with its role (a, b). Bounded in time; QEMU, the shared
# memory and temporary files are cleaned up, also on failure.
# usage: rig.sh --scenario GUEST_SCRIPT [--timeout SECONDS] [--file SRC[:DEST]]... [--modules "..."]
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
scenario= timeout=120 modules= iommu=0 server= size=4194304 more= mem=256
files=() extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --scenario) scenario=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    --file) files+=(--file "$2"); shift 2 ;;
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
command -v qemu-system-x86_64 >/dev/null || { echo "rig.sh: qemu-system-x86_64 missing: run scripts/install-deps.sh" >&2; exit 1; }

eval "$("$here/guest-kernel.sh" --arch amd64)"
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
"$here/mkinitramfs.sh" --kdir "$KDIR" --kver "$KVER" --out "$work/initrd.gz" --modules "$modules" \
  --file "$here/guest/lib.sh:/etc/rig-lib.sh" --file "$scenario:/scenario.sh" "${files[@]+"${files[@]}"}"
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
machine=() append="console=ttyS0 quiet panic=-1 vepf.run=/scenario.sh $more"
if [ "$iommu" = 1 ]; then
  # The vIOMMU comes before the other devices; caching-mode lets VFIO map DMA through it.
  machine=(-device intel-iommu,intremap=on,caching-mode=on)
  append="$append intel_iommu=on"
fi

accel=tcg
if grep -qwE 'vmx|svm' /proc/cpuinfo && [ -w /dev/kvm ]; then accel=kvm; fi
t0=$(date +%s%N)
for r in a b; do
  timeout "$timeout" qemu-system-x86_64 -accel "$accel" -M q35 -m "${mem}M" -smp 1 -nographic -no-reboot -nic none \
    "${machine[@]+"${machine[@]}"}" -kernel "$KERNEL" -initrd "$work/initrd.gz" -append "$append vepf.role=$r" \
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
echo "rig: two machines ($accel), $(( (t1 - t0) / 1000000 )) ms wall"
[ "$ok" -eq 2 ] || { echo "rig: scenario $(basename "$scenario") failed" >&2; exit 1; }
echo "rig: scenario $(basename "$scenario") passed"
