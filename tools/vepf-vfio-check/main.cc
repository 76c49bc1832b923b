// vepf-vfio-check: the RC side's PCI/VFIO layer on its own.
//   vepf-vfio-check --device VVVV:DDDD | --bdf DDDD:BB:DD.F        find it, check it, list its BARs
//   ... --edu                                                      and run QEMU's edu device
//   ... --testdev                                                  or QEMU's pci-testdev
// The pci-testdev run (QEMU docs/specs/pci-testdev.rst) drives the tests of BAR0 (memory,
// through its mmap) and BAR1 (I/O space, through the VFIO region's pread/pwrite): each write of a
// test's data at its offset must raise that test's count by one. It lists BAR2 (membar=).
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
constexpr std::uint32_t kId = 0x00, kLive = 0x04, kIrqStatus = 0x24, kIrqRaise = 0x60,
                        kIrqAck = 0x64;
constexpr std::uint32_t kDmaSrc = 0x80, kDmaDst = 0x88, kDmaCount = 0x90, kDmaCmd = 0x98;
constexpr std::uint64_t kEduBuffer = 0x40000;
constexpr std::uint32_t kDmaStart = 1, kDmaToRam = 2, kDmaIrq = 4, kDmaIrqBit = 0x100;
constexpr std::uint64_t kIova = 0x100000;  // below the device's 28-bit DMA mask
constexpr std::size_t kDmaBytes = 4000;    // QEMU 7.2 aborts on a DMA ending at the buffer's end

struct Mmio {
  volatile std::byte* base;
  std::uint32_t r32(std::uint32_t off) const {
    return *reinterpret_cast<volatile std::uint32_t*>(base + off);
  }
  void w32(std::uint32_t off, std::uint32_t v) const {
    *reinterpret_cast<volatile std::uint32_t*>(base + off) = v;
  }
  void w64(std::uint32_t off, std::uint64_t v) const {
    *reinterpret_cast<volatile std::uint64_t*>(base + off) = v;
  }
};

bool fail(const std::string& what) {
  std::printf("vfio-check: FAIL: %s\n", what.c_str());
  return false;
}

// pci-testdev: the header at the start of BAR0 and BAR1 (little-endian): test (u8, write: select a
// test), width_type (u8: 1, 2 or 4; anything else: no such test), offset (u32: where the test's
// write goes), data (u32: what to write), count (u32: writes seen), name (NUL-terminated).
constexpr std::uint32_t kTdTest = 0, kTdWidth = 1, kTdOffset = 4, kTdData = 8, kTdCount = 12,
                        kTdName = 16;
constexpr unsigned kTdMaxTests = 64, kTdWrites = 3;

/// One BAR of pci-testdev, reached either through its mmap (memory BARs) or through the VFIO
/// region (I/O BARs). Accesses of 1, 2 or 4 bytes, little-endian values.
class TestdevBar {
 public:
  TestdevBar(Device& d, unsigned bar, volatile std::byte* mapped)
      : d_(d), bar_(bar), mapped_(mapped) {}
  bool read(std::uint32_t off, unsigned width, std::uint32_t& v) const {
    v = 0;
    if (mapped_ != nullptr) {
      if (width == 1) v = *reinterpret_cast<volatile std::uint8_t*>(mapped_ + off);
      if (width == 2) v = *reinterpret_cast<volatile std::uint16_t*>(mapped_ + off);
      if (width == 4) v = *reinterpret_cast<volatile std::uint32_t*>(mapped_ + off);
      return true;
    }
    std::byte b[4]{};
    auto r = d_.region_read(bar_, off, std::span<std::byte>(b, width));
    if (!r) return fail(r.error());
    for (unsigned i = 0; i < width; ++i) v |= static_cast<std::uint32_t>(b[i]) << (8 * i);
    return true;
  }
  bool write(std::uint32_t off, unsigned width, std::uint32_t v) const {
    if (mapped_ != nullptr) {
      if (width == 1)
        *reinterpret_cast<volatile std::uint8_t*>(mapped_ + off) = static_cast<std::uint8_t>(v);
      if (width == 2)
        *reinterpret_cast<volatile std::uint16_t*>(mapped_ + off) = static_cast<std::uint16_t>(v);
      if (width == 4) *reinterpret_cast<volatile std::uint32_t*>(mapped_ + off) = v;
      return true;
    }
    std::byte b[4];
    for (unsigned i = 0; i < 4; ++i) b[i] = static_cast<std::byte>(v >> (8 * i));
    auto w = d_.region_write(bar_, off, std::span<const std::byte>(b, width));
    return w ? true : fail(w.error());
  }

