#!/usr/bin/env bash
# Installs the dependencies of virtio-epf from Debian bookworm packages. Idempotent; needs root
# (or sudo). Nothing is downloaded from outside Debian's archive.
#
#   scripts/install-deps.sh             everything the tests use (scripts/test.sh): the sanitizer
#                                       and fuzz toolchains, the benchmark peers, QEMU and the
#                                       arm64 cross toolchain for the rig, the NBD clients...
#   scripts/install-deps.sh --minimal   only what the default build and the loopback demo need
#                                       (README's first command)
set -euo pipefail

minimal=0
case "${1:-}" in
  '') ;;
  --minimal) minimal=1 ;;
  *) echo "install-deps: unknown argument '$1': use --minimal, or nothing for the full set" >&2; exit 2 ;;
esac

# The default build (its unit tests and benchmarks included) and scripts/demo-loopback.sh.
base=(
  build-essential cmake ninja-build pkg-config
  libcli11-dev libspdlog-dev libfmt-dev libtomlplusplus-dev libexpected-dev
  nlohmann-json3-dev linux-libc-dev libpci-dev libgpiod-dev
  googletest libgtest-dev libgmock-dev libbenchmark-dev
  iproute2 iputils-ping iperf3 procps psmisc
)

pkgs=(
  # toolchain
  build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev
  # scripts/tidy.sh: the format and static checks of the files a change touches (STYLE.md §8)
  clang-format clang-tidy
  # scripts/fuzz.sh: the coverage report of the fuzz corpora (llvm-profdata-14, llvm-cov-14)
  llvm-14
  # libraries (DEVELOPERS.md: the rest comes from well-kept libraries)
  libcli11-dev libspdlog-dev libfmt-dev libtomlplusplus-dev libexpected-dev
  nlohmann-json3-dev linux-libc-dev
  # tests and benchmarks
  googletest libgtest-dev libgmock-dev libbenchmark-dev python3
  # the benchmarks' peers (scripts/bench/compare.sh): DPDK's testpmd with the vhost-user and
  # virtio-user vdevs (recommends of dpdk-dev, so named here), and gnuplot for the plot
  dpdk-dev librte-net-vhost23 librte-net-virtio23 librte-mempool-ring23 gnuplot-nox
  # demo and network tests
  iproute2 iputils-ping iperf3 procps psmisc
  # block device: the standard NBD clients (nbdinfo, nbdcopy, qemu-img, qemu-io); libnbd for tests
  libnbd-bin libnbd-dev qemu-utils
  # console: a terminal program for the host's pty
  picocom
  # the QEMU rig (scripts/qemu): machines, the guests' busybox and initramfs, depmod, vmlinux
  qemu-system-x86 busybox-static cpio kmod xz-utils
  # the RC's PCI discovery (vepf_vfio)
  libpci-dev
  # the EP's GPIO sideband lines (vepf_gpio: libgpiod 1.6, with libgpiod.a for VEPF_STATIC); gpiod for gpioinfo/gpioset
  libgpiod-dev gpiod
  # arm64 EP SoCs: the cross compiler (the arm64 preset), qemu-user for its tests, the arm64 rig machine
  g++-aarch64-linux-gnu qemu-user-static qemu-system-arm
  # ... and the arm64 libraries it builds against (Debian multiarch), with libiperf0 for the arm64
  # guest's iperf3 (scripts/qemu/foreign-debs.sh unpacks the program itself)
  libgpiod-dev:arm64 libgtest-dev:arm64 libgmock-dev:arm64 libspdlog-dev:arm64 libfmt-dev:arm64
  libtomlplusplus-dev:arm64 libiperf0:arm64
  # tests/packaging/check_debs.sh: the packages' systemd units (systemd-analyze verify)
  systemd
)
if [ "$minimal" = 1 ]; then pkgs=("${base[@]}"); fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#pkgs[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if [ "$minimal" = 0 ] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
  $SUDO dpkg --add-architecture arm64  # multiarch: :arm64 packages beside this machine's
fi
$SUDO apt-get update -qq
# iperf3's postinst asks whether to start a daemon; answer no.
echo "iperf3 iperf3/start_daemon boolean false" | $SUDO debconf-set-selections
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
