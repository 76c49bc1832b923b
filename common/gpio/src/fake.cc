#include "vepf/gpio/fake.hpp"

#include <cerrno>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include "messages.hpp"
#include "vepf/os/eventfd.hpp"

namespace vepf::gpio {
namespace {

/// Edge events of a requested input, and the eventfd that is readable while any are queued.
struct EdgeQueue {
  os::EventFd efd;
  std::deque<bool> rising;  // physical direction of each queued edge
};

struct FakeLine {
  bool level = false;  // physical
  bool requested = false;
  bool output = false;
  std::string consumer;
  std::uint64_t request_id = 0;  // which request holds the line; stale line objects don't touch it
  int io_errno = 0;
  std::shared_ptr<EdgeQueue> edges;  // set while requested as an input
};

struct FakeChip {
  std::vector<FakeLine> lines;
};

}  // namespace

struct FakeChips::State {
  mutable std::mutex mu;
  std::map<std::string, std::shared_ptr<FakeChip>, std::less<>> chips;
  std::uint64_t next_request_id = 1;

  FakeLine* find(std::string_view chip, unsigned offset) const {
    auto it = chips.find(detail::chip_basename(chip));
    if (it == chips.end() || offset >= it->second->lines.size()) return nullptr;
    return &it->second->lines[offset];
  }
};

namespace {

/// What a fake line object holds: the chip (kept alive), its offset and the request's id.
struct Grant {
  std::shared_ptr<FakeChips::State> state;
  std::shared_ptr<FakeChip> chip;
  LineSpec spec;
  std::uint64_t id = 0;

  // Call with state->mu held. nullptr once the line was taken away (hold()) from this request.
  FakeLine* line() const {
    FakeLine& l = chip->lines[spec.offset];
    return l.request_id == id ? &l : nullptr;
  }
  void release() {
    std::lock_guard lock(state->mu);
    if (FakeLine* l = line()) {
      l->requested = l->output = false;
      l->consumer.clear();
      l->edges.reset();
      l->request_id = 0;
    }
  }
};

class FakeOutput final : public OutputLine {
 public:
  explicit FakeOutput(Grant g) : g_(std::move(g)) {}
  ~FakeOutput() override { g_.release(); }
  GpioResult<void> set(bool active) override {
    std::lock_guard lock(g_.state->mu);
    FakeLine* l = g_.line();
    if (l == nullptr) return tl::unexpected(detail::io_error(g_.spec, "set", EBADF));
    if (l->io_errno != 0) return tl::unexpected(detail::io_error(g_.spec, "set", l->io_errno));
    l->level = active != g_.spec.active_low;
    return {};
  }

 private:
  Grant g_;
};

class FakeInput final : public InputLine {
 public:
  FakeInput(Grant g, std::shared_ptr<EdgeQueue> q) : g_(std::move(g)), q_(std::move(q)) {}
  ~FakeInput() override { g_.release(); }
  GpioResult<bool> get() override {
    std::lock_guard lock(g_.state->mu);
    FakeLine* l = g_.line();
    if (l == nullptr) return tl::unexpected(detail::io_error(g_.spec, "get", EBADF));
    if (l->io_errno != 0) return tl::unexpected(detail::io_error(g_.spec, "get", l->io_errno));
    return l->level != g_.spec.active_low;
  }
  int fd() const noexcept override { return q_->efd.fd(); }
  GpioResult<unsigned> read_edges() override {
    std::lock_guard lock(g_.state->mu);
    FakeLine* l = g_.line();
    if (l != nullptr && l->io_errno != 0) {
      return tl::unexpected(detail::io_error(g_.spec, "read edge events", l->io_errno));
    }
    unsigned active_going = 0;
    for (bool rising : q_->rising) active_going += rising != g_.spec.active_low ? 1 : 0;
    q_->rising.clear();
    if (auto d = q_->efd.drain(); !d) {
      return tl::unexpected(detail::io_error(g_.spec, "read edge events", d.error().sys_errno));
    }
    return active_going;
  }

