#include "vepf/os/memfd.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace vepf::os {
namespace {

constexpr std::size_t kSize = 8192;

Fd dup_fd(int fd) { return Fd(::fcntl(fd, F_DUPFD_CLOEXEC, 0)); }

TEST(SharedMemory, CreateIsZeroFilledAndMapSharesTheBytes) {
  auto a = SharedMemory::create("vepf-test", kSize);
  ASSERT_TRUE(a) << a.error().what;
  ASSERT_EQ(a->size(), kSize);
  EXPECT_TRUE(std::all_of(a->bytes().begin(), a->bytes().end(),
                          [](std::byte b) { return b == std::byte{0}; }));
  auto b = SharedMemory::map(dup_fd(a->fd()), kSize);
  ASSERT_TRUE(b) << b.error().what;
  ASSERT_NE(a->bytes().data(), b->bytes().data());  // two mappings of one memfd

  const char msg[] = "through the first mapping";
  std::memcpy(a->bytes().data() + 100, msg, sizeof msg);
  EXPECT_EQ(std::memcmp(b->bytes().data() + 100, msg, sizeof msg), 0);
  b->bytes()[kSize - 1] = std::byte{0x5a};
  EXPECT_EQ(a->bytes()[kSize - 1], std::byte{0x5a});
}

TEST(SharedMemory, SizeMismatchIsRefused) {
  auto a = SharedMemory::create("vepf-test", kSize);
  ASSERT_TRUE(a);
  for (std::size_t wrong : {kSize / 2, kSize * 2, std::size_t{0}}) {
    auto b = SharedMemory::map(dup_fd(a->fd()), wrong);
    ASSERT_FALSE(b) << wrong;
    EXPECT_EQ(b.error().code, Errc::kOutOfRange);
  }
}

TEST(SharedMemory, UnsealedMemfdIsRefused) {
  // A peer that could shrink the file under our mapping could make us fault (SIGBUS).
  Fd raw(::memfd_create("vepf-unsealed", MFD_CLOEXEC));
  ASSERT_TRUE(raw.valid());
  ASSERT_EQ(::ftruncate(raw.get(), kSize), 0);
  auto b = SharedMemory::map(std::move(raw), kSize);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, Errc::kOutOfRange);
}

TEST(SharedMemory, SizeIsSealed) {
  auto a = SharedMemory::create("vepf-test", kSize);
  ASSERT_TRUE(a);
  EXPECT_NE(::ftruncate(a->fd(), kSize / 2), 0);
  EXPECT_NE(::ftruncate(a->fd(), kSize * 2), 0);
}

TEST(SharedMemory, ZeroSizeAndMissingFdAreRefused) {
  auto a = SharedMemory::create("vepf-test", 0);
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, Errc::kInvalidArgument);
  auto b = SharedMemory::map(Fd{}, kSize);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, Errc::kInvalidArgument);
}

TEST(SharedMemory, MoveKeepsTheMappingAndEmptiesTheSource) {
  auto a = SharedMemory::create("vepf-test", kSize);
  ASSERT_TRUE(a);
  std::byte* p = a->bytes().data();
  SharedMemory moved = std::move(*a);
  EXPECT_FALSE(a->valid());
  EXPECT_EQ(a->fd(), -1);
  EXPECT_EQ(moved.bytes().data(), p);
  moved.bytes()[0] = std::byte{1};
  moved = SharedMemory{};
  EXPECT_FALSE(moved.valid());
}

}  // namespace
}  // namespace vepf::os
