// NLMSG_ERROR replies (ACKs with extended-ACK TLVs) as every netlink family returns them:
// IPVS, ctnetlink, nf_tables batches, rtnetlink.
#include <cerrno>

#include "common/netlink_socket.h"
#include "tests/fuzz/fuzz.h"

using namespace nodeagent;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::forEachMessage(data, size, [](Bytes m) {
    auto ack = decodeNetlinkError(m);
    // The extended-ACK text is a part of the message (or the decoder's own note on a
    // truncated one): never longer than what the kernel sent.
    FUZZ_CHECK(ack.error == EBADMSG || ack.message.size() < m.size() || ack.message.front() == '(');
  });
  return 0;
}
