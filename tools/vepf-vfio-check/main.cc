// vepf-vfio-check: the RC side's PCI/VFIO layer on its own.
//   vepf-vfio-check --device VVVV:DDDD | --bdf DDDD:BB:DD.F        find it, check it, list its BARs
//   ... --edu                                                      and run QEMU's edu device
// The edu run (QEMU docs/specs/edu.rst: register offsets, the 4 KiB buffer at 0x40000, 28-bit
// DMA addresses) checks MMIO both ways, an MSI round trip and a DMA round trip through the IOMMU,
// and prints the interrupt round-trip time. Exit: 0 passed, 1 failed, 2 bad command line.

#include <poll.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "vepf/vfio/device.hpp"
#include "vepf/vfio/pci.hpp"

namespace {

using namespace vepf::vfio;
using Clock = std::chrono::steady_clock;

// edu registers (BAR0), bytes.
constexpr std::uint32_t kId = 0x00, kLive = 0x04, kIrqStatus = 0x24, kIrqRaise = 0x60, kIrqAck = 0x64;
constexpr std::uint32_t kDmaSrc = 0x80, kDmaDst = 0x88, kDmaCount = 0x90, kDmaCmd = 0x98;
constexpr std::uint64_t kEduBuffer = 0x40000;
constexpr std::uint32_t kDmaStart = 1, kDmaToRam = 2, kDmaIrq = 4, kDmaIrqBit = 0x100;
constexpr std::uint64_t kIova = 0x100000;  // below the device's 28-bit DMA mask
constexpr std::size_t kDmaBytes = 4000;    // QEMU 7.2 aborts on a DMA ending at the buffer's end

struct Mmio {
  volatile std::byte* base;
  std::uint32_t r32(std::uint32_t off) const { return *reinterpret_cast<volatile std::uint32_t*>(base + off); }
  void w32(std::uint32_t off, std::uint32_t v) const { *reinterpret_cast<volatile std::uint32_t*>(base + off) = v; }
  void w64(std::uint32_t off, std::uint64_t v) const { *reinterpret_cast<volatile std::uint64_t*>(base + off) = v; }
};

bool fail(const std::string& what) {
  std::printf("vfio-check: FAIL: %s\n", what.c_str());
  return false;
}

bool wait_irq(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, timeout_ms) != 1) return false;
  std::uint64_t n;
  return ::read(fd, &n, sizeof(n)) == sizeof(n);
}

