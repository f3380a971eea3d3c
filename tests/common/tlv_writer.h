// TlvWriter: writes netlink bytes by hand for byte-level tests (independent of libnl and
// libmnl, so a test compares the project's builders against the wire format itself, and
// feeds its parsers replies shaped at will).
#pragma once

#include <linux/netlink.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace nodeagent::testing {

struct TlvWriter {
  std::vector<uint8_t> b;
  void u8(uint8_t v) { b.push_back(v); }
  void u16(uint16_t v) { raw(&v, 2); }
  void u32(uint32_t v) { raw(&v, 4); }
  void raw(const void* p, size_t n) {
    auto* c = static_cast<const uint8_t*>(p);
    b.insert(b.end(), c, c + n);
  }
  void pad() {
    while (b.size() % 4) b.push_back(0);
  }
  void attr(uint16_t type, const void* p, size_t n) {
    u16(static_cast<uint16_t>(4 + n));
    u16(type);
    raw(p, n);
    pad();
  }
  void attrU16(uint16_t type, uint16_t v) { attr(type, &v, 2); }
  void attrU32(uint16_t type, uint32_t v) { attr(type, &v, 4); }
  // Nested attribute (marked NLA_F_NESTED, as libnl and libmnl mark them): returns the
  // offset whose length nestEnd() patches.
  size_t nestStart(uint16_t type) {
    size_t at = b.size();
    u16(0);
    u16(type | NLA_F_NESTED);
    return at;
  }
  void nestEnd(size_t at) {
    auto len = static_cast<uint16_t>(b.size() - at);
    std::memcpy(&b[at], &len, 2);
  }
  // The bytes, with the leading nlmsghdr's length set to their size.
  std::vector<uint8_t> message() const {
    auto out = b;
    auto len = static_cast<uint32_t>(out.size());
    std::memcpy(out.data(), &len, 4);
    return out;
  }
};

}  // namespace nodeagent::testing
