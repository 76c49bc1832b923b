# Rig VFIO smoke test: with intel-iommu, the ivshmem function binds to vfio-pci through
# driver_override and its IOMMU group appears as /dev/vfio/N (type1), alone in its group.
. /etc/rig-lib.sh
d=$(pci_find 0x1af4 0x1110) || { echo "vepf-rig: $ROLE: no ivshmem function"; exit 1; }
bdf=$(basename "$d")
[ -e /dev/vfio/vfio ] || { echo "vepf-rig: $ROLE: no /dev/vfio/vfio (modules: $(cat /etc/modules.order))"; exit 1; }
echo vfio-pci >"$d/driver_override"
echo "$bdf" >/sys/bus/pci/drivers_probe
drv=$(basename "$(readlink "$d/driver")")
group=$(basename "$(readlink "$d/iommu_group")")
members=$(ls "$d/iommu_group/devices" | wc -l)
echo "vepf-rig: $ROLE: $bdf driver $drv, IOMMU group $group with $members function(s)"
[ "$drv" = vfio-pci ] && [ -e "/dev/vfio/$group" ] && [ "$members" -eq 1 ]
