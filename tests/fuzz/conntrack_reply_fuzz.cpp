// ctnetlink replies: global stats, per-CPU stats, entry dumps.
#include "netfilter/conntrack_msg.h"
#include "tests/fuzz/fuzz.h"

using namespace nodeagent;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::forEachMessage(data, size, [](Bytes m) {
    (void)netfilter::msg::parseGlobalStats(m);
    (void)netfilter::msg::parseCpuStats(m);
    auto e = netfilter::msg::parseEntry(m);
    // An entry read from a dump is deleted by its tuple: the request must build.
    if (e) FUZZ_CHECK(netfilter::msg::buildDeleteEntry(1, *e).size() >= NLMSG_HDRLEN);
  });
  return 0;
}
