// Helpers shared by the fuzz targets (tests/fuzz/*_fuzz.cpp). Each target defines
// LLVMFuzzerTestOneInput; tests/fuzz/CMakeLists.txt builds it with libFuzzer (clang) or,
// in the normal build, into the replay runner of the unit tier.
#pragma once

#include <linux/netlink.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/log.h"

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
inline void forEachMessage(const uint8_t* data, size_t size, const std::function<void(const nlmsghdr*)>& parse) {
  // recv() fills an aligned buffer; copy so the headers are aligned as the kernel's are.
  auto buf = std::make_unique<uint8_t[]>(size + 1);
  std::memcpy(buf.get(), data, size);
  // NLMSG_OK / NLMSG_NEXT spelled out (the macros compare signed with unsigned).
  size_t off = 0;
  while (size - off >= sizeof(nlmsghdr)) {
    const auto* h = reinterpret_cast<const nlmsghdr*>(buf.get() + off);
    if (h->nlmsg_len < sizeof(nlmsghdr) || h->nlmsg_len > size - off) break;
    auto one = std::make_unique<uint8_t[]>(h->nlmsg_len);
    std::memcpy(one.get(), h, h->nlmsg_len);
    parse(reinterpret_cast<const nlmsghdr*>(one.get()));
    off += NLMSG_ALIGN(h->nlmsg_len);
    if (off > size) break;
  }
}

}  // namespace nodeagent::fuzz
