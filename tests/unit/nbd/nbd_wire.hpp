#pragma once
// Client side of the NBD wire for the session tests and the fuzz seeds: builders for what a
// client sends, a reader for what the server sends (proto.md, section names in nbd_proto.hpp).

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "nbd/nbd_proto.hpp"

namespace vepf::host::nbd::test {

using Bytes = std::vector<std::byte>;

template <class T>
void put(Bytes& b, T v) {
  append_be<T>(b, v);
}
inline void put_str(Bytes& b, std::string_view s) {
  for (char ch : s) b.push_back(static_cast<std::byte>(ch));
}
inline Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes b;
  for (const auto& p : parts) b.insert(b.end(), p.begin(), p.end());
  return b;
}
inline Bytes filled(std::size_t n, std::uint8_t v) { return Bytes(n, static_cast<std::byte>(v)); }

inline Bytes client_flags(std::uint32_t f) {
  Bytes b;
  put<std::uint32_t>(b, f);
  return b;
}
inline Bytes option(std::uint32_t opt, const Bytes& data, std::uint64_t magic = kIHaveOpt) {
  Bytes b;
  put<std::uint64_t>(b, magic);
  put<std::uint32_t>(b, opt);
  put<std::uint32_t>(b, static_cast<std::uint32_t>(data.size()));
  b.insert(b.end(), data.begin(), data.end());
  return b;
}
/// NBD_OPT_INFO / NBD_OPT_GO data.
inline Bytes info_data(std::string_view name, std::initializer_list<std::uint16_t> infos = {}) {
  Bytes b;
  put<std::uint32_t>(b, static_cast<std::uint32_t>(name.size()));
  put_str(b, name);
  put<std::uint16_t>(b, static_cast<std::uint16_t>(infos.size()));
  for (auto i : infos) put<std::uint16_t>(b, i);
  return b;
}
/// NBD_OPT_LIST_META_CONTEXT / NBD_OPT_SET_META_CONTEXT data.
inline Bytes meta_data(std::string_view name, std::initializer_list<std::string_view> queries) {
  Bytes b;
  put<std::uint32_t>(b, static_cast<std::uint32_t>(name.size()));
  put_str(b, name);
  put<std::uint32_t>(b, static_cast<std::uint32_t>(queries.size()));
  for (auto q : queries) {
    put<std::uint32_t>(b, static_cast<std::uint32_t>(q.size()));
    put_str(b, q);
  }
  return b;
}
inline Bytes request(std::uint16_t type, std::uint64_t cookie, std::uint64_t offset,
                     std::uint32_t length, std::uint16_t flags = 0,
                     std::uint32_t magic = kRequestMagic) {
  Bytes b;
  put<std::uint32_t>(b, magic);
  put<std::uint16_t>(b, flags);
  put<std::uint16_t>(b, type);
  put<std::uint64_t>(b, cookie);
  put<std::uint64_t>(b, offset);
  put<std::uint32_t>(b, length);
  return b;
}

/// Reads server output front to back; reading past the end gives zeros and sets overrun.
class WireReader {
 public:
  explicit WireReader(Bytes b) : b_(std::move(b)) {}
  template <class T>
  T get() {
    if (sizeof(T) > left()) {
      overrun = true;
      pos_ = b_.size();
      return 0;
    }
    const T v = load_be<T>(b_.data() + pos_);
    pos_ += sizeof(T);
    return v;
  }
  Bytes take(std::size_t n) {
    if (n > left()) {
      overrun = true;
      n = left();
    }
    Bytes r(b_.begin() + static_cast<std::ptrdiff_t>(pos_),
            b_.begin() + static_cast<std::ptrdiff_t>(pos_ + n));
    pos_ += n;
    return r;
  }
  std::string str(std::size_t n) {
    const Bytes r = take(n);
    std::string s;
    for (auto x : r) s.push_back(static_cast<char>(x));
    return s;
  }
  std::size_t left() const { return b_.size() - pos_; }
  void append(const Bytes& more) { b_.insert(b_.end(), more.begin(), more.end()); }
  bool overrun = false;

 private:
  Bytes b_;
  std::size_t pos_ = 0;
};

struct OptReply {
  std::uint32_t option = 0, type = 0;
  Bytes data;
  bool bad_magic = false;
};
inline OptReply next_opt_reply(WireReader& r) {
  OptReply o;
  o.bad_magic = r.get<std::uint64_t>() != kOptReplyMagic;
  o.option = r.get<std::uint32_t>();
  o.type = r.get<std::uint32_t>();
  o.data = r.take(r.get<std::uint32_t>());
  return o;
}

/// A transmission reply: simple (structured == false) or one structured chunk.
struct Reply {
  bool structured = false;
  bool bad_magic = false;
  std::uint16_t flags = 0, type = 0;
  std::uint64_t cookie = 0;
  std::uint32_t error = 0;  // simple: the error field; structured ERROR: the error value
  Bytes payload;            // simple: read data; structured: the chunk's payload
};
/// `read_len`: data that follows a successful simple reply (the request's length for a read).
inline Reply next_reply(WireReader& r, std::uint32_t read_len = 0) {
  Reply x;
  const std::uint32_t magic = r.get<std::uint32_t>();
  if (magic == kSimpleReplyMagic) {
    x.error = r.get<std::uint32_t>();
    x.cookie = r.get<std::uint64_t>();
    if (x.error == 0) x.payload = r.take(read_len);
    return x;
  }
  x.structured = true;
  x.bad_magic = magic != kStructuredReplyMagic;
  x.flags = r.get<std::uint16_t>();
  x.type = r.get<std::uint16_t>();
  x.cookie = r.get<std::uint64_t>();
  x.payload = r.take(r.get<std::uint32_t>());
  if ((x.type & 0x8000) != 0 && x.payload.size() >= 4)
    x.error = load_be<std::uint32_t>(x.payload.data());
  return x;
}

}  // namespace vepf::host::nbd::test
