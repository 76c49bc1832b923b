// The link of a board config for each program (links.hpp).
#include "vepf/platform/links.hpp"

#include <cstddef>
#include <cstring>
#include <thread>

#include "vepf/layout/epf.hpp"
#include "vepf/platform/loopback.hpp"
#include "vepf/platform/window_memory.hpp"

namespace vepf::platform {

namespace {

using std::chrono::milliseconds;

std::string describe(const Error& e) {
  std::string s = std::string(e.what) + " (" + std::string(errc_name(e.code)) + ")";
  if (e.sys_errno) s += std::string(": ") + std::strerror(e.sys_errno);
  return s;
}

/// Loopback: a new connection (and hello exchange) per session.
class LoopbackSource final : public HostLinkSource {
 public:
  explicit LoopbackSource(const config::BoardConfig& cfg)
      : socket_(cfg.loopback.socket),
        rc_window_size_(cfg.link.rc_window_size),
        access_(memory_access(cfg.loopback.memory, ring::MemoryType::kCached)) {}

  tl::expected<transport::DriverLink*, std::string> open(
      milliseconds timeout, const std::function<bool()>& keep_going) override {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto l = LoopbackHost::connect(socket_, rc_window_size_, milliseconds(500), access_);
      if (l) {
        link_ = std::move(*l);
        return link_.get();
      }
      // kLinkDown: we reached an EP that was just going away (a restart); try again.
      const bool retry = l.error().code == Errc::kTimeout || l.error().code == Errc::kLinkDown;
      if (!retry || std::chrono::steady_clock::now() >= deadline) {
        return tl::unexpected("cannot reach the EP at " + socket_ + ": " + describe(l.error()) +
                              "; is vepf-ep running with the same board config?");
      }
      if (!keep_going()) return tl::unexpected(std::string("given up"));
      if (l.error().code == Errc::kLinkDown) std::this_thread::sleep_for(milliseconds(50));
    }
  }
  void close() noexcept override { link_.reset(); }
  std::string description() const override { return "the EP at " + socket_; }

 private:
  std::string socket_;
  std::size_t rc_window_size_;
  ring::MemoryAccess access_;
  std::unique_ptr<LoopbackHost> link_;
};

/// A PCI function through VFIO, opened once; an EP serves it when its header shows the magic.
class PciSource final : public HostLinkSource {
 public:
  PciSource(const config::BoardConfig& cfg, PciFinder find) : cfg_(cfg), find_(std::move(find)) {}

  tl::expected<transport::DriverLink*, std::string> open(
      milliseconds timeout, const std::function<bool()>& keep_going) override {
    if (!link_) {
      auto parts = open_vfio(cfg_.host, cfg_.link, PciRole::kHost, find_);
      if (!parts) return tl::unexpected("cannot use the EP function: " + parts.error());
      link_ = std::make_unique<PciHost>(std::move(*parts));
    }
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    const auto magic_off = layout::header_off(offsetof(layout::EpfHeader, magic));
    for (;;) {
      // Pairs with store_release of magic in DeviceTransport::init().
      if (link_->ep_window().load_acquire<std::uint32_t>(magic_off) == layout::kEpfMagic)
        return link_.get();
      if (std::chrono::steady_clock::now() >= deadline) {
        return tl::unexpected("the EP window shows no virtio-pci-epf header after " +
                              std::to_string(timeout.count()) +
                              " ms: is vepf-ep running on the EP with this board?");
      }
      if (!keep_going()) return tl::unexpected(std::string("given up"));
      std::this_thread::sleep_for(milliseconds(20));
    }
  }
  void close() noexcept override {}  // the function stays open for the next session
  std::string description() const override {
    return link_ ? "EP function: " + link_->description() : std::string();
  }

 private:
  const config::BoardConfig& cfg_;
  PciFinder find_;
  std::unique_ptr<PciHost> link_;
};

}  // namespace

tl::expected<EpLink, std::string> open_ep_link(const config::BoardConfig& cfg,
                                               const PciFinder& find) {
  EpLink out;
  if (cfg.platform == config::Platform::kLoopback) {
    auto link = LoopbackEp::create(cfg.loopback.socket, cfg.link.ep_window_size,
                                   memory_access(cfg.loopback.memory, ring::MemoryType::kCached));
    if (!link)
      return tl::unexpected("cannot listen on " + cfg.loopback.socket + ": " +
                            describe(link.error()));
    out.peers = link->get();
    out.link = std::move(*link);
    out.description = "loopback at " + cfg.loopback.socket;
    return out;
  }
  auto parts = cfg.platform == config::Platform::kVfio
                   ? open_vfio(cfg.ep, cfg.link, PciRole::kEp, find)
                   : open_devmem(cfg.ep, cfg.link);
  if (!parts)
    return tl::unexpected("cannot set up the " + std::string(config::to_string(cfg.platform)) +
                          " platform: " + parts.error());
  auto pci = std::make_unique<PciEp>(std::move(*parts));
  out.description =
      std::string(config::to_string(cfg.platform)) + " platform: " + pci->description();
  out.link = std::move(pci);
  return out;
}

std::unique_ptr<HostLinkSource> make_host_link_source(const config::BoardConfig& cfg,
                                                      PciFinder find) {
  if (cfg.platform == config::Platform::kLoopback) return std::make_unique<LoopbackSource>(cfg);
  return std::make_unique<PciSource>(cfg, std::move(find));
}

}  // namespace vepf::platform
