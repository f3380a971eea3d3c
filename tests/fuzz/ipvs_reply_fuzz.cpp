// IPVS generic netlink replies: service dumps, destination dumps, the timeouts reply, and
// the generic netlink controller's family reply.
#include <sys/socket.h>

#include "ipvs/messages.h"
#include "tests/fuzz/fuzz.h"

using namespace nodeagent;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::forEachMessage(data, size, [](Bytes m) {
    (void)ipvs::parseServiceMessage(m);
    (void)ipvs::parseDestMessage(m, AF_INET);
    (void)ipvs::parseDestMessage(m, AF_INET6);
    (void)ipvs::parseTimeoutsMessage(m);
    (void)ipvs::parseFamilyMessage(m, "IPVS");
  });
  return 0;
}
