#pragma once
// A frame backend for the net device and driver tests: a TAP as far as they can tell (it
// carries offloads), keeping every frame sent to it, with nothing to receive.

#include <span>
#include <string>
#include <vector>

#include "vepf/netback/frame_backend.hpp"

namespace vepf::test {

class RecordingBackend final : public netback::FrameBackend {
 public:
  Result<void> start(os::EventLoop&, Callbacks) override { return {}; }
  Result<std::size_t> recv(std::span<std::byte>) override { return fail(Errc::kNoSpace, "nothing waiting"); }
  Result<void> send(std::span<const std::byte> f) override {
    sent.emplace_back(f.begin(), f.end());
    return {};
  }
  void set_rx_paused(bool) override {}
  void set_tx_wait(bool) override {}
  void set_link(bool) override {}
  bool carries_offloads() const override { return true; }
  const std::string& name() const override { return name_; }

  std::vector<std::vector<std::byte>> sent;  // header + frame, in order

 private:
  std::string name_ = "recording";
};

}  // namespace vepf::test
