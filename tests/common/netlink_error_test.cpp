// decodeNetlinkError: the ACK decoding every netlink family's replies go through.
#include <gtest/gtest.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <vector>

#include "common/netlink_socket.h"

namespace nodeagent {
namespace {

std::vector<uint8_t> errorMessage(int code) {
  std::vector<uint8_t> b(NLMSG_LENGTH(sizeof(nlmsgerr)));
  auto* h = reinterpret_cast<nlmsghdr*>(b.data());
  h->nlmsg_len = static_cast<uint32_t>(b.size());
  h->nlmsg_type = NLMSG_ERROR;
  nlmsgerr e{};
  e.error = code;
  std::memcpy(NLMSG_DATA(h), &e, sizeof e);
  return b;
}

NetlinkAck decode(const std::vector<uint8_t>& b) { return decodeNetlinkError(Bytes(b.data(), b.size())); }

TEST(NetlinkError, NegatedErrnoIsTheError) {
  EXPECT_EQ(decode(errorMessage(0)).error, 0);
  EXPECT_EQ(decode(errorMessage(-EEXIST)).error, EEXIST);
  EXPECT_EQ(decode(errorMessage(-4095)).error, 4095);
}

// Found by the netlink_ack fuzz target (corpus/netlink_ack/regress-error-int-min): negating
// INT_MIN was undefined behaviour, and a positive code became a negative "errno".
TEST(NetlinkError, ErrorCodeOutsideErrnoRangeIsBadMessage) {
  for (int code : {INT_MIN, -4096, 1, INT_MAX}) {
    auto ack = decode(errorMessage(code));
    EXPECT_EQ(ack.error, EBADMSG) << code;
    EXPECT_NE(ack.message.find("invalid error code"), std::string::npos) << code;
  }
}

TEST(NetlinkError, TruncatedMessageIsBadMessage) {
  auto b = errorMessage(-EPERM);
  b.resize(NLMSG_HDRLEN + 4);
  reinterpret_cast<nlmsghdr*>(b.data())->nlmsg_len = NLMSG_HDRLEN + 4;
  EXPECT_EQ(decode(b).error, EBADMSG);
}

}  // namespace
}  // namespace nodeagent
