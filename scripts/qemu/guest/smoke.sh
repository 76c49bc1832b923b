# Rig smoke test: both machines see the ivshmem function and share its BAR2. Machine a writes a
# word, machine b sees it and answers in the next word, machine a sees the answer.
. /etc/rig-lib.sh
d=$(pci_find 0x1af4 0x1110) || { echo "vepf-rig: $ROLE: no ivshmem function"; exit 1; }
echo 1 >"$d/enable"  # memory decoding: nothing else enables an unbound function
bar=$(bar_addr "$d" 2)
echo "vepf-rig: $ROLE: ivshmem at $(basename "$d"), BAR2 at $bar"
case $ROLE in
  a)
    devmem "$bar" 32 0x76657066
    wait_word $((bar + 4)) 0x600df00d 300 || exit 1
    echo "vepf-rig: a: answer seen"
    ;;
  b)
    wait_word "$bar" 0x76657066 300 || exit 1
    devmem $((bar + 4)) 32 0x600df00d
    echo "vepf-rig: b: word seen, answered"
    ;;
esac
