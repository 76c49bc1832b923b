#!/usr/bin/env bash
# An initramfs for the QEMU rig's guests: busybox-static, the kernel modules named (with their
# dependencies, in load order, from the unpacked kernel's modules.dep), the programs named (with
# the shared libraries they need) and guest/init, which runs the script named on the kernel
# command line (vepf.run=/path) and powers off.
# Programs may be arm64 ELF files on this x86-64 machine: their libraries are listed by the arm64
# loader under qemu-aarch64-static, from the multiarch :arm64 packages.
# usage: mkinitramfs.sh --kdir DIR --kver VERSION --out FILE.cpio.gz [--modules "a b"]
#                       [--busybox FILE] (default /bin/busybox; an arm64 one for arm64 guests)
#                       [--file SRC[:DEST]]... (programs: add their shared libraries too)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kdir= kver= out= modules= busybox=/bin/busybox
files=()
while [ $# -gt 0 ]; do
  case $1 in
    --kdir) kdir=$2; shift 2 ;;
    --kver) kver=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --modules) modules=$2; shift 2 ;;
    --file) files+=("$2"); shift 2 ;;
    --busybox) busybox=$2; shift 2 ;;
    *) echo "mkinitramfs.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -n "$kdir" ] && [ -n "$kver" ] && [ -n "$out" ] || { echo "mkinitramfs.sh: --kdir, --kver and --out are required" >&2; exit 2; }
[ -x "$busybox" ] || { echo "mkinitramfs.sh: $busybox missing: apt-get install busybox-static" >&2; exit 1; }

stage=$(mktemp -d /tmp/vepf-initramfs.XXXXXX)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,sbin,etc,proc,sys,dev,tmp,run,lib/modules,usr/bin}
chmod 755 "$stage"  # mktemp's 0700 would become the guest's /: other users could run nothing
chmod 1777 "$stage/tmp"
cp "$busybox" "$stage/bin/busybox"
ln -s busybox "$stage/bin/sh"
cp "$here/guest/init" "$stage/init"
chmod +x "$stage/init"

# Modules: `modprobe --show-depends` lists each one after what it needs.
: >"$stage/etc/modules.order"
for m in $modules; do
  while read -r verb path _; do
    [ "$verb" = insmod ] || continue
    name=$(basename "$path")
    grep -qx "${name%.xz}" "$stage/etc/modules.order" && continue
    case $name in
      *.xz) xz -dc "$path" >"$stage/lib/modules/${name%.xz}" ;;
      *) cp "$path" "$stage/lib/modules/$name" ;;
    esac
    echo "${name%.xz}" >>"$stage/etc/modules.order"
  done < <(modprobe -d "$kdir" -S "$kver" --show-depends "$m")
done

# The shared libraries an ELF program needs, one path per line: ldd for this machine's programs,
# the arm64 loader's --list (under qemu-user) for arm64 ones. Static programs need none.
elf_libs() {
  local machine
  machine=$(od -An -tu2 -j18 -N2 "$1" | tr -d ' ')
  LC_ALL=C readelf -l "$1" 2>/dev/null | grep -q 'program interpreter' || return 0  # static
  if [ "$machine" = 183 ] && [ "$(uname -m)" != aarch64 ]; then  # EM_AARCH64
    command -v qemu-aarch64-static >/dev/null || { echo "mkinitramfs.sh: $1 is arm64: apt-get install qemu-user-static" >&2; return 1; }
    [ -e /lib/ld-linux-aarch64.so.1 ] || { echo "mkinitramfs.sh: $1 is arm64: run scripts/install-deps.sh (multiarch arm64 libraries)" >&2; return 1; }
    { qemu-aarch64-static /lib/ld-linux-aarch64.so.1 --list "$1" 2>/dev/null || true; } | { grep -oE '/[^ ]+' || true; }
  else
    { ldd "$1" 2>/dev/null || true; } | { grep -oE '/[^ ]+' || true; }
  fi
}

# Programs and scripts, with the shared libraries of each ELF (paths kept).
for f in "${files[@]+"${files[@]}"}"; do
  src=${f%%:*}
  dest=${f#*:}
  [ "$dest" != "$f" ] || dest=/usr/bin/$(basename "$src")
  mkdir -p "$stage$(dirname "$dest")"
  cp -L "$src" "$stage$dest"
  if head -c 4 "$src" | grep -q ELF; then
    libs=$(elf_libs "$src")
    for lib in $libs; do
      mkdir -p "$stage$(dirname "$lib")"
      [ -e "$stage$lib" ] || cp -L "$lib" "$stage$lib"
    done
  fi
done

mkdir -p "$(dirname "$out")"
(cd "$stage" && find . | cpio -o -H newc --quiet | gzip -1) >"$out.tmp"
mv "$out.tmp" "$out"
echo "initramfs $out: $(du -h "$out" | cut -f1), modules: $(tr '\n' ' ' <"$stage/etc/modules.order")"