bool run_edu(Device& d) {
  auto bar = d.map_bar(0);
  if (!bar) return fail(bar.error());
  const Mmio m{bar->base};
  const std::uint32_t id = m.r32(kId);
  if ((id & 0xff) != 0xed) return fail("BAR0 identification register reads " + std::to_string(id) + ", not edu's");
  m.w32(kLive, 0x12345678);
  if (m.r32(kLive) != ~0x12345678u) return fail("liveness register did not invert the value written");
  std::printf("vfio-check: edu %u.%u, MMIO read and write ok\n", id >> 24, (id >> 16) & 0xff);
  if (auto r = d.enable_bus_master(); !r) return fail(r.error());
  auto irqs = d.enable_msi(1);
  if (!irqs) return fail(irqs.error());
  const int efd = (*irqs)[0].get();
  constexpr int kRounds = 2000;
  const auto t0 = Clock::now();
  for (int i = 0; i < kRounds; ++i) {
    m.w32(kIrqRaise, 1);
    if (!wait_irq(efd, 2000)) return fail(std::string(d.irq_kind()) + " interrupt did not arrive (round " + std::to_string(i) + ")");
    m.w32(kIrqAck, m.r32(kIrqStatus));
  }
  const double us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / kRounds;
  std::printf("vfio-check: %s: %d interrupt round trips, %.1f us each\n", d.irq_kind(), kRounds, us);

  const long page = ::sysconf(_SC_PAGESIZE);
  const std::size_t len = static_cast<std::size_t>(page) * 2;
  void* mem = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (mem == MAP_FAILED) return fail("mmap for the DMA buffer");
  auto* buf = static_cast<std::byte*>(mem);
  if (auto r = d.map_dma({buf, len}, kIova); !r) return fail(r.error());
  std::mt19937 rng(7);
  for (std::size_t i = 0; i < kDmaBytes; ++i) buf[i] = static_cast<std::byte>(rng());
  std::memset(buf + page, 0, kDmaBytes);
  auto dma = [&](std::uint64_t src, std::uint64_t dst, std::uint32_t dir) {
    m.w64(kDmaSrc, src);
    m.w64(kDmaDst, dst);
    m.w64(kDmaCount, kDmaBytes);
    m.w64(kDmaCmd, kDmaStart | dir | kDmaIrq);
    const bool ok = wait_irq(efd, 5000);
    m.w32(kIrqAck, kDmaIrqBit);
    return ok;
  };
  if (!dma(kIova, kEduBuffer, 0)) return fail("DMA RAM -> edu: no completion interrupt");
  if (!dma(kEduBuffer, kIova + static_cast<std::uint64_t>(page), kDmaToRam)) return fail("DMA edu -> RAM: no completion interrupt");
  if (std::memcmp(buf, buf + page, kDmaBytes) != 0) return fail("DMA round trip through the IOMMU changed the bytes");
  std::printf("vfio-check: DMA %zu bytes to the device and back through IOVA 0x%llx: identical\n", kDmaBytes,
              static_cast<unsigned long long>(kIova));
  d.unmap_dma(kIova, len);
  ::munmap(mem, len);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App cli{"vepf-vfio-check: find a PCI function, check that VFIO can take it, list its BARs; with --edu, "
               "exercise MMIO, MSI and DMA against QEMU's edu device",
               "vepf-vfio-check"};
  std::string ids, bdf;
  bool edu = false;
  auto* o1 = cli.add_option("--device", ids, "Vendor:device IDs in hex, e.g. 1234:11e8");
  auto* o2 = cli.add_option("--bdf", bdf, "PCI address, e.g. 0000:00:05.0");
  o1->excludes(o2);
  cli.add_flag("--edu", edu, "The function is QEMU's edu device: run its MMIO, MSI and DMA checks");
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = cli.exit(e);
    return rc == 0 ? 0 : 2;
  }
  PciMatch match;
  if (!bdf.empty()) {
    match.address = PciAddress::parse(bdf);
    if (!match.address) {
      std::fprintf(stderr, "vepf-vfio-check: --bdf %s is not a PCI address: write DDDD:BB:DD.F, e.g. 0000:00:05.0\n", bdf.c_str());
      return 2;
    }
  } else {
    auto m = PciMatch::parse(ids);
    if (!m || m->address) {
      std::fprintf(stderr, "vepf-vfio-check: --device '%s' is not VVVV:DDDD in hex: write e.g. --device 1234:11e8 (or use --bdf)\n",
                   ids.c_str());
      return 2;
    }
    match = *m;
  }
  auto addr = find_function(match);
  if (!addr) {
    std::fprintf(stderr, "vepf-vfio-check: %s\n", addr.error().c_str());
    return 1;
  }
  auto target = check_vfio_ready(*addr);
  if (!target) {
    std::fprintf(stderr, "vepf-vfio-check: %s\n", target.error().c_str());
    return 1;
  }
  auto dev = Device::open(*target);
  if (!dev) {
    std::fprintf(stderr, "vepf-vfio-check: %s\n", dev.error().c_str());
    return 1;
  }
  std::printf("vfio-check: %s in IOMMU group %d, held through VFIO\n", addr->str().c_str(), target->group);
  for (unsigned i = 0; i < 6; ++i) {
    if (const auto n = (*dev)->bar_size(i)) std::printf("vfio-check: BAR%u %llu bytes\n", i, static_cast<unsigned long long>(n));
  }
  if (edu && !run_edu(**dev)) return 1;
  std::printf("vfio-check: passed\n");
  return 0;
}
