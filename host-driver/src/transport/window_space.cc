#include "transport/window_space.hpp"

namespace vepf::host {

WindowSpace::~WindowSpace() {
  for (const auto& a : owned_) {
    const bool ep =
        layout::link_addr_window(a.link_addr) == static_cast<std::uint8_t>(layout::WindowId::kEp);
    (ep ? t_.ep_alloc() : t_.rc_alloc()).free(a);
  }
}

Result<transport::Allocation> WindowSpace::alloc(layout::WindowId w, std::size_t bytes) {
  auto a = (w == layout::WindowId::kEp ? t_.ep_alloc() : t_.rc_alloc()).alloc(bytes, 64);
  if (a) owned_.push_back(*a);
  return a;
}

std::size_t WindowSpace::largest_free(layout::WindowId w) {
  std::size_t most = 0;
  for (const auto& [off, len] :
       (w == layout::WindowId::kEp ? t_.ep_alloc() : t_.rc_alloc()).free_ranges()) {
    most = std::max(most, len);
  }
  return most;
}

Result<std::unique_ptr<ring::Vring>> WindowSpace::make_queue(std::uint16_t index, bool event_idx) {
  const std::uint16_t num = info_.max_queue_size;
  if (!layout::queue_size_valid(num))
    return fail(Errc::kRejected, "device max queue size not a power of 2");
  auto desc = alloc(layout::WindowId::kEp, layout::desc_table_size(num));
  auto avail = alloc(layout::WindowId::kEp, layout::avail_ring_size(num));
  auto used = alloc(layout::WindowId::kRc, layout::used_ring_size(num));
  if (!desc || !avail || !used) return fail(Errc::kNoSpace, "windows too small for the queues");
  ring::VringParams p;
  p.num = num;
  p.desc = {&t_.link().ep_window(), desc->off, static_cast<std::uint32_t>(desc->len)};
  p.avail = {&t_.link().ep_window(), avail->off, static_cast<std::uint32_t>(avail->len)};
  p.used = {&t_.link().rc_window(), used->off, static_cast<std::uint32_t>(used->len)};
  p.event_idx = event_idx;
  p.group = &t_.poll_group();
  auto vq = std::make_unique<ring::Vring>(p);
  if (auto r = t_.enable_queue(info_.slot, index, num, desc->link_addr, avail->link_addr,
                               used->link_addr);
      !r) {
    return tl::unexpected(r.error());
  }
  return vq;
}

}  // namespace vepf::host
