# Rig VFIO test of the RC's PCI layer (vepf-vfio-check) against QEMU's edu device (1234:11e8):
# its one-line errors first (wrong address, function not bound to vfio-pci), then bound with
# vfio-bind.sh: BARs, MMIO, MSI round trips and a DMA round trip through intel-iommu. Then the BAR
# and region code against QEMU's pci-testdev (1b36:0005, started with membar=1M): the tests of
# its memory BAR0 (mmap) and I/O BAR1 (VFIO region pread/pwrite), and BAR2's size.
. /etc/rig-lib.sh
d=$(pci_find 0x1234 0x11e8) || { echo "vepf-rig: $ROLE: no edu function"; exit 1; }
bdf=$(basename "$d")
out=$(vepf-vfio-check --bdf 0000:00:1f.7 2>&1) && exit 1
echo "vepf-rig: $ROLE: wrong address -> $out"
out=$(vepf-vfio-check --device 1234:11e8 2>&1) && exit 1
echo "vepf-rig: $ROLE: unbound -> $out"
case $out in *"run scripts/vfio-bind.sh $bdf"*) ;; *) exit 1 ;; esac
sh /usr/bin/vfio-bind.sh "$bdf" | sed "s/^/vepf-rig: $ROLE: /"
vepf-vfio-check --device 1234:11e8 --edu >/tmp/out 2>&1
rc=$?
sed "s/^/vepf-rig: $ROLE: /" /tmp/out
[ $rc -eq 0 ] || exit $rc

d=$(pci_find 0x1b36 0x0005) || { echo "vepf-rig: $ROLE: no pci-testdev function"; exit 1; }
bdf=$(basename "$d")
sh /usr/bin/vfio-bind.sh "$bdf" | sed "s/^/vepf-rig: $ROLE: /"
vepf-vfio-check --device 1b36:0005 --testdev >/tmp/out 2>&1
rc=$?
sed "s/^/vepf-rig: $ROLE: /" /tmp/out
grep -q "BAR2 1048576 bytes" /tmp/out || { echo "vepf-rig: $ROLE: BAR2 is not the 1 MiB membar"; exit 1; }
exit $rc
