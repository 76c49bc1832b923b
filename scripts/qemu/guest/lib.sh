# Helpers for the rig's guest scripts (busybox sh), installed as /etc/rig-lib.sh.

# The sysfs directory of the first PCI function with vendor $1 and device $2 (0x1af4 0x1110:
# ivshmem). busybox has no lspci.
pci_find() {
  for d in /sys/bus/pci/devices/*; do
    [ "$(cat "$d/vendor")" = "$1" ] && [ "$(cat "$d/device")" = "$2" ] && { echo "$d"; return 0; }
  done
  return 1
}

# The physical start address of BAR $2 of PCI function directory $1 (line $2 of `resource`).
bar_addr() {
  sed -n "$(($2 + 1))p" "$1/resource" | cut -d' ' -f1
}

# Polls until the 32-bit word at physical address $1 equals $2, at most $3 tenths of a second.
wait_word() {
  i=0
  while [ $(($(devmem "$1" 32))) -ne $(($2)) ]; do
    i=$((i + 1))
    [ "$i" -le "$3" ] || return 1
    sleep 0.1
  done
}
