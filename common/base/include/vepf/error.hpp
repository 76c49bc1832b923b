#pragma once
// Error values of virtio-epf (vepf_base): every layer returns Result<T>; nothing below main()
// throws.

#include <cstdint>
#include <string_view>

#include <tl/expected.hpp>

namespace vepf {

enum class Errc : std::uint16_t {
  kOk = 0,
  kInvalidArgument,  // our caller passed something out of range
  kOutOfRange,       // a peer-written address or length falls outside the windows
  kBadRing,          // the peer broke a ring rule; the queue is now broken
  kBadLayout,        // the control region's header does not validate
  kNoSpace,          // ring or pool full: try again after get_used()
  kTimeout,          // the peer did not acknowledge in time
  kRejected,         // the peer acknowledged with an error
  kNotReady,         // the peer is not (yet) in the state the operation needs
  kLinkDown,         // the other side went away
  kSystem,           // a syscall failed: see sys_errno
  kCancelled,        // a wait was given up by its caller (e.g. the program is stopping)
};

/// Name of an Errc for messages ("bad-ring", ...).
constexpr std::string_view errc_name(Errc c) noexcept {
  switch (c) {
    case Errc::kOk:
      return "ok";
    case Errc::kInvalidArgument:
      return "invalid-argument";
    case Errc::kOutOfRange:
      return "out-of-range";
    case Errc::kBadRing:
      return "bad-ring";
    case Errc::kBadLayout:
      return "bad-layout";
    case Errc::kNoSpace:
      return "no-space";
    case Errc::kTimeout:
      return "timeout";
    case Errc::kRejected:
      return "rejected";
    case Errc::kNotReady:
      return "not-ready";
    case Errc::kLinkDown:
      return "link-down";
    case Errc::kSystem:
      return "system";
    case Errc::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

/// An error: a code, the errno of a failed syscall (0 otherwise) and a static description
/// (string literal; never owned) saying which rule or step failed.
struct Error {
  Errc code = Errc::kOk;
  int sys_errno = 0;
  const char* what = "";
};

template <class T>
using Result = tl::expected<T, Error>;

/// Shorthand for returning an error: `return fail(Errc::kBadRing, "head out of range");`
inline tl::unexpected<Error> fail(Errc code, const char* what, int sys_errno = 0) noexcept {
  return tl::unexpected<Error>(Error{code, sys_errno, what});
}

}  // namespace vepf
