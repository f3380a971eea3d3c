#include "common/netlink_attr.h"

#include <arpa/inet.h>
#include <endian.h>

#include <cstring>

namespace nodeagent {

namespace {

template <class T>
T load(Bytes b) {
  T v;
  std::memcpy(&v, b.data(), sizeof v);  // attributes are only 4-byte aligned
  return v;
}

size_t fixedSize(AttrKind k) {
  switch (k) {
    case AttrKind::kU8: return 1;
    case AttrKind::kU16: return 2;
    case AttrKind::kU32: return 4;
    case AttrKind::kU64: return 8;
    default: return 0;
  }
}

}  // namespace

AttrPolicy::AttrPolicy(const char* space, std::initializer_list<AttrRule> rules) : space_(space) {
  for (const auto& r : rules) maxType_ = std::max(maxType_, r.type);
  rules_.resize(size_t(maxType_) + 1);
  for (const auto& r : rules) rules_[r.type] = r;
}

const AttrRule* AttrPolicy::find(uint16_t type) const {
  if (type >= rules_.size() || rules_[type].name[0] == '\0') return nullptr;
  return &rules_[type];
}

Result<Attrs> parseAttrs(Bytes bytes, const AttrPolicy& policy) {
  Attrs out;
  out.slots_.resize(size_t(policy.maxType()) + 1);
  size_t off = 0;
  while (off < bytes.size()) {
    if (bytes.size() - off < NLA_HDRLEN)
      return failInvalid(std::string(policy.space()) + ": " + std::to_string(bytes.size() - off) +
                         " trailing bytes, shorter than an attribute header");
    auto hdr = load<nlattr>(bytes.subspan(off));
    if (hdr.nla_len < NLA_HDRLEN || hdr.nla_len > bytes.size() - off)
      return failInvalid(std::string(policy.space()) + ": attribute type " + std::to_string(hdr.nla_type & NLA_TYPE_MASK) +
                         " claims " + std::to_string(hdr.nla_len) + " bytes, " + std::to_string(bytes.size() - off) +
                         " remain");
    uint16_t type = hdr.nla_type & NLA_TYPE_MASK;
    Bytes payload = bytes.subspan(off + NLA_HDRLEN, hdr.nla_len - NLA_HDRLEN);
    if (const AttrRule* rule = policy.find(type)) {
      auto bad = [&](const std::string& why) {
        return failInvalid(std::string(policy.space()) + ": attribute " + rule->name + " (type " + std::to_string(type) +
                           ") " + why);
      };
      size_t want = fixedSize(rule->kind);
      if (want && payload.size() != want)
        return bad("has " + std::to_string(payload.size()) + " bytes, expected " + std::to_string(want));
      if (rule->kind == AttrKind::kString) {
        if (payload.empty() || payload.back() != 0) return bad("is not a NUL-terminated string");
        if (rule->maxLen && payload.size() > rule->maxLen)
          return bad("is " + std::to_string(payload.size()) + " bytes, at most " + std::to_string(rule->maxLen) + " allowed");
      }
      if (rule->kind == AttrKind::kBinary &&
          (payload.size() < rule->minLen || (rule->maxLen && payload.size() > rule->maxLen)))
        return bad("has " + std::to_string(payload.size()) + " bytes, expected " + std::to_string(rule->minLen) + ".." +
                   std::to_string(rule->maxLen));
      out.slots_[type] = {true, payload};
    }
    // The last attribute may omit its padding; a padded one must not run past the end.
    size_t next = off + NLA_ALIGN(hdr.nla_len);
    if (next > bytes.size()) {
      if (off + hdr.nla_len != bytes.size())
        return failInvalid(std::string(policy.space()) + ": attribute padding runs past the end");
      break;
    }
    off = next;
  }
  return out;
}

uint8_t Attrs::u8(uint16_t t, uint8_t otherwise) const { return has(t) && payload(t).size() == 1 ? payload(t)[0] : otherwise; }
uint16_t Attrs::u16(uint16_t t, uint16_t otherwise) const {
  return has(t) && payload(t).size() == 2 ? load<uint16_t>(payload(t)) : otherwise;
}
uint16_t Attrs::be16(uint16_t t, uint16_t otherwise) const { return has(t) && payload(t).size() == 2 ? ntohs(u16(t)) : otherwise; }
uint32_t Attrs::u32(uint16_t t, uint32_t otherwise) const {
  return has(t) && payload(t).size() == 4 ? load<uint32_t>(payload(t)) : otherwise;
}
uint32_t Attrs::be32(uint16_t t, uint32_t otherwise) const { return has(t) && payload(t).size() == 4 ? ntohl(u32(t)) : otherwise; }
uint64_t Attrs::u64(uint16_t t, uint64_t otherwise) const {
  return has(t) && payload(t).size() == 8 ? load<uint64_t>(payload(t)) : otherwise;
}
uint64_t Attrs::be64(uint16_t t, uint64_t otherwise) const { return has(t) && payload(t).size() == 8 ? be64toh(u64(t)) : otherwise; }
std::string Attrs::str(uint16_t t) const {
  Bytes p = payload(t);
  if (p.empty()) return {};
  auto* s = reinterpret_cast<const char*>(p.data());
  return std::string(s, strnlen(s, p.size()));
}

Result<Bytes> netlinkMessage(Bytes bytes, size_t familyHeader, std::string_view what) {
  if (bytes.size() < NLMSG_HDRLEN)
    return failInvalid(std::string(what) + ": " + std::to_string(bytes.size()) + " bytes, shorter than a netlink header");
  auto h = load<nlmsghdr>(bytes);
  if (h.nlmsg_len < NLMSG_HDRLEN || h.nlmsg_len > bytes.size())
    return failInvalid(std::string(what) + ": netlink length " + std::to_string(h.nlmsg_len) + " outside the " +
                       std::to_string(bytes.size()) + " bytes received");
  if (h.nlmsg_len < NLMSG_HDRLEN + NLMSG_ALIGN(familyHeader))
    return failInvalid(std::string(what) + ": message of " + std::to_string(h.nlmsg_len) + " bytes has no room for its " +
                       std::to_string(familyHeader) + "-byte family header");
  return bytes.first(h.nlmsg_len);
}

nlmsghdr netlinkHeader(Bytes message) { return load<nlmsghdr>(message); }

Bytes netlinkFamilyHeader(Bytes message, size_t familyHeader) { return message.subspan(NLMSG_HDRLEN, familyHeader); }

Bytes netlinkAttributes(Bytes message, size_t familyHeader) {
  return message.subspan(NLMSG_HDRLEN + NLMSG_ALIGN(familyHeader));
}

}  // namespace nodeagent
