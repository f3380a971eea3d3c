// rtnetlink replies behind the VIP manager: RTM_NEWLINK (the dummy interface) and
// RTM_NEWADDR (its addresses, from a dump of every address of the node).
#include <sys/socket.h>

#include "ipvs/rtnl_messages.h"
#include "tests/fuzz/fuzz.h"

using namespace nodeagent;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::forEachMessage(data, size, [](Bytes m) {
    (void)ipvs::rtnl::parseLinkMessage(m);
    auto a = ipvs::rtnl::parseAddressMessage(m);
    if (a) FUZZ_CHECK(a->address.family == AF_INET || a->address.family == AF_INET6);
  });
  return 0;
}
