// Byte-for-byte checks of the rtnetlink builders behind VipManager, and its reply parsers
// on valid and malformed replies. Expected bytes are written out by hand from
// <linux/rtnetlink.h> numbers, independent of libnl.
#include "ipvs/rtnl_messages.h"

#include <gtest/gtest.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <cstring>

#include "tests/common/tlv_writer.h"

namespace nodeagent::ipvs::rtnl {
namespace {

using Buf = std::vector<uint8_t>;

using Writer = nodeagent::testing::TlvWriter;

template <class FamilyHeader>
Writer header(uint16_t type, uint16_t flags, const FamilyHeader& fh) {
  Writer w;
  nlmsghdr h{};
  h.nlmsg_type = type;
  h.nlmsg_flags = flags;
  w.raw(&h, sizeof h);
  w.raw(&fh, sizeof fh);
  w.pad();
  return w;
}

Buf done(const Writer& w) { return w.message(); }

Address addr(const char* s) { return *Address::parse(s); }

TEST(RtnlMessages, AddIpv4Address) {
  ifaddrmsg ifa{};
  ifa.ifa_family = AF_INET;
  ifa.ifa_prefixlen = 32;
  ifa.ifa_index = 7;
  auto w = header(RTM_NEWADDR, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE, ifa);
  uint8_t a[4] = {10, 96, 0, 10};
  w.attr(IFA_LOCAL, a, 4);
  w.attr(IFA_ADDRESS, a, 4);
  EXPECT_EQ(buildAddress(true, 7, addr("10.96.0.10")), done(w));
}

TEST(RtnlMessages, DeleteIpv6AddressHasNoDad) {
  ifaddrmsg ifa{};
  ifa.ifa_family = AF_INET6;
  ifa.ifa_prefixlen = 128;
  ifa.ifa_flags = IFA_F_NODAD;
  ifa.ifa_index = 3;
  auto w = header(RTM_DELADDR, NLM_F_REQUEST, ifa);
  auto a = addr("fd00::10");
  w.attr(IFA_LOCAL, a.bytes.data(), 16);
  w.attr(IFA_ADDRESS, a.bytes.data(), 16);
  EXPECT_EQ(buildAddress(false, 3, a), done(w));
}

TEST(RtnlMessages, NewDummyAndLinkQueries) {
  ifinfomsg ifi{};
  ifi.ifi_flags = IFF_UP;
  ifi.ifi_change = IFF_UP;
  auto w = header(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL, ifi);
  w.attr(IFLA_IFNAME, "nodeagent-ipvs0", 16);
  size_t n = w.nestStart(IFLA_LINKINFO);
  w.attr(IFLA_INFO_KIND, "dummy", 6);
  w.nestEnd(n);
  EXPECT_EQ(buildNewDummy("nodeagent-ipvs0"), done(w));

  ifinfomsg get{};
  auto g = header(RTM_GETLINK, NLM_F_REQUEST, get);
  g.attr(IFLA_IFNAME, "eth0", 5);
  EXPECT_EQ(buildGetLink("eth0"), done(g));

  ifinfomsg del{};
  del.ifi_index = 9;
  EXPECT_EQ(buildDelLink(9), done(header(RTM_DELLINK, NLM_F_REQUEST, del)));

  ifaddrmsg dump{};
  EXPECT_EQ(buildDumpAddresses(), done(header(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, dump)));
}

Buf linkReply(int ifindex, const char* name, size_t nameLen, const char* kind) {
  ifinfomsg ifi{};
  ifi.ifi_index = ifindex;
  auto w = header(RTM_NEWLINK, 0, ifi);
  uint32_t mtu = 1500;
  w.attr(IFLA_MTU, &mtu, 4);
  w.attr(IFLA_IFNAME, name, nameLen);
  if (kind) {
    size_t n = w.nestStart(IFLA_LINKINFO);
    w.attr(IFLA_INFO_KIND, kind, strlen(kind) + 1);
    w.nestEnd(n);
  }
  return done(w);
}

TEST(RtnlMessages, ParseLink) {
  auto l = parseLinkMessage(linkReply(7, "nodeagent-ipvs0", 16, "dummy"));
  ASSERT_TRUE(l) << l.error().message();
  EXPECT_EQ(l->ifindex, 7);
  EXPECT_EQ(l->name, "nodeagent-ipvs0");
  EXPECT_EQ(l->kind, "dummy");
  auto plain = parseLinkMessage(linkReply(1, "lo", 3, nullptr));
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->kind, "");
}

TEST(RtnlMessages, ParseLinkRejectsMalformed) {
  auto expectError = [](const Buf& b, const std::string& mention) {
    auto r = parseLinkMessage(b);
    ASSERT_FALSE(r) << "accepted; expected " << mention;
    EXPECT_NE(r.error().message().find(mention), std::string::npos) << r.error().message();
  };
  expectError(linkReply(7, "eth0", 4, nullptr), "IFLA_IFNAME");                     // no NUL
  expectError(linkReply(7, "a-name-longer-than-ifnamsiz", 28, nullptr), "IFLA_IFNAME");
  expectError(linkReply(0, "eth0", 5, nullptr), "interface index 0");
  Buf b = linkReply(7, "eth0", 5, "dummy");
  b.resize(b.size() - 4);  // cut: nlmsg_len now exceeds the bytes
  expectError(b, "outside");
  Buf wrongType = linkReply(7, "eth0", 5, nullptr);
  wrongType[4] = RTM_NEWADDR;
  expectError(wrongType, "type");
  // IFLA_INFO_KIND without its NUL inside the nest.
  ifinfomsg ifi{};
  ifi.ifi_index = 7;
  auto w = header(RTM_NEWLINK, 0, ifi);
  size_t n = w.nestStart(IFLA_LINKINFO);
  w.attr(IFLA_INFO_KIND, "dumm", 4);
  w.nestEnd(n);
  expectError(done(w), "IFLA_INFO_KIND");
}

Buf addrReply(uint8_t family, int ifindex, uint16_t type, const void* a, size_t len) {
  ifaddrmsg ifa{};
  ifa.ifa_family = family;
  ifa.ifa_index = static_cast<uint32_t>(ifindex);
  auto w = header(RTM_NEWADDR, 0, ifa);
  w.attr(type, a, len);
  return done(w);
}

TEST(RtnlMessages, ParseAddress) {
  uint8_t v4[4] = {10, 96, 0, 10};
  auto a = parseAddressMessage(addrReply(AF_INET, 7, IFA_LOCAL, v4, 4));
  ASSERT_TRUE(a) << a.error().message();
  EXPECT_EQ(a->ifindex, 7);
  EXPECT_EQ(a->address.toString(), "10.96.0.10");
  auto v6 = addr("fd00::10");
  auto b = parseAddressMessage(addrReply(AF_INET6, 3, IFA_ADDRESS, v6.bytes.data(), 16));  // IPv6: no IFA_LOCAL
  ASSERT_TRUE(b) << b.error().message();
  EXPECT_EQ(b->address, v6);
}

TEST(RtnlMessages, ParseAddressRejectsMalformed) {
  uint8_t v4[4] = {10, 96, 0, 10};
  auto expectError = [](const Buf& b, const std::string& mention) {
    auto r = parseAddressMessage(b);
    ASSERT_FALSE(r) << "accepted; expected " << mention;
    EXPECT_NE(r.error().message().find(mention), std::string::npos) << r.error().message();
  };
  expectError(addrReply(AF_INET, 7, IFA_LOCAL, v4, 3), "IFA_LOCAL");
  expectError(addrReply(AF_INET6, 7, IFA_ADDRESS, v4, 4), "4 address bytes");
  auto v6 = addr("fd00::10");
  expectError(addrReply(AF_INET, 7, IFA_LOCAL, v6.bytes.data(), 16), "16 address bytes");
  expectError(addrReply(AF_PACKET, 7, IFA_LOCAL, v4, 4), "family");
  expectError(addrReply(AF_INET, 7, IFA_LABEL, "lo", 3), "address bytes");  // no address at all
  Buf cut = addrReply(AF_INET, 7, IFA_LOCAL, v4, 4);
  cut.resize(18);
  uint32_t len = 18;
  std::memcpy(cut.data(), &len, 4);
  expectError(cut, "family header");
}

}  // namespace
}  // namespace nodeagent::ipvs::rtnl
