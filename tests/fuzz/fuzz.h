// Helpers shared by the fuzz targets (tests/fuzz/*_fuzz.cpp). Each target defines
// LLVMFuzzerTestOneInput; tests/fuzz/CMakeLists.txt builds it with libFuzzer (clang) or,
// in the normal build, into the replay runner of the unit tier.
#pragma once

#include <linux/netlink.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/log.h"
#include "common/netlink_attr.h"

namespace nodeagent::fuzz {

// A property the code under test promises was broken: report and abort, so libFuzzer
// keeps the input and the replay test fails.
[[noreturn]] inline void violated(const char* what, const char* file, int line) {
  std::fprintf(stderr, "fuzz property violated at %s:%d: %s\n", file, line, what);
  std::abort();
}
#define FUZZ_CHECK(cond) \
  do {                   \
    if (!(cond)) ::nodeagent::fuzz::violated(#cond, __FILE__, __LINE__); \
  } while (0)

// Library code logs bad input at debug level; keep the fuzzer's output to its own lines.
inline void quietLogs() {
  static bool done = [] {
    log::setLevel(spdlog::level::off);
    return true;
  }();
  (void)done;
}

inline std::string_view text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Walks `data` as a netlink receive buffer does (NLMSG_OK / NLMSG_NEXT, as NetlinkSocket
// hands replies to parsers) and calls `parse` with each message copied into a heap block
// of exactly nlmsg_len bytes: a parser that reads past its message's end is an ASan report.
inline void forEachMessage(const uint8_t* data, size_t size, const std::function<void(Bytes)>& parse) {
  // recv() fills an aligned buffer; copy so the headers are aligned as the kernel's are.
  std::vector<uint8_t> buf(data, data + size);
  // NLMSG_OK / NLMSG_NEXT spelled out (the macros compare signed with unsigned).
  size_t off = 0;
  while (size - off >= sizeof(nlmsghdr)) {
    const auto* h = reinterpret_cast<const nlmsghdr*>(buf.data() + off);
    size_t len = h->nlmsg_len;
    if (len < sizeof(nlmsghdr) || len > size - off) break;
    std::vector<uint8_t> one(buf.begin() + static_cast<std::ptrdiff_t>(off),
                             buf.begin() + static_cast<std::ptrdiff_t>(off + len));
    parse(Bytes(one.data(), one.size()));
    off += NLMSG_ALIGN(len);
    if (off > size) break;
  }
}

}  // namespace nodeagent::fuzz
