// ep::BlockFile: the EP's backing store of a virtio-blk device, on a temporary file.

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>
#include <vector>

#include "devices/blk/block_file.hpp"
#include "support/temp_dir.hpp"

namespace vepf::ep {
namespace {

class BlockFileTest : public ::testing::Test {
 protected:
  void SetUp() override { path_ = dir_ + "/disk.img"; }
  vepf::test::TempDir tmp_{"vepf-blockfile"};
  std::string dir_ = tmp_.path();
  std::string path_;
};

std::vector<std::byte> pattern(std::size_t n, unsigned seed) {
  std::vector<std::byte> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>((i * 31 + seed) & 0xff);
  return v;
}

TEST_F(BlockFileTest, MissingFileWithoutSizeIsAnError) {
  auto f = BlockFile::open(path_, 0, false);
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error().sys_errno, ENOENT);
}

TEST_F(BlockFileTest, CreatesASparseFileOfTheGivenSize) {
  auto f = BlockFile::open(path_, 1 << 20, false);
  ASSERT_TRUE(f) << f.error().what;
  EXPECT_EQ(f->size(), 1u << 20);
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 1 << 20);
  EXPECT_LT(st.st_blocks * 512, 1 << 20);  // sparse
}

TEST_F(BlockFileTest, CreatesMissingParentDirectories) {
  const std::string nested = dir_ + "/a/b/disk.img";
  auto f = BlockFile::open(nested, 4096, false);
  ASSERT_TRUE(f) << f.error().what;
  ::unlink(nested.c_str());
  ::rmdir((dir_ + "/a/b").c_str());
  ::rmdir((dir_ + "/a").c_str());
}

TEST_F(BlockFileTest, SizeIsRoundedDownToSectors) {
  { ASSERT_TRUE(BlockFile::open(path_, 4096, false)); }
  ASSERT_EQ(::truncate(path_.c_str(), 4096 + 100), 0);
  auto f = BlockFile::open(path_, 0, false);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->size(), 4096u);
}

TEST_F(BlockFileTest, WriteReadDiscardWriteZeroes) {
  auto f = BlockFile::open(path_, 1 << 20, false);
  ASSERT_TRUE(f);
  const auto data = pattern(64 << 10, 7);
  ASSERT_EQ(f->write(4096, data), 0);
  std::vector<std::byte> back(data.size());
  ASSERT_EQ(f->read(4096, back), 0);
  EXPECT_EQ(back, data);
  ASSERT_EQ(f->flush(), 0);

  ASSERT_EQ(f->write_zeroes(4096 + 512, 1024, false), 0);
  ASSERT_EQ(f->read(4096, back), 0);
  for (std::size_t i = 0; i < back.size(); ++i) {
    const bool zeroed = i >= 512 && i < 1536;
    ASSERT_EQ(back[i], zeroed ? std::byte{0} : data[i]) << "byte " << i;
  }
  ASSERT_EQ(f->write_zeroes(4096 + 8192, 4096, true), 0);
  const int d = f->discard(4096 + 16384, 4096);
  ASSERT_TRUE(d == 0 || d == EOPNOTSUPP);
  ASSERT_EQ(f->read(4096, back), 0);
  for (std::size_t i = 8192; i < 12288; ++i) ASSERT_EQ(back[i], std::byte{0}) << "byte " << i;
  if (d == 0) {
    for (std::size_t i = 16384; i < 20480; ++i) ASSERT_EQ(back[i], std::byte{0}) << "byte " << i;
  }
  EXPECT_EQ(back[20480], data[20480]);
}

TEST_F(BlockFileTest, ReadCachedGivesWhatThePageCacheHoldsOrEagain) {
  auto f = BlockFile::open(path_, 1 << 20, false);
  ASSERT_TRUE(f);
  const auto data = pattern(16 << 10, 3);
  ASSERT_EQ(f->write(8192, data), 0);  // just written: in the page cache
  std::vector<std::byte> back(data.size());
  const int r = f->read_cached(8192, back);
  ASSERT_TRUE(r == 0 || r == EAGAIN) << r;  // EAGAIN only where the file system cannot say
  if (r == 0) {
    EXPECT_EQ(back, data);
  }
  // Whatever it said, read() gives the same bytes: the caller's fallback.
  ASSERT_EQ(f->read(8192, back), 0);
  EXPECT_EQ(back, data);
  // Past the end: zeroes, as read() gives.
  std::vector<std::byte> tail(4096, std::byte{0x5a});
  const int t = f->read_cached(1 << 20, tail);
  ASSERT_TRUE(t == 0 || t == EAGAIN) << t;
  if (t == 0) {
    for (auto b : tail) ASSERT_EQ(b, std::byte{0});
  }
}

TEST_F(BlockFileTest, GatheredWriteLandsInOrder) {
  auto f = BlockFile::open(path_, 1 << 20, false);
  ASSERT_TRUE(f);
  auto data = pattern(12288, 9);
  // Three pieces of uneven sizes, as the segments of a descriptor chain.
  std::vector<iovec> iov{{data.data(), 512}, {data.data() + 512, 7680}, {data.data() + 8192, 4096}};
  ASSERT_EQ(f->write(65536, std::span<iovec>(iov)), 0);
  std::vector<std::byte> back(data.size());
  ASSERT_EQ(f->read(65536, back), 0);
  EXPECT_EQ(back, data);
  std::vector<iovec> none;
  EXPECT_EQ(f->write(0, std::span<iovec>(none)), 0);  // nothing to write: nothing written
}

TEST_F(BlockFileTest, ReadOnlyRefusesWrites) {
  { ASSERT_TRUE(BlockFile::open(path_, 4096, false)); }
  auto f = BlockFile::open(path_, 0, true);
  ASSERT_TRUE(f);
  const auto data = pattern(512, 1);
  EXPECT_EQ(f->write(0, data), EBADF);
}

TEST_F(BlockFileTest, ReadOnlyMayStartAsANewImage) {
  auto f = BlockFile::open(path_, 8192, true);
  ASSERT_TRUE(f) << f.error().what;
  EXPECT_EQ(f->size(), 8192u);
  std::vector<std::byte> back(512, std::byte{1});
  ASSERT_EQ(f->read(0, back), 0);
  EXPECT_EQ(back, std::vector<std::byte>(512));
}

TEST_F(BlockFileTest, RefusesADirectory) {
  auto f = BlockFile::open(dir_, 0, false);
  ASSERT_FALSE(f);
}

}  // namespace
}  // namespace vepf::ep
