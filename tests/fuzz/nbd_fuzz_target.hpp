#pragma once
// The in-memory export of the NBD fuzz targets (nbd_session_fuzz, nbd_server_fuzz): 64 KiB,
// every feature on, calls completed inline or later (newest first), and every call checked:
// inside the export, at most max_block long where the protocol bounds it, no write to a
// read-only export (FUZZ_EXPECT names: target-range, target-max-block, target-read-only).
// Every other WRITE is lent a buffer of the target's own (BlockTarget::lend_write_buffer()), from
// kLendSlots: write() must get exactly a lent buffer that is still out when the write runs
// (lent-span, lent-alive), and every buffer must be back once the session and its requests are
// gone (lent-given-back).

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <span>
#include <utility>
#include <vector>

#include "fuzz_support.hpp"
#include "nbd/nbd_session.hpp"

namespace vepf::fuzz {

using host::nbd::BlockTarget;
using host::nbd::ExportInfo;

inline constexpr std::uint64_t kSize = 64u << 10;      // bytes of the export
inline constexpr std::uint32_t kMaxBlock = 16u << 10;  // bytes, the export's max_block
inline constexpr std::size_t kLendSlots = 4;           // buffers lent at once, kMaxBlock each

class FuzzTarget final : public BlockTarget {
 public:
  FuzzTarget(bool deferred, bool read_only)
      : deferred_(deferred), data_(kSize), pool_(kLendSlots * kMaxBlock) {
    info_.size = kSize;
    info_.read_only = read_only;
    info_.can_flush = info_.can_fua = info_.can_trim = info_.can_write_zeroes =
        info_.can_multi_conn = true;
    info_.max_block = kMaxBlock;
    info_.description = "fuzz";
  }

  ExportInfo info() const override { return info_; }
  void read(std::uint64_t offset, std::span<std::byte> dst, Done done) override {
    check(offset, dst.size(), true, false);
    submit([this, offset, dst] { std::memcpy(dst.data(), data_.data() + offset, dst.size()); },
           std::move(done));
  }
  void write(std::uint64_t offset, std::span<const std::byte> src, bool, Done done) override {
    check(offset, src.size(), true, true);
    const int slot = slot_of(src);
    if (slot >= 0) FUZZ_EXPECT("lent-span", lent_[slot] == src.size());
    submit(
        [this, offset, src, slot] {
          if (slot >= 0) FUZZ_EXPECT("lent-alive", lent_[slot] == src.size());
          std::memcpy(data_.data() + offset, src.data(), src.size());
        },
        std::move(done));
  }
  host::nbd::LentBuffer lend_write_buffer(std::size_t length) override {
    FUZZ_EXPECT("target-max-block", length >= 1 && length <= kMaxBlock);
    if (++asked_ % 2 == 0) return {};
    for (std::size_t i = 0; i < kLendSlots; ++i) {
      if (lent_[i] != 0) continue;
      lent_[i] = length;
      return {std::span<std::byte>(pool_).subspan(i * kMaxBlock, length), [this, i] {
                FUZZ_EXPECT("lent-given-back", lent_[i] != 0);
                lent_[i] = 0;
              }};
    }
    return {};
  }
  /// True when no lent buffer is out.
  bool all_given_back() const {
    for (std::size_t n : lent_) {
      if (n != 0) return false;
    }
    return true;
  }
  void flush(Done done) override {
    submit([] {}, std::move(done));
  }
  void trim(std::uint64_t offset, std::uint32_t length, Done done) override {
    check(offset, length, false, true);
    submit([this, offset, length] { std::memset(data_.data() + offset, 0, length); },
           std::move(done));
  }
  void write_zeroes(std::uint64_t offset, std::uint32_t length, bool, Done done) override {
    check(offset, length, true, true);
    submit([this, offset, length] { std::memset(data_.data() + offset, 0, length); },
           std::move(done));
  }

  /// Completes every other pending call (or all), newest first. Returns how many.
  std::size_t complete(bool all) {
    std::size_t n = 0;
    auto batch = std::exchange(pending_, {});
    for (std::size_t i = batch.size(); i-- > 0;) {
      if (all || i % 2 == 0) {
        batch[i].work();
        batch[i].done(0);
        ++n;
      } else {
        pending_.push_back(std::move(batch[i]));
      }
    }
    return n;
  }
  bool idle() const { return pending_.empty(); }

 private:
  struct Pending {
    std::function<void()> work;
    Done done;
  };
  void check(std::uint64_t offset, std::uint64_t len, bool bounded, bool writes) const {
    FUZZ_EXPECT("target-range", offset <= kSize && len <= kSize - offset);
    FUZZ_EXPECT("target-max-block", !bounded || len <= kMaxBlock);
    FUZZ_EXPECT("target-read-only", !writes || !info_.read_only);
  }
  void submit(std::function<void()> work, Done done) {
    if (!deferred_) {
      work();
      done(0);
      return;
    }
    pending_.push_back({std::move(work), std::move(done)});
  }

  /// The lent slot `src` starts, or -1 when it is not in the pool; data in the pool that does
  /// not start a slot is a violation.
  int slot_of(std::span<const std::byte> src) const {
    if (src.empty() || src.data() < pool_.data() || src.data() >= pool_.data() + pool_.size())
      return -1;
    const auto off = static_cast<std::size_t>(src.data() - pool_.data());
    FUZZ_EXPECT("lent-span", off % kMaxBlock == 0);
    return static_cast<int>(off / kMaxBlock);
  }

  bool deferred_;
  ExportInfo info_;
  std::vector<std::byte> data_;
  std::vector<std::byte> pool_;
  std::size_t lent_[kLendSlots] = {};  // bytes lent from each slot; 0: the slot is free
  std::uint64_t asked_ = 0;
  std::vector<Pending> pending_;
};

}  // namespace vepf::fuzz
