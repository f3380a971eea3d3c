// NetlinkWriter: assembles one netlink request in a buffer that grows as needed: the
// nlmsghdr, a fixed family header (genlmsghdr, ifinfomsg, ...), then attributes and nests,
// each padded to 4 bytes. Nothing in it can fail, so the builders that use it return
// messages, not errors (and never abort). seq and pid stay 0: the socket stamps them.
#pragma once

#include <linux/netlink.h>

#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

namespace nodeagent {

class NetlinkWriter {
 public:
  NetlinkWriter(uint16_t type, uint16_t flags) {
    nlmsghdr h{};
    h.nlmsg_type = type;
    h.nlmsg_flags = flags;
    append(&h, sizeof h);
  }
  // The family header that follows nlmsghdr (padded to 4 bytes).
  template <class Header>
  NetlinkWriter& header(const Header& h) {
    append(&h, sizeof h);
    return *this;
  }
  NetlinkWriter& put(uint16_t type, const void* data, size_t len) {
    nlattr a{};
    a.nla_len = static_cast<uint16_t>(NLA_HDRLEN + len);
    a.nla_type = type;
    append(&a, sizeof a);
    append(data, len);
    return *this;
  }
  NetlinkWriter& putU16(uint16_t type, uint16_t v) { return put(type, &v, sizeof v); }
  NetlinkWriter& putU32(uint16_t type, uint32_t v) { return put(type, &v, sizeof v); }
  // A NUL-terminated string attribute.
  NetlinkWriter& putString(uint16_t type, std::string_view s) {
    std::vector<char> z(s.begin(), s.end());
    z.push_back('\0');
    return put(type, z.data(), z.size());
  }
  // A nested attribute (marked NLA_F_NESTED): its attributes follow; endNest(at) closes it.
  size_t beginNest(uint16_t type) {
    size_t at = buf_.size();
    nlattr a{};
    a.nla_type = static_cast<uint16_t>(type | NLA_F_NESTED);
    append(&a, sizeof a);
    return at;
  }
  void endNest(size_t at) {
    auto len = static_cast<uint16_t>(buf_.size() - at);
    std::memcpy(buf_.data() + at, &len, sizeof len);
  }
  // The message, with nlmsg_len set.
  std::vector<uint8_t> finish() && {
    auto len = static_cast<uint32_t>(buf_.size());
    std::memcpy(buf_.data(), &len, sizeof len);
    return std::move(buf_);
  }

 private:
  void append(const void* p, size_t n) {
    const auto* c = static_cast<const uint8_t*>(p);
    buf_.insert(buf_.end(), c, c + n);
    buf_.resize(NLMSG_ALIGN(buf_.size()), 0);
  }
  std::vector<uint8_t> buf_;
};

}  // namespace nodeagent
