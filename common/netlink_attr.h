// Checked reading of netlink replies: every reply parser goes through these, so none reads
// past the bytes the kernel sent. A message is a byte span; its header length is checked
// against the span, and its attributes are checked against a policy (type -> kind and
// length) before any value is read: a short, over-long or misaligned attribute of a known
// type is an error naming the attribute, never a read past it. Unknown attribute types are
// skipped (newer kernels add attributes). Free functions over spans, so they can be fed
// arbitrary bytes by unit tests and fuzzers.
#pragma once

#include <linux/netlink.h>

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace nodeagent {

using Bytes = std::span<const uint8_t>;

// What a known attribute must look like.
enum class AttrKind : uint8_t {
  kU8,      // exactly 1 byte
  kU16,     // exactly 2 bytes (host or network order: the parser knows)
  kU32,     // exactly 4 bytes
  kU64,     // exactly 8 bytes
  kString,  // NUL-terminated within its payload, at most maxLen bytes with the NUL
  kNested,  // attributes; checked again when parsed with its own policy
  kBinary,  // between minLen and maxLen bytes
};

struct AttrRule {
  uint16_t type = 0;
  AttrKind kind = AttrKind::kBinary;
  uint16_t minLen = 0;  // kBinary only
  uint16_t maxLen = 0;  // kBinary, kString (0: no limit)
  const char* name = "";
};

// A policy: the rules of one attribute space ("IPVS service", "conntrack tuple"), named
// in errors.
class AttrPolicy {
 public:
  AttrPolicy(const char* space, std::initializer_list<AttrRule> rules);
  const AttrRule* find(uint16_t type) const;
  const char* space() const { return space_; }
  uint16_t maxType() const { return maxType_; }

 private:
  const char* space_;
  std::vector<AttrRule> rules_;  // indexed by type; kind unset (name empty) = unknown
  uint16_t maxType_ = 0;
};

// The attributes of one space after checking: payloads by type (last one wins, as in the
// kernel's own parser). Accessors return false / empty when the attribute is absent; a
// present attribute always has the length its rule promises.
class Attrs {
 public:
  bool has(uint16_t type) const { return type < slots_.size() && slots_[type].present; }
  Bytes payload(uint16_t type) const { return has(type) ? slots_[type].bytes : Bytes{}; }
  uint8_t u8(uint16_t type, uint8_t otherwise = 0) const;
  uint16_t u16(uint16_t type, uint16_t otherwise = 0) const;     // host order as sent
  uint16_t be16(uint16_t type, uint16_t otherwise = 0) const;    // network order -> host
  uint32_t u32(uint16_t type, uint32_t otherwise = 0) const;
  uint32_t be32(uint16_t type, uint32_t otherwise = 0) const;
  uint64_t u64(uint16_t type, uint64_t otherwise = 0) const;
  uint64_t be64(uint16_t type, uint64_t otherwise = 0) const;
  std::string str(uint16_t type) const;  // without the NUL

 private:
  friend Result<Attrs> parseAttrs(Bytes, const AttrPolicy&);
  struct Slot {
    bool present = false;
    Bytes bytes;
  };
  std::vector<Slot> slots_;
};

// Checks and indexes a run of attributes (a message's attribute area or a nest's payload).
[[nodiscard]] Result<Attrs> parseAttrs(Bytes bytes, const AttrPolicy& policy);

// One netlink message from a span: checks that nlmsg_len covers the header, lies within
// the span and leaves room for a fixed family header of `familyHeader` bytes (genlmsghdr,
// nfgenmsg, ifaddrmsg, ...). Returns the whole message (nlmsg_len bytes).
[[nodiscard]] Result<Bytes> netlinkMessage(Bytes bytes, size_t familyHeader, std::string_view what);
// A copy of the message's header (callers have checked it with netlinkMessage; a copy
// because a fuzzer's bytes need not be aligned).
nlmsghdr netlinkHeader(Bytes message);
// The family header of a checked message, and the attributes after it (aligned).
Bytes netlinkFamilyHeader(Bytes message, size_t familyHeader);
Bytes netlinkAttributes(Bytes message, size_t familyHeader);

}  // namespace nodeagent
