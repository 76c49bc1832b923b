#include "vepf/os/tap.hpp"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace vepf::os {
namespace {

ifreq make_ifreq(const std::string& name) noexcept {
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, name.data(), name.size());  // callers checked name.size() < IFNAMSIZ
  return ifr;
}

/// Interface ioctls (SIOC*) go through any socket, not the TAP descriptor.
Result<void> if_ioctl(unsigned long req, ifreq& ifr, const char* what) noexcept {
  Fd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock.valid()) return fail(Errc::kSystem, "socket(AF_INET) for interface ioctls", errno);
  if (::ioctl(sock.get(), req, &ifr) < 0) return fail(Errc::kSystem, what, errno);
  return {};
}

Result<std::size_t> io_result(ssize_t n, const char* what) noexcept {
  if (n >= 0) return static_cast<std::size_t>(n);
  if (errno == EAGAIN) return fail(Errc::kNoSpace, what, errno);
  return fail(Errc::kSystem, what, errno);
}

}  // namespace

Result<Tap> Tap::open(const std::string& ifname, int vnet_hdr_size) noexcept {
  if (ifname.empty() || ifname.size() >= IFNAMSIZ)
    return fail(Errc::kInvalidArgument, "tap name empty or too long");
  Fd fd(::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC));
  if (!fd.valid()) return fail(Errc::kSystem, "open /dev/net/tun", errno);
  ifreq ifr = make_ifreq(ifname);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  if (::ioctl(fd.get(), TUNSETIFF, &ifr) < 0) return fail(Errc::kSystem, "ioctl(TUNSETIFF)", errno);
  int hdr_size = vnet_hdr_size;
  if (::ioctl(fd.get(), TUNSETVNETHDRSZ, &hdr_size) < 0)
    return fail(Errc::kSystem, "ioctl(TUNSETVNETHDRSZ)", errno);
  return Tap(std::move(fd), std::string(ifr.ifr_name, ::strnlen(ifr.ifr_name, IFNAMSIZ)));
}

Result<void> Tap::set_carrier(bool up) noexcept {
  int on = up ? 1 : 0;
  if (::ioctl(fd_.get(), TUNSETCARRIER, &on) < 0)
    return fail(Errc::kSystem, "ioctl(TUNSETCARRIER)", errno);
  return {};
}

Result<void> Tap::set_mtu(int mtu) noexcept {
  ifreq ifr = make_ifreq(name_);
  ifr.ifr_mtu = mtu;
  return if_ioctl(SIOCSIFMTU, ifr, "ioctl(SIOCSIFMTU)");
}

Result<void> Tap::set_up(bool up) noexcept {
  ifreq ifr = make_ifreq(name_);
  if (auto r = if_ioctl(SIOCGIFFLAGS, ifr, "ioctl(SIOCGIFFLAGS)"); !r) return r;
  if (up) {
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
  } else {
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags & ~IFF_UP);
  }
  return if_ioctl(SIOCSIFFLAGS, ifr, "ioctl(SIOCSIFFLAGS)");
}

Result<void> Tap::set_offload(unsigned flags) noexcept {
  // TUNSETOFFLOAD takes the flags by value, not through a pointer.
  if (::ioctl(fd_.get(), TUNSETOFFLOAD, static_cast<unsigned long>(flags)) < 0) {
    return fail(Errc::kSystem, "ioctl(TUNSETOFFLOAD)", errno);
  }
  return {};
}

Result<std::size_t> Tap::read(std::span<std::byte> buf) noexcept {
  return io_result(::read(fd_.get(), buf.data(), buf.size()), "read from tap");
}

Result<std::size_t> Tap::write(std::span<const std::byte> frame) noexcept {
  return io_result(::write(fd_.get(), frame.data(), frame.size()), "write to tap");
}

Result<std::size_t> Tap::readv(std::span<const iovec> iov) noexcept {
  return io_result(::readv(fd_.get(), iov.data(), static_cast<int>(iov.size())), "readv from tap");
}

Result<std::size_t> Tap::writev(std::span<const iovec> iov) noexcept {
  return io_result(::writev(fd_.get(), iov.data(), static_cast<int>(iov.size())), "writev to tap");
}

}  // namespace vepf::os
