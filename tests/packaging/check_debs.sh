#!/usr/bin/env bash
# Builds the Debian packages (cpack, cmake/packaging.cmake) from the three build directories the
# test command made (default: vepf-host; static: vepf-ep for amd64; arm64: vepf-ep for arm64),
# unpacks each with dpkg -x and checks what a user installs: the programs (vepf-ep static, for
# the right machine), the systemd units (systemd-analyze verify against the unpacked tree: no
# complaint at all), the documentation and example board configs, and that the packaged
# programs run (--check-config over the packaged example configs, where this machine can run
# them). Usage: tests/packaging/check_debs.sh [REPO_DIR]
set -euo pipefail
top=$(cd "${1:-$(dirname "$0")/../..}" && pwd)
ver=$(sed -n 's/^project(virtio-epf VERSION \([0-9.]*\).*/\1/p' "$top/CMakeLists.txt")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

pack() {  # build dir -> the .deb it makes (one)
  local dir="$top/build/$1"
  [ -f "$dir/CMakeCache.txt" ] || fail "no build in $dir: run the $1 preset first"
  rm -f "$dir"/*.deb
  (cd "$dir" && cpack -G DEB >"$tmp/cpack-$1.log" 2>&1) || { cat "$tmp/cpack-$1.log" >&2; fail "cpack in build/$1"; }
  ls "$dir"/*.deb
}

field() { dpkg-deb -f "$1" "$2"; }

check_unit() {  # root unit-instance
  local root=$1 unit=$2 out
  # The unpacked tree with this machine's own units beside ours (sysinit.target and the rest
  # that every service depends on), and the board config directory the units name.
  cp -an /usr/lib/systemd/system/. "$root/usr/lib/systemd/system/"
  mkdir -p "$root/etc/vepf"
  out=$(systemd-analyze verify --root="$root" "$unit" 2>&1) || fail "systemd-analyze verify $unit: $out"
  [ -z "$out" ] || fail "systemd-analyze verify $unit complains: $out"
  echo "  $unit: systemd-analyze verify clean"
}

check_ep() {  # deb arch
  local deb=$1 arch=$2 root="$tmp/ep-$2"
  [ "$(field "$deb" Package)" = vepf-ep ] || fail "$deb: package $(field "$deb" Package)"
  [ "$(field "$deb" Architecture)" = "$arch" ] || fail "$deb: architecture $(field "$deb" Architecture), want $arch"
  [ -z "$(field "$deb" Depends)" ] || fail "$deb: a static vepf-ep should depend on nothing, has: $(field "$deb" Depends)"
  dpkg -x "$deb" "$root"
  local bin="$root/usr/bin/vepf-ep"
  [ -x "$bin" ] || fail "$deb has no /usr/bin/vepf-ep"
  ! readelf -d "$bin" 2>/dev/null | grep -q NEEDED || fail "$deb: vepf-ep needs shared libraries"
  local machine
  machine=$(readelf -h "$bin" | sed -n 's/^ *Machine: *//p')
  case "$arch:$machine" in amd64:*X86-64*|arm64:*AArch64*) ;; *) fail "$deb: vepf-ep is built for '$machine'" ;; esac
  [ -x "$root/usr/bin/vepf-ep-configfs" ] || fail "$deb has no vepf-ep-configfs"
  for f in usr/lib/systemd/system/vepf-ep@.service usr/share/doc/vepf-ep/README.md usr/share/doc/vepf-ep/copyright \
           usr/share/doc/vepf-ep/examples/board-configs/rk3588.toml; do
    [ -f "$root/$f" ] || fail "$deb has no /$f"
  done
  if [ "$arch" = "$(dpkg --print-architecture)" ]; then
    "$bin" --check-config "$root/usr/share/doc/vepf-ep/examples/board-configs/rk3588.toml" >/dev/null ||
      fail "the packaged vepf-ep rejects the packaged rk3588.toml"
    echo "  the packaged vepf-ep checks the packaged board configs"
  fi
  check_unit "$root" vepf-ep@rk3588.service
  echo "ok: $(basename "$deb")"
}

check_host() {  # deb
  local deb=$1 root="$tmp/host"
  [ "$(field "$deb" Package)" = vepf-host ] || fail "$deb: package $(field "$deb" Package)"
  field "$deb" Depends | grep -q libc6 || fail "$deb: no shared-library dependencies (dpkg-shlibdeps)"
  dpkg -x "$deb" "$root"
  for f in usr/bin/vepf-host usr/bin/vepf-rpmsg usr/bin/vepf-vfio-check; do
    [ -x "$root/$f" ] || fail "$deb has no /$f"
  done
  for f in usr/lib/systemd/system/vepf-host@.service usr/share/doc/vepf-host/README.md \
           usr/share/doc/vepf-host/examples/board-configs/loopback.toml; do
    [ -f "$root/$f" ] || fail "$deb has no /$f"
  done
  "$root/usr/bin/vepf-host" --check-config "$root/usr/share/doc/vepf-host/examples/board-configs/loopback.toml" >/dev/null ||
    fail "the packaged vepf-host rejects the packaged loopback.toml"
  check_unit "$root" vepf-host@loopback.service
  echo "ok: $(basename "$deb")"
}

host_deb=$(pack default)
ep_deb=$(pack static)
arm_deb=$(pack arm64)
[ "$(basename "$host_deb")" = "vepf-host_${ver}_$(dpkg --print-architecture).deb" ] || fail "unexpected name $host_deb"
[ "$(basename "$ep_deb")" = "vepf-ep_${ver}_$(dpkg --print-architecture).deb" ] || fail "unexpected name $ep_deb"
[ "$(basename "$arm_deb")" = "vepf-ep_${ver}_arm64.deb" ] || fail "unexpected name $arm_deb"
check_host "$host_deb"
check_ep "$ep_deb" "$(dpkg --print-architecture)"
check_ep "$arm_deb" arm64
echo "packages: $(basename "$host_deb") $(basename "$ep_deb") $(basename "$arm_deb")"