 private:
  Grant g_;
  std::shared_ptr<EdgeQueue> q_;
};

}  // namespace

FakeChips::FakeChips() : state_(std::make_shared<State>()) {}
FakeChips::~FakeChips() = default;

void FakeChips::add_chip(const std::string& name, unsigned num_lines) {
  auto chip = std::make_shared<FakeChip>();
  chip->lines.resize(num_lines);
  std::lock_guard lock(state_->mu);
  state_->chips[std::string(detail::chip_basename(name))] = std::move(chip);
}

std::optional<bool> FakeChips::level(std::string_view chip, unsigned offset) const {
  std::lock_guard lock(state_->mu);
  const FakeLine* l = state_->find(chip, offset);
  if (l == nullptr) return std::nullopt;
  return l->level;
}

std::string FakeChips::consumer(std::string_view chip, unsigned offset) const {
  std::lock_guard lock(state_->mu);
  const FakeLine* l = state_->find(chip, offset);
  return l != nullptr && l->requested ? l->consumer : std::string();
}

bool FakeChips::is_output(std::string_view chip, unsigned offset) const {
  std::lock_guard lock(state_->mu);
  const FakeLine* l = state_->find(chip, offset);
  return l != nullptr && l->requested && l->output;
}

void FakeChips::drive(std::string_view chip, unsigned offset, bool high) {
  std::lock_guard lock(state_->mu);
  FakeLine* l = state_->find(chip, offset);
  if (l == nullptr || l->level == high) return;
  l->level = high;
  if (l->edges) {
    l->edges->rising.push_back(high);
    (void)l->edges->efd.signal();  // only fails when the counter saturates: it stays readable
  }
}

void FakeChips::hold(std::string_view chip, unsigned offset, std::string consumer) {
  std::lock_guard lock(state_->mu);
  FakeLine* l = state_->find(chip, offset);
  if (l == nullptr) return;
  l->requested = !consumer.empty();
  l->output = false;
  l->consumer = std::move(consumer);
  l->edges.reset();
  l->request_id = l->requested ? state_->next_request_id++ : 0;
}

void FakeChips::inject_io_error(std::string_view chip, unsigned offset, int err) {
  std::lock_guard lock(state_->mu);
  if (FakeLine* l = state_->find(chip, offset)) l->io_errno = err;
}

namespace {

/// Takes the line for a new request, or says why not (the same checks, in the same order, as
/// the libgpiod provider: chip name, chip exists, offset in range, line free).
GpioResult<Grant> grant(const std::shared_ptr<FakeChips::State>& state, const LineSpec& spec,
                        bool output, std::string_view consumer) {
  const std::string_view what = output ? "output" : "input with edge events";
  if (spec.chip.empty()) return tl::unexpected(detail::empty_chip_error(spec));
  auto it = state->chips.find(detail::chip_basename(spec.chip));
  if (it == state->chips.end()) {
    std::vector<std::string> present;
    for (const auto& [name, chip] : state->chips) present.push_back(name);
    return tl::unexpected(detail::chip_open_error(spec, ENOENT, present));
  }
  const auto& chip = it->second;
  if (spec.offset >= chip->lines.size()) {
    return tl::unexpected(
        detail::line_range_error(spec, static_cast<unsigned>(chip->lines.size())));
  }
  FakeLine& l = chip->lines[spec.offset];
  if (l.requested) return tl::unexpected(detail::request_error(spec, what, EBUSY, l.consumer));
  l.requested = true;
  l.output = output;
  l.consumer = consumer.empty() ? "?" : std::string(consumer);  // the kernel shows "?" for no label
  l.request_id = state->next_request_id++;
  return Grant{state, chip, spec, l.request_id};
}

}  // namespace

GpioResult<std::unique_ptr<OutputLine>> FakeChips::request_output(const LineSpec& spec,
                                                                  bool initial_active,
                                                                  std::string_view consumer) {
  std::unique_lock lock(state_->mu);
  auto g = grant(state_, spec, /*output=*/true, consumer);
  if (!g) return tl::unexpected(std::move(g.error()));
  g->chip->lines[spec.offset].level = initial_active != spec.active_low;
  lock.unlock();
  return std::make_unique<FakeOutput>(std::move(*g));
}

GpioResult<std::unique_ptr<InputLine>> FakeChips::request_input(const LineSpec& spec,
                                                                std::string_view consumer) {
  auto efd = os::EventFd::create();
  if (!efd)
    return tl::unexpected(
        detail::request_error(spec, "input with edge events", efd.error().sys_errno, ""));
  auto q = std::make_shared<EdgeQueue>();
  q->efd = std::move(*efd);
  std::unique_lock lock(state_->mu);
  auto g = grant(state_, spec, /*output=*/false, consumer);
  if (!g) return tl::unexpected(std::move(g.error()));
  g->chip->lines[spec.offset].edges = q;
  lock.unlock();
  return std::make_unique<FakeInput>(std::move(*g), std::move(q));
}

}  // namespace vepf::gpio
