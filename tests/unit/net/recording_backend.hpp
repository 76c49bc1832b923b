#pragma once
// A frame backend for the net device and driver tests: a TAP as far as they can tell (it
// carries offloads), keeping every frame sent to it, handing out the frames a test queues for
// it to receive, and counting its reads.

#include <algorithm>
#include <cstring>
#include <deque>
#include <span>
#include <string>
#include <vector>

#include "vepf/netback/frame_backend.hpp"

namespace vepf::test {

class RecordingBackend final : public netback::FrameBackend {
 public:
  Result<void> start(os::EventLoop&, Callbacks cb) override {
    callbacks = std::move(cb);
    return {};
  }
  Result<std::size_t> recv(std::span<std::byte> out) override {
    ++reads;
    if (incoming.empty()) return fail(Errc::kNoSpace, "nothing waiting");
    const std::size_t n = std::min(out.size(), incoming.front().size());
    std::memcpy(out.data(), incoming.front().data(), n);
    incoming.pop_front();
    return n;
  }
  bool vectored() const override { return vector_io; }
  Result<std::size_t> recvv(std::span<const iovec> iov) override {
    ++vectored_reads;
    if (!vector_io) return fail(Errc::kInvalidArgument, "not vectored");
    ++reads;
    if (incoming.empty()) return fail(Errc::kNoSpace, "nothing waiting");
    const auto& f = incoming.front();
    std::size_t n = 0;
    for (const iovec& v : iov) {
      const std::size_t k = std::min(v.iov_len, f.size() - n);
      std::memcpy(v.iov_base, f.data() + n, k);
      n += k;
    }
    incoming.pop_front();
    return n;
  }
  Result<void> send(std::span<const std::byte> f) override {
    sent.emplace_back(f.begin(), f.end());
    return {};
  }
  void set_rx_paused(bool) override {}
  void set_tx_wait(bool) override {}
  void set_link(bool) override {}
  bool carries_offloads() const override { return true; }
  const std::string& name() const override { return name_; }

  std::vector<std::vector<std::byte>> sent;     // header + frame, in order
  std::deque<std::vector<std::byte>> incoming;  // header + frame, for recv() to hand out
  int reads = 0;                                // recv() and recvv() calls, frames or not
  bool vector_io = false;                       // vectored(): recvv() takes frames
  int vectored_reads = 0;                       // recvv() calls
  Callbacks callbacks;                          // what start() was given

 private:
  std::string name_ = "recording";
};

}  // namespace vepf::test
