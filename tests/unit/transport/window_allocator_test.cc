#include "vepf/transport/window_allocator.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace vepf::transport {
namespace {

using layout::WindowId;

TEST(WindowAllocator, AllocatesAlignedRangesInsideItsSpace) {
  WindowAllocator a(WindowId::kEp, 0x1000, 0x3000);
  auto x = a.alloc(100, 64);
  auto y = a.alloc(100, 64);
  ASSERT_TRUE(x && y);
  EXPECT_EQ(x->off, 0x1000u);
  EXPECT_EQ(y->off % 64, 0u);
  EXPECT_GE(y->off, x->off + 100);
  EXPECT_EQ(layout::link_addr_window(x->link_addr), static_cast<std::uint8_t>(WindowId::kEp));
  EXPECT_EQ(layout::link_addr_offset(y->link_addr), y->off);
  EXPECT_EQ(a.used(), 200u);
}

TEST(WindowAllocator, ExhaustionIsNoSpace) {
  WindowAllocator a(WindowId::kRc, 0, 256);
  ASSERT_TRUE(a.alloc(256, 1));
  auto r = a.alloc(1, 1);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kNoSpace);
  EXPECT_EQ(a.alloc(0, 1).error().code, Errc::kInvalidArgument);
  EXPECT_EQ(a.alloc(8, 3).error().code, Errc::kInvalidArgument);
}

// Devices come and go while the link is up: freed space is reused, neighbours merge back into
// one range, and a freed hole fits an allocation of its size.
TEST(WindowAllocator, FreeMergesNeighboursAndSpaceIsReused) {
  WindowAllocator a(WindowId::kEp, 0, 4096);
  std::vector<Allocation> v;
  for (int i = 0; i < 4; ++i) v.push_back(*a.alloc(1024, 1024));
  EXPECT_FALSE(a.alloc(1, 1));
  a.free(v[1]);
  auto again = a.alloc(1024, 1024);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->off, 1024u);
  a.free(*again);
  a.free(v[0]);
  a.free(v[3]);
  a.free(v[2]);
  ASSERT_EQ(a.free_ranges().size(), 1u);
  EXPECT_EQ(a.free_ranges().begin()->first, 0u);
  EXPECT_EQ(a.free_ranges().begin()->second, 4096u);
  EXPECT_EQ(a.used(), 0u);
}

TEST(WindowAllocator, FreeIgnoresAnotherWindowsAllocation) {
  WindowAllocator ep(WindowId::kEp, 0, 4096), rc(WindowId::kRc, 0, 4096);
  auto x = rc.alloc(64, 64);
  ASSERT_TRUE(x);
  ep.free(*x);
  EXPECT_EQ(ep.used(), 0u);
  EXPECT_EQ(ep.free_ranges().size(), 1u);
  EXPECT_EQ(rc.used(), 64u);
}

}  // namespace
}  // namespace vepf::transport
