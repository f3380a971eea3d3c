// IPVS generic netlink replies: service dumps, destination dumps, the timeouts reply.
#include <sys/socket.h>

#include "ipvs/messages.h"
#include "tests/fuzz/fuzz.h"

using namespace nodeagent;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::forEachMessage(data, size, [](const nlmsghdr* h) {
    (void)ipvs::parseServiceMessage(h);
    (void)ipvs::parseDestMessage(h, AF_INET);
    (void)ipvs::parseDestMessage(h, AF_INET6);
    (void)ipvs::parseTimeoutsMessage(h);
  });
  return 0;
}
