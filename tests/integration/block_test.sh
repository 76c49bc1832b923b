#!/usr/bin/env bash
# virtio-blk end to end with the standard NBD clients, on the loopback platform:
#  1. nbdinfo sees the export: size, read-write, flush/trim/zero, block sizes;
#  2. nbdcopy copies a 256 MiB random image to the device and back: byte-identical, and the EP's
#     backing file holds the same bytes; MB/s each way are printed;
#  3. qemu-io runs random writes/reads/write-zeroes/discards/flushes at odd offsets, checked
#     against a model (blk_model.py); the EP reports the flushes (fdatasync) it did;
#  4. a read-only device refuses writes (qemu-io write fails, nbdinfo says read-only).
# usage: block_test.sh BUILD_DIR
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$top/build/default}" && pwd)
for t in nbdinfo nbdcopy qemu-io; do
  command -v "$t" >/dev/null || { echo "$t missing: run scripts/install-deps.sh" >&2; exit 1; }
done

work=$(mktemp -d /tmp/vepf-block.XXXXXX)
pids=
cleanup() {
  local rc=$?
  for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
  for p in $pids; do wait "$p" 2>/dev/null || true; done
  [ $rc -eq 0 ] || { echo "--- vepf-ep log"; cat "$work/ep.log"; echo "--- vepf-host log"; cat "$work/host.log"; }
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT
check() {  # description command...
  local what=$1; shift
  if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; exit 1; fi
}

size=$((256 << 20))
cat >"$work/board.toml" <<TOML
[board]
name = "block-test"
platform = "loopback"
[loopback]
socket = "$work/link.sock"
[[device]]
type = "block"
queue_size = 128
[device.block]
path = "$work/disk.img"
size = $size
block_size = 4096
nbd_socket = "$work/blk0.sock"
[[device]]
type = "block"
queue_size = 16
[device.block]
path = "$work/ro.img"
size = 1048576
read_only = true
nbd_socket = "$work/blk1.sock"
TOML
uri="nbd+unix:///?socket=$work/blk0.sock"
ro_uri="nbd+unix:///?socket=$work/blk1.sock"

"$build/ep-firmware/vepf-ep" --board "$work/board.toml" >"$work/ep.log" 2>&1 &
pids="$!"
"$build/host-driver/vepf-host" --board "$work/board.toml" >"$work/host.log" 2>&1 &
pids="$pids $!"
wait_socket() { for _ in $(seq 100); do [ -S "$1" ] && return 0; sleep 0.1; done; return 1; }
check "vepf-host serves both devices over NBD" wait_socket "$work/blk0.sock"
wait_socket "$work/blk1.sock"

nbdinfo "$uri" >"$work/info.txt"
check "nbdinfo: export size $size" grep -q "export-size: $size" "$work/info.txt"
check "nbdinfo: writable, flush, trim, zero" \
  bash -c "grep -q 'is_read_only: false' '$work/info.txt' && grep -q 'can_flush: true' '$work/info.txt' &&
           grep -q 'can_trim: true' '$work/info.txt' && grep -q 'can_zero: true' '$work/info.txt'"
check "nbdinfo: minimum block size 512, preferred 4096" \
  bash -c "grep -q 'block_size_minimum: 512' '$work/info.txt' && grep -q 'block_size_preferred: 4096' '$work/info.txt'"

head -c "$size" /dev/urandom >"$work/src.img"
t0=$(date +%s%N)
nbdcopy "$work/src.img" "$uri"
t1=$(date +%s%N)
nbdcopy "$uri" "$work/back.img"
t2=$(date +%s%N)
check "256 MiB round trip through the device is byte-identical" cmp "$work/src.img" "$work/back.img"
check "the EP's backing file holds the same bytes" cmp "$work/src.img" "$work/disk.img"
awk -v b="$size" -v w=$((t1 - t0)) -v r=$((t2 - t1)) 'BEGIN {
  printf "nbdcopy 256 MiB: write %.1f MB/s (%.2f s), read %.1f MB/s (%.2f s)\n", b / w * 1e3, w / 1e9, b / r * 1e3, r / 1e9 }'
rm -f "$work/back.img"

ep_flushes() {
  "$build/ep-firmware/vepf-ep" ctl --board "$work/board.toml" list |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["devices"][0]["flushes"])'
}
check "qemu-io at odd offsets agrees with the model" python3 "$top/tests/integration/blk_model.py" "$uri" "$size" "$work" --ops 400
before=$(ep_flushes)
qemu-io -f raw "$uri" -c 'write -P 7 4096 4096' -c flush -c flush -c flush >/dev/null
after=$(ep_flushes)
check "three NBD flushes reach the EP as fdatasync ($before -> $after)" test $((after - before)) -ge 3

nbdinfo "$ro_uri" >"$work/ro.txt"
check "read-only device: nbdinfo says read-only" grep -q 'is_read_only: true' "$work/ro.txt"
if qemu-io -f raw "$ro_uri" -c 'write -P 1 0 512' >"$work/ro-write.txt" 2>&1 && ! grep -qi 'error\|denied\|read-only' "$work/ro-write.txt"; then
  echo "FAIL: a write to the read-only device succeeded"; cat "$work/ro-write.txt"; exit 1
fi
echo "ok: read-only device refuses writes"
check "read-only device still reads" qemu-io -f raw -r "$ro_uri" -c 'read -P 0 0 4096'

if [ -e /sys/module/nbd ] || modprobe -n nbd 2>/dev/null; then
  echo "note: the kernel has nbd; nbd-client is not exercised by this test"
else
  echo "note: no nbd module in this kernel: nbd-client not tried"
fi
echo "block test passed"
