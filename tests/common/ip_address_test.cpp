#include "common/ip_address.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

namespace nodeagent {
namespace {

TEST(IpLiteral, ParsesBothFamiliesAndRoundTrips) {
  std::array<uint8_t, 16> b{};
  EXPECT_EQ(parseIpLiteral("10.96.0.10", b), AF_INET);
  EXPECT_EQ(b[0], 10);
  EXPECT_EQ(b[3], 10);
  EXPECT_EQ(formatIpLiteral(AF_INET, b), "10.96.0.10");
  EXPECT_EQ(parseIpLiteral("fd00::1", b), AF_INET6);
  EXPECT_EQ(formatIpLiteral(AF_INET6, b), "fd00::1");
}

TEST(IpLiteral, RejectsWhatIsNotAnAddress) {
  std::array<uint8_t, 16> b{};
  EXPECT_EQ(parseIpLiteral("10.96.0.256", b), 0);
  EXPECT_EQ(parseIpLiteral("10.96.0.1/32", b), 0);
  EXPECT_EQ(parseIpLiteral("", b), 0);
  EXPECT_EQ(formatIpLiteral(0, b), "");
}

}  // namespace
}  // namespace nodeagent
