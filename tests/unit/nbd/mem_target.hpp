#pragma once
// An in-memory BlockTarget for the NBD tests. Inline mode completes every call before returning;
// deferred mode queues the work (the data is copied only at completion, so the session's buffers
// must still be alive then) and complete_all() runs it, newest first (out of order).
//
// Thread use: calls come from the event loop's thread; the counters are atomics so that a test
// thread may read them while the loop runs. data() only when the loop is not running (or from
// the loop's thread). With `lend` set it lends write buffers (BlockTarget::lend_write_buffer()) and
// counts the writes whose data lay in one.

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <span>
#include <utility>
#include <vector>

#include "nbd/nbd_session.hpp"

namespace vepf::host::nbd::test {

class MemTarget final : public BlockTarget {
 public:
  enum class Mode { kInline, kDeferred };

  MemTarget(ExportInfo info, Mode mode) : info_(std::move(info)), mode_(mode), data_(info_.size) {}

  ExportInfo info() const override { return info_; }

  void read(std::uint64_t offset, std::span<std::byte> dst, Done done) override {
    ++reads;
    submit(
        [this, offset, dst] {
          if (!in_range(offset, dst.size())) return EIO;
          std::memcpy(dst.data(), data_.data() + offset, dst.size());
          return 0;
        },
        std::move(done));
  }
  void write(std::uint64_t offset, std::span<const std::byte> src, bool fua, Done done) override {
    ++writes;
    if (!src.empty() && src.data() >= lend_pool_.data() &&
        src.data() + src.size() <= lend_pool_.data() + lend_pool_.size())
      ++writes_from_lent;
    if (fua) ++fua_writes;
    if (info_.read_only) ++violations;
    submit(
        [this, offset, src] {
          if (!in_range(offset, src.size())) return EIO;
          std::memcpy(data_.data() + offset, src.data(), src.size());
          return 0;
        },
        std::move(done));
  }
  /// Lends `length` bytes of a pool of its own while lend_size is 0 or equals `length` (a
  /// wrong-sized buffer when lend_size is something else), one buffer at a time.
  LentBuffer lend_write_buffer(std::size_t length) override {
    if (!lend || lent_out != 0) return {};
    const std::size_t n = lend_size != 0 ? lend_size : length;
    lend_pool_.assign(n, std::byte{0});
    ++lent;
    ++lent_out;
    return {std::span<std::byte>(lend_pool_), [this] {
              --lent_out;
              ++given_back;
            }};
  }
  void flush(Done done) override {
    ++flushes;
    submit([] { return 0; }, std::move(done));
  }
  void trim(std::uint64_t offset, std::uint32_t length, Done done) override {
    ++trims;
    submit([this, offset, length] { return zero(offset, length); }, std::move(done));
  }
  void write_zeroes(std::uint64_t offset, std::uint32_t length, bool may_trim, Done done) override {
    ++zeroes;
    if (!may_trim) ++zeroes_no_hole;
    submit([this, offset, length] { return zero(offset, length); }, std::move(done));
  }

  /// Deferred mode: runs every queued call, newest first. Returns how many ran.
  std::size_t complete_all() {
    std::size_t n = 0;
    while (!pending_.empty()) {  // completions may queue more (a flush after FUA trim)
      auto batch = std::exchange(pending_, {});
      for (auto it = batch.rbegin(); it != batch.rend(); ++it, ++n) {
        const int err = fail_errno.exchange(0);
        const int r = it->work();
        it->done(err != 0 ? err : r);
      }
    }
    return n;
  }
  /// Destroys queued callbacks without calling them (a target being torn down).
  void drop_pending() { pending_.clear(); }
  std::size_t pending() const { return pending_.size(); }
  std::vector<std::byte>& data() { return data_; }

  std::atomic<int> reads{0}, writes{0}, fua_writes{0}, flushes{0}, trims{0}, zeroes{0},
      zeroes_no_hole{0};
  bool lend = false;          // lend_write_buffer() lends (one buffer at a time)
  std::size_t lend_size = 0;  // 0: as asked; else the size it lends (a wrong one)
  int lent = 0, lent_out = 0, given_back = 0;
  std::atomic<int> writes_from_lent{0};  // write() calls whose data lay in the lent buffer
  std::atomic<int> violations{0};        // calls the session must never make
  std::atomic<int> fail_errno{0};        // next completion fails with this errno (then reset)

 private:
  struct Pending {
    std::function<int()> work;
    Done done;
  };

  bool in_range(std::uint64_t offset, std::uint64_t len) {
    if (offset > data_.size() || len > data_.size() - offset) {
      ++violations;
      return false;
    }
    return true;
  }
  int zero(std::uint64_t offset, std::uint32_t length) {
    if (info_.read_only) ++violations;
    if (!in_range(offset, length)) return EIO;
    std::fill_n(data_.begin() + static_cast<std::ptrdiff_t>(offset), length, std::byte{0});
    return 0;
  }
  void submit(std::function<int()> work, Done done) {
    if (mode_ == Mode::kInline) {
      const int err = fail_errno.exchange(0);
      const int r = work();
      done(err != 0 ? err : r);
      return;
    }
    pending_.push_back({std::move(work), std::move(done)});
  }

  ExportInfo info_;
  Mode mode_;
  std::vector<std::byte> data_;
  std::vector<Pending> pending_;
  std::vector<std::byte> lend_pool_;
};

}  // namespace vepf::host::nbd::test
