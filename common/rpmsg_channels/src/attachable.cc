// AttachableRouter (router.hpp): one probe's Router, passing every call on to a long-lived one.
#include "vepf/rpmsg/router.hpp"

namespace vepf::rpmsg {

class AttachableRouter::Attachment final : public Router {
 public:
  Attachment(AttachableRouter& r, Port& p) : r_(&r) {
    if (r.attachment_ != nullptr) r.attachment_->release();
    r.attachment_ = this;
    r.port_ = &p;
  }
  ~Attachment() override { release(); }
  Attachment(const Attachment&) = delete;
  Attachment& operator=(const Attachment&) = delete;

  Result<void> start(os::EventLoop& loop) override { return r_ ? r_->start(loop) : Result<void>{}; }
  void link_up(bool name_service) override {
    if (r_) r_->link_up(name_service);
  }
  void link_down() override {
    if (r_) r_->link_down();
  }
  void on_message(std::span<const std::byte> msg) override {
    if (r_) r_->on_message(msg);
  }
  void resume() override {
    if (r_) r_->resume();
  }
  void flush_received() override {
    if (r_) r_->flush_received();
  }
  bool can_take() const override { return r_ ? r_->can_take() : true; }
  const ChannelStats& stats() const noexcept override { return r_ ? r_->stats() : none_; }
  std::size_t local_channels() const noexcept override { return r_ ? r_->local_channels() : 0; }
  std::size_t peer_channels() const noexcept override { return r_ ? r_->peer_channels() : 0; }

  /// The Port goes (this probe ends) or another attachment takes over.
  void release() noexcept {
    if (!r_) return;
    AttachableRouter& r = *r_;
    r_ = nullptr;
    r.detached();
    r.port_ = nullptr;
    r.attachment_ = nullptr;
  }

 private:
  AttachableRouter* r_;
  ChannelStats none_;
};

RouterFactory AttachableRouter::attachment() {
  return
      [this](Port& p) -> std::unique_ptr<Router> { return std::make_unique<Attachment>(*this, p); };
}

void AttachableRouter::end_attachment() noexcept {
  if (attachment_ != nullptr) attachment_->release();
}

}  // namespace vepf::rpmsg
