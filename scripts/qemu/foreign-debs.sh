#!/usr/bin/env bash
# Programs of another architecture for the rig's guests (busybox-static:arm64, iperf3:arm64),
# unpacked from Debian's packages with `dpkg -x` into a cache, never installed on this machine.
# Their shared libraries are the multiarch :ARCH packages scripts/install-deps.sh installs
# (mkinitramfs.sh copies them next to the program).
# Idempotent: packages already unpacked are reused.
# usage: foreign-debs.sh --arch arm64 [--cache DIR] PACKAGE...
# prints: the root the packages are unpacked in (e.g. ROOT/bin/busybox, ROOT/usr/bin/iperf3)
set -euo pipefail
arch= cache=${VEPF_RIG_CACHE:-$(cd "$(dirname "$0")/../.." && pwd)/build/rig}
pkgs=()
while [ $# -gt 0 ]; do
  case $1 in
    --arch) arch=$2; shift 2 ;;
    --cache) cache=$2; shift 2 ;;
    -*) echo "foreign-debs.sh: unknown option $1 (use --arch ARCH, --cache DIR)" >&2; exit 2 ;;
    *) pkgs+=("$1"); shift ;;
  esac
done
[ -n "$arch" ] && [ ${#pkgs[@]} -gt 0 ] || { echo "foreign-debs.sh: usage: --arch arm64 PACKAGE..." >&2; exit 2; }
dpkg --print-foreign-architectures | grep -qx "$arch" || {
  echo "foreign-debs.sh: dpkg does not know $arch: run scripts/install-deps.sh (dpkg --add-architecture $arch)" >&2; exit 1; }
dir=$cache/$arch/debs
root=$dir/root
mkdir -p "$root"
for p in "${pkgs[@]}"; do
  [ -f "$dir/$p.done" ] && continue
  (cd "$dir" && rm -f ./"${p}"_*_"$arch".deb && apt-get -o APT::Sandbox::User=root download "$p:$arch" >/dev/null)
  dpkg -x "$(ls "$dir/${p}"_*_"$arch".deb | head -n 1)" "$root"
  touch "$dir/$p.done"
done
echo "$root"