 private:
  Device& d_;
  unsigned bar_;
  volatile std::byte* mapped_;
};

/// Runs every test of one pci-testdev BAR; returns the number that passed, or -1 on failure.
int run_testdev_bar(Device& d, unsigned bar) {
  auto io = d.bar_is_io(bar);
  if (!io) return fail(io.error()), -1;
  volatile std::byte* mapped = nullptr;
  if (!*io) {
    auto m = d.map_bar(bar);
    if (!m) return fail(m.error()), -1;
    mapped = m->base;
  }
  const TestdevBar b(d, bar, mapped);
  const char* how = *io ? "I/O space, VFIO region pread/pwrite" : "memory, mmap";
  int passed = 0;
  for (unsigned t = 0; t < kTdMaxTests; ++t) {
    std::uint32_t width, offset, data, before, after;
    if (!b.write(kTdTest, 1, t) || !b.read(kTdWidth, 1, width)) return -1;
    if (width != 1 && width != 2 && width != 4) break;  // past the last test of this BAR
    if (!b.read(kTdOffset, 4, offset) || !b.read(kTdData, 4, data) || !b.read(kTdCount, 4, before))
      return -1;
    std::string name;
    for (std::uint32_t i = 0, c = 1; i < 48 && c != 0; ++i) {
      if (!b.read(kTdName + i, 1, c)) return -1;
      if (c != 0) name += static_cast<char>(c);
    }
    for (unsigned i = 0; i < kTdWrites; ++i) {
      if (!b.write(offset, width, data)) return -1;
    }
    if (!b.read(kTdCount, 4, after)) return -1;
    // The device counts every write, except where QEMU gave the test an eventfd: those writes end
    // in the eventfd (count unchanged). A "no-eventfd" test must count them all.
    const bool eventfd = name.find("no-eventfd") == std::string::npos;
    const bool counted = after == before + kTdWrites;
    if (!counted && !(eventfd && after == before)) {
      return fail("BAR" + std::to_string(bar) + " test " + std::to_string(t) + " (" + name +
                  "): count " + std::to_string(before) + " -> " + std::to_string(after) +
                  " after " + std::to_string(kTdWrites) + " writes"),
             -1;
    }
    std::printf("vfio-check: BAR%u (%s) test %u %s: %u %u-byte writes at 0x%x %s\n", bar, how, t,
                name.c_str(), kTdWrites, width, offset,
                counted ? "counted" : "taken by QEMU's eventfd");
    ++passed;
  }
  if (passed == 0) return fail("BAR" + std::to_string(bar) + " offers no pci-testdev test"), -1;
  return passed;
}

