// NetlinkWriter: one netlink request assembled with libmnl in a buffer of its own: the
// nlmsghdr, a fixed family header (genlmsghdr, ifinfomsg, ...), then attributes and nests.
// The buffer holds MNL_SOCKET_BUFFER_SIZE bytes. Every request the project builds has
// fixed-size fields and names of at most IFNAMSIZ / IP_VS_PENAME_MAXLEN bytes, so it stays
// under 1 KiB: nothing here can fail, and the builders that use it return messages, not
// errors (and never abort). seq and pid stay 0: the socket stamps them.
#pragma once

#include <libmnl/libmnl.h>
#include <linux/netlink.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace nodeagent {

class NetlinkWriter {
 public:
  NetlinkWriter(uint16_t type, uint16_t flags) : buf_(MNL_SOCKET_BUFFER_SIZE) {
    nlh_ = mnl_nlmsg_put_header(buf_.data());
    nlh_->nlmsg_type = type;
    nlh_->nlmsg_flags = flags;
  }
  NetlinkWriter(const NetlinkWriter&) = delete;
  NetlinkWriter& operator=(const NetlinkWriter&) = delete;
  NetlinkWriter(NetlinkWriter&& other) noexcept : buf_(std::move(other.buf_)), nlh_(other.nlh_) {
    other.nlh_ = nullptr;
  }

  // The family header that follows nlmsghdr.
  template <class Header>
  NetlinkWriter& header(const Header& h) {
    std::memcpy(mnl_nlmsg_put_extra_header(nlh_, sizeof h), &h, sizeof h);
    return *this;
  }
  NetlinkWriter& put(uint16_t type, const void* data, size_t len) {
    mnl_attr_put(nlh_, type, len, data);
    return *this;
  }
  NetlinkWriter& putU16(uint16_t type, uint16_t v) {
    mnl_attr_put_u16(nlh_, type, v);
    return *this;
  }
  NetlinkWriter& putU32(uint16_t type, uint32_t v) {
    mnl_attr_put_u32(nlh_, type, v);
    return *this;
  }
  // A NUL-terminated string attribute.
  NetlinkWriter& putString(uint16_t type, std::string_view s) {
    std::string z(s);
    mnl_attr_put_strz(nlh_, type, z.c_str());
    return *this;
  }
  // A nested attribute (marked NLA_F_NESTED): its attributes follow; endNest(at) closes it.
  nlattr* beginNest(uint16_t type) { return mnl_attr_nest_start(nlh_, type); }
  void endNest(nlattr* start) { mnl_attr_nest_end(nlh_, start); }

  // The message: exactly nlmsg_len bytes.
  std::vector<uint8_t> finish() && {
    const auto* p = reinterpret_cast<const uint8_t*>(nlh_);
    return std::vector<uint8_t>(p, p + nlh_->nlmsg_len);
  }

 private:
  std::vector<char> buf_;
  nlmsghdr* nlh_;
};

}  // namespace nodeagent
