# Rig VFIO test of the RC's PCI layer (vepf-vfio-check) against QEMU's edu device (1234:11e8):
# its one-line errors first (wrong address, function not bound to vfio-pci), then bound with
# vfio-bind.sh: BARs, MMIO, MSI round trips and a DMA round trip through intel-iommu.
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
exit $rc