bool run_testdev(Device& d) {
  int total = 0;
  for (unsigned bar : {0u, 1u}) {
    const int n = run_testdev_bar(d, bar);
    if (n < 0) return false;
    total += n;
  }
  std::printf("vfio-check: pci-testdev: %d tests passed on BAR0 and BAR1\n", total);
  return true;
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
  if ((id & 0xff) != 0xed)
    return fail("BAR0 identification register reads " + std::to_string(id) + ", not edu's");
  m.w32(kLive, 0x12345678);
  if (m.r32(kLive) != ~0x12345678u)
    return fail("liveness register did not invert the value written");
  std::printf("vfio-check: edu %u.%u, MMIO read and write ok\n", id >> 24, (id >> 16) & 0xff);
  if (auto r = d.enable_bus_master(); !r) return fail(r.error());
  auto irqs = d.enable_msi(1);
  if (!irqs) return fail(irqs.error());
  const int efd = (*irqs)[0].get();
  constexpr int kRounds = 2000;
  const auto t0 = Clock::now();
  for (int i = 0; i < kRounds; ++i) {
    m.w32(kIrqRaise, 1);
    if (!wait_irq(efd, 2000))
      return fail(std::string(d.irq_kind()) + " interrupt did not arrive (round " +
                  std::to_string(i) + ")");
    m.w32(kIrqAck, m.r32(kIrqStatus));
  }
  const double us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / kRounds;
  std::printf("vfio-check: %s: %d interrupt round trips, %.1f us each\n", d.irq_kind(), kRounds,
              us);

  const long page = ::sysconf(_SC_PAGESIZE);
  const std::size_t len = static_cast<std::size_t>(page) * 2;
  void* mem = ::mmap(nullptr, len, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
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
  if (!dma(kEduBuffer, kIova + static_cast<std::uint64_t>(page), kDmaToRam))
    return fail("DMA edu -> RAM: no completion interrupt");
  if (std::memcmp(buf, buf + page, kDmaBytes) != 0)
    return fail("DMA round trip through the IOMMU changed the bytes");
  std::printf("vfio-check: DMA %zu bytes to the device and back through IOVA 0x%llx: identical\n",
              kDmaBytes, static_cast<unsigned long long>(kIova));
  d.unmap_dma(kIova, len);
  ::munmap(mem, len);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App cli{
      "vepf-vfio-check: find a PCI function, check that VFIO can take it, list its BARs; with "
      "--edu, "
      "exercise MMIO, MSI and DMA against QEMU's edu device; with --testdev, memory and I/O BAR "
      "accesses against QEMU's pci-testdev",
      "vepf-vfio-check"};
  std::string ids, bdf;
  bool edu = false, testdev = false;
  auto* o1 = cli.add_option("--device", ids, "Vendor:device IDs in hex, e.g. 1234:11e8");
  auto* o2 = cli.add_option("--bdf", bdf, "PCI address, e.g. 0000:00:05.0");
  o1->excludes(o2);
  auto* o3 = cli.add_flag("--edu", edu,
                          "The function is QEMU's edu device: run its MMIO, MSI and DMA checks");
  cli.add_flag("--testdev", testdev,
               "The function is QEMU's pci-testdev: run the tests of its memory and I/O BARs")
      ->excludes(o3);
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
      std::fprintf(
          stderr,
          "vepf-vfio-check: --bdf %s is not a PCI address: write DDDD:BB:DD.F, e.g. 0000:00:05.0\n",
          bdf.c_str());
      return 2;
    }
  } else {
    auto m = PciMatch::parse(ids);
    if (!m || m->address) {
      std::fprintf(stderr,
                   "vepf-vfio-check: --device '%s' is not VVVV:DDDD in hex: write e.g. --device "
                   "1234:11e8 (or use --bdf)\n",
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
  std::printf("vfio-check: %s in IOMMU group %d, held through VFIO\n", addr->str().c_str(),
              target->group);
  for (unsigned i = 0; i < 6; ++i) {
    if (const auto n = (*dev)->region_size(i)) {
      auto io = (*dev)->bar_is_io(i);
      std::printf("vfio-check: BAR%u %llu bytes%s\n", i, static_cast<unsigned long long>(n),
                  io && *io             ? " (I/O space)"
                  : (*dev)->bar_size(i) ? ""
                                        : " (not mappable)");
    }
  }
  if (edu && !run_edu(**dev)) return 1;
  if (testdev && !run_testdev(**dev)) return 1;
  std::printf("vfio-check: passed\n");
  return 0;
}
