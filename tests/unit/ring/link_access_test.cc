// The link accessor on each memory type (LAYOUT.md §7): copies that device memory accepts
// (hw::io_step, copy_to_io, copy_from_io), narrow fields on windows that take 32-bit accesses
// only, the strict link model failing a test on what real device memory would fault on, and a
// whole ring exchange over device-memory windows.

#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "support/link_windows.hpp"
#include "support/ring_pair.hpp"
#include "vepf/hw/io_copy.hpp"
#include "vepf/ring/access.hpp"
#include "vepf/ring/vringh.hpp"

namespace vepf::test {
namespace {

using hw::AccessWidths;
using ring::MemoryAccess;
using ring::MemoryType;

AccessWidths widths(std::initializer_list<std::size_t> ws) {
  std::uint8_t bits = 0;
  for (std::size_t w : ws) bits = static_cast<std::uint8_t>(bits | AccessWidths::bit(w));
  return AccessWidths::from_bits(bits);
}

std::string name(AccessWidths w) {
  std::string s;
  for (std::size_t k = 1; k <= 8; k <<= 1) {
    if (w.allows(k)) s += (s.empty() ? "" : ",") + std::to_string(k);
  }
  return "{" + s + "}";
}

// Every width set the copies must handle, including ones no config would name ({1}, {8}).
const std::vector<AccessWidths> kWidthSets = {AccessWidths{}, widths({4}),    widths({2, 4}),
                                              widths({4, 8}), widths({1, 4}), widths({1}),
                                              widths({8}),    widths({2})};

// ---- the plan of a copy

TEST(IoStep, EveryAccessIsAlignedAllowedAndTheyCoverTheCopyInOrder) {
  for (const AccessWidths w : kWidthSets) {
    for (std::uintptr_t addr = 0x1000; addr < 0x1010; ++addr) {
      for (std::size_t n = 1; n <= 40; ++n) {
        std::uintptr_t at = addr;
        std::size_t left = n;
        while (left > 0) {
          const hw::IoStep s = hw::io_step(at, left, w);
          SCOPED_TRACE(name(w) + " addr " + std::to_string(addr) + " n " + std::to_string(n));
          ASSERT_TRUE(w.allows(s.width)) << s.width;
          ASSERT_EQ((at - s.skip) % s.width, 0u) << "access not naturally aligned";
          ASSERT_LT(s.skip, s.width);
          ASSERT_GE(s.bytes, 1u);
          ASSERT_LE(s.skip + s.bytes, s.width);
          ASSERT_LE(s.bytes, left);
          // A window that takes bytes never needs a container wider than the copy.
          if (w.allows(1)) {
            EXPECT_TRUE(s.skip == 0 && s.bytes == s.width);
          }
          at += s.bytes;
          left -= s.bytes;
        }
      }
    }
  }
}

TEST(IoStep, AlignedBulkUsesTheWidestWidth) {
  const hw::IoStep s = hw::io_step(0x1000, 64, AccessWidths{});
  EXPECT_EQ(s.width, 8u);
  const hw::IoStep t = hw::io_step(0x1004, 64, widths({4}));
  EXPECT_EQ(t.width, 4u);
  EXPECT_EQ(t.bytes, 4u);
}

// ---- the copies themselves: byte-exact, nothing around them changed

constexpr std::byte kAround{0xEE};

TEST(IoCopy, ToIoWritesExactlyTheCopyAtEveryOffsetAndLength) {
  for (const AccessWidths w : kWidthSets) {
    for (std::size_t off = 0; off < 16; ++off) {
      for (std::size_t n = 0; n <= 40; ++n) {
        AlignedBytes dst(64, kAround);
        std::vector<std::byte> src(n);
        for (std::size_t i = 0; i < n; ++i) src[i] = std::byte(i + 1);
        hw::copy_to_io(dst.data() + off, src.data(), n, w);
        for (std::size_t i = 0; i < dst.size(); ++i) {
          const std::byte want = i >= off && i < off + n ? src[i - off] : kAround;
          ASSERT_EQ(dst[i], want) << name(w) << " off " << off << " n " << n << " byte " << i;
        }
      }
    }
  }
}

TEST(IoCopy, FromIoReadsExactlyTheCopyAtEveryOffsetAndLength) {
  AlignedBytes src(64);
  for (std::size_t i = 0; i < src.size(); ++i) src[i] = std::byte(0x40 + i);
  for (const AccessWidths w : kWidthSets) {
    for (std::size_t off = 0; off < 16; ++off) {
      for (std::size_t n = 0; n <= 40; ++n) {
        std::vector<std::byte> dst(n + 2, kAround);
        hw::copy_from_io(dst.data() + 1, src.data() + off, n, w);
        ASSERT_EQ(dst.front(), kAround);
        ASSERT_EQ(dst.back(), kAround);
        ASSERT_TRUE(std::equal(dst.begin() + 1, dst.end() - 1,
                               src.begin() + static_cast<std::ptrdiff_t>(off)))
            << name(w) << " off " << off << " n " << n;
      }
    }
  }
}

// ---- the Window on device memory

TEST(DeviceWindow, BulkCopiesAtOddOffsetsMatchTheMemory) {
  GuardedBuffer mem(4096);
  ring::Window win(layout::WindowId::kEp, mem.bytes(), nullptr, {MemoryType::kDevice, widths({4})});
  std::vector<std::byte> data(1499);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = std::byte(i + 3);
  win.write(13, data);
  EXPECT_TRUE(std::equal(data.begin(), data.end(), mem.bytes().begin() + 13));
  EXPECT_EQ(mem.bytes()[12], std::byte{0});
  EXPECT_EQ(mem.bytes()[13 + data.size()], std::byte{0});
  std::vector<std::byte> back(data.size());
  win.read(13, back);
  EXPECT_EQ(back, data);
  EXPECT_TRUE(mem.guards_intact());
}

TEST(DeviceWindow, A16BitFieldOnA32BitOnlyWindowIsAReadModifyWriteOfItsWord) {
  GuardedBuffer mem(4096);
  ring::LinkCounters c;
  ring::Window win(layout::WindowId::kEp, mem.bytes(), &c, {MemoryType::kDevice, widths({4})});
  poke<std::uint16_t>(mem.bytes(), 0x10, 0x1234);  // the other half of the word
  win.store<std::uint16_t>(0x12, 0xBEEF);
  EXPECT_EQ(peek<std::uint16_t>(mem.bytes(), 0x10), 0x1234);
  EXPECT_EQ(peek<std::uint16_t>(mem.bytes(), 0x12), 0xBEEF);
  // The word was read back across the link: an honest link model counts it.
  EXPECT_EQ(c.nonposted_reads, 1u);
  EXPECT_EQ(c.posted_writes, 1u);
  EXPECT_EQ(win.load<std::uint16_t>(0x12), 0xBEEF);
  EXPECT_EQ(win.load_acquire<std::uint16_t>(0x10), 0x1234);
}

TEST(DeviceWindow, ANarrowFieldOnAWindowThatTakesItIsOneAccess) {
  GuardedBuffer mem(4096);
  ring::LinkCounters c;
  ring::Window win(layout::WindowId::kRc, mem.bytes(), &c, {MemoryType::kDevice, AccessWidths{}});
  win.store_release<std::uint16_t>(0x22, 7);
  EXPECT_EQ(c.nonposted_reads, 0u);
  EXPECT_EQ(c.posted_writes, 1u);
  EXPECT_EQ(peek<std::uint16_t>(mem.bytes(), 0x22), 7);
}

TEST(DeviceWindow, OnlyCachedTypesAreViewable) {
  GuardedBuffer mem(4096);
  EXPECT_TRUE(ring::Window(layout::WindowId::kRc, mem.bytes(), nullptr, {MemoryType::kCached, {}})
                  .viewable());
  EXPECT_TRUE(ring::Window(layout::WindowId::kRc, mem.bytes(), nullptr,
                           {MemoryType::kCachedNoncoherent, {}})
                  .viewable());
  EXPECT_FALSE(ring::Window(layout::WindowId::kRc, mem.bytes(), nullptr, {MemoryType::kDevice, {}})
                   .viewable());
  EXPECT_FALSE(
      ring::Window(layout::WindowId::kRc, mem.bytes(), nullptr, {MemoryType::kWriteCombining, {}})
          .viewable());
}

// ---- the strict link model (on in every test: support/strict_link.cc)

// EXPECT_NONFATAL_FAILURE takes no local variables: each case builds its own window.
GuardedBuffer& scratch() {
  static GuardedBuffer mem(4096);
  return mem;
}
ring::Window device_window(AccessWidths w = {}) {
  return ring::Window(layout::WindowId::kEp, scratch().bytes(), nullptr, {MemoryType::kDevice, w});
}

void unaligned_load() { (void)device_window().load<std::uint32_t>(3); }
void unaligned_store() { device_window().store<std::uint16_t>(0x101, 0xffff); }
void unaligned_load_on_cached_memory() {
  (void)ring::Window(layout::WindowId::kEp, scratch().bytes(), nullptr).load<std::uint64_t>(4);
}
void wide_load_on_a_32_bit_window() { (void)device_window(widths({4})).load<std::uint64_t>(8); }
void view_of_device_memory() { (void)device_window().local_view(0, 64); }
void read_past_the_end() {
  std::byte b[8];
  device_window().read(4096 - 4, b);
}

TEST(StrictLinkModel, AnUnalignedLoadFailsTheTest) {
  EXPECT_NONFATAL_FAILURE(unaligned_load(), "unaligned access");
}

TEST(StrictLinkModel, AnUnalignedStoreFailsTheTestAndWritesNothing) {
  std::fill(scratch().bytes().begin(), scratch().bytes().end(), std::byte{0});
  EXPECT_NONFATAL_FAILURE(unaligned_store(),
                          "2 bytes at offset 257 of the EP window (memory type device)");
  EXPECT_EQ(peek<std::uint32_t>(scratch().bytes(), 0x100), 0u);
  EXPECT_EQ(peek<std::uint32_t>(scratch().bytes(), 0x104), 0u);
}

TEST(StrictLinkModel, UnalignedIsAFailureOnCachedMemoryToo) {
  EXPECT_NONFATAL_FAILURE(unaligned_load_on_cached_memory(), "memory type cached");
}

TEST(StrictLinkModel, AnAccessWiderThanTheWindowTakesFailsTheTest) {
  EXPECT_NONFATAL_FAILURE(wide_load_on_a_32_bit_window(), "wider than the window takes");
}

TEST(StrictLinkModel, HandingOutDeviceMemoryFailsTheTest) {
  EXPECT_NONFATAL_FAILURE(view_of_device_memory(), "memcpy faults on device memory");
}

TEST(StrictLinkModel, ACopyPastTheWindowFailsTheTest) {
  EXPECT_NONFATAL_FAILURE(read_past_the_end(), "outside the window");
}

TEST(StrictLinkModel, AlignedAccessesOfEveryKindPass) {
  ring::Window win = device_window(widths({4}));
  win.store<std::uint32_t>(0, 1);
  win.store_release<std::uint16_t>(6, 2);
  (void)win.load_acquire<std::uint16_t>(2);
  std::byte b[7] = {};
  win.write(9, b);
  win.read(1, b);
}

// ---- a ring exchange over windows of every memory type

class RingOverMemoryType : public ::testing::TestWithParam<MemoryAccess> {};

TEST_P(RingOverMemoryType, OddLengthsAtOddOffsetsComeBackIntact) {
  LinkWindows w(kDefaultWindowSize, kDefaultWindowSize, GetParam());
  RingPair r(w, traffic_ring());
  for (std::uint32_t i = 0; i < 64; ++i) {
    const std::size_t len = 1 + (i * 37) % 203;
    const std::size_t out_off = r.ep_data_off + 1 + (i % 7);  // odd and unaligned on purpose
    const std::size_t in_off = r.rc_data_off + 3 + (i % 5);
    std::vector<std::byte> msg(len);
    for (std::size_t k = 0; k < len; ++k) msg[k] = std::byte(i + k);
    w.drv_ep.write(out_off, msg);
    const ring::Buf ob{ep_addr(out_off), static_cast<std::uint32_t>(len)};
    const ring::Buf ib{rc_addr(in_off), static_cast<std::uint32_t>(len)};
    ASSERT_TRUE(r.drv().add({&ob, 1}, {&ib, 1}, i));
    (void)r.drv().kick_prepare();

    auto c = r.dev().pop();
    ASSERT_TRUE(c && *c);
    std::vector<std::byte> got(len);
    ASSERT_EQ(ring::chain_read(**c, got), len);
    std::reverse(got.begin(), got.end());
    ASSERT_EQ(ring::chain_write(**c, got), len);
    ASSERT_TRUE(r.dev().complete((*c)->head, static_cast<std::uint32_t>(len)));

    auto u = r.drv().get_used();
    ASSERT_TRUE(u && *u);
    EXPECT_EQ((*u)->token, i);
    std::vector<std::byte> back(len);
    w.drv_rc.read(in_off, back);
    std::reverse(back.begin(), back.end());
    EXPECT_EQ(back, msg) << "message " << i;
  }
  EXPECT_TRUE(w.guards_intact());
}

INSTANTIATE_TEST_SUITE_P(
    Types, RingOverMemoryType,
    ::testing::Values(MemoryAccess{MemoryType::kCached, {}}, MemoryAccess{MemoryType::kDevice, {}},
                      MemoryAccess{MemoryType::kDevice, AccessWidths::from_bits(4)},
                      MemoryAccess{MemoryType::kWriteCombining, {}},
                      MemoryAccess{MemoryType::kWriteCombining, AccessWidths::from_bits(4)},
                      MemoryAccess{MemoryType::kCachedNoncoherent, {}}),
    [](const ::testing::TestParamInfo<MemoryAccess>& p) {
      std::string n(ring::to_string(p.param.type));
      std::replace(n.begin(), n.end(), '-', '_');
      return n + (p.param.widths.all() ? "" : "_32bit_only");
    });

}  // namespace
}  // namespace vepf::test
