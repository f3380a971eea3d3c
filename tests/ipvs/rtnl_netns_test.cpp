// The rtnetlink path behind VipManager (builders, NetlinkSocket, checked parsers) against
// the real kernel, in a fresh network namespace of this process. The dummy interface type
// is missing on the CI kernel, so addresses go on the namespace's own loopback here; the
// VM tier runs VipManager itself on a dummy interface.
#include <gtest/gtest.h>
#include <linux/rtnetlink.h>
#include <sched.h>
#include <sys/socket.h>

#include <string>

#include "tests/ipvs/shell.h"

#include "common/netlink_socket.h"
#include "ipvs/rtnl_messages.h"

namespace nodeagent::ipvs::rtnl {
namespace {

std::string run(const std::string& cmd) { return nodeagent::testing::shellOutput(cmd); }

TEST(RtnlNetns, LinkLookupAddressDumpAddAndDelete) {
  ASSERT_EQ(::unshare(CLONE_NEWNET), 0) << "needs root (CAP_SYS_ADMIN) for a network namespace";
  auto sock = NetlinkSocket::open(NETLINK_ROUTE);
  ASSERT_TRUE(sock) << sock.error().message();

  LinkInfo lo;
  auto r = sock->query(buildGetLink("lo"), [&](Bytes m) -> Result<void> {
    auto l = parseLinkMessage(m);
    if (!l) return fail(l.error());
    lo = *l;
    return {};
  });
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(lo.name, "lo");
  EXPECT_GT(lo.ifindex, 0);

  // A missing interface keeps the kernel's errno (ENODEV), not a generic EINVAL.
  auto missing = sock->query(buildGetLink("nodeagent-none"), [](Bytes) -> Result<void> { return {}; });
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().errnoValue(), ENODEV) << missing.error().message();

  ASSERT_EQ(std::system("ip link set lo up"), 0);
  auto vip = *Address::parse("10.96.7.7");
  std::vector<std::vector<uint8_t>> add{buildAddress(true, lo.ifindex, vip)};
  auto acks = sock->transact(add);
  ASSERT_TRUE(acks) << acks.error().message();
  EXPECT_EQ((*acks)[0].error, 0) << (*acks)[0].message;
  EXPECT_NE(run("ip -4 addr show dev lo").find("10.96.7.7/32"), std::string::npos);

  std::vector<Address> found;
  r = sock->dump(buildDumpAddresses(), [&](Bytes m) -> Result<void> {
    auto a = parseAddressMessage(m);
    if (!a) return fail(a.error());
    if (a->ifindex == lo.ifindex) found.push_back(a->address);
    return {};
  });
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_NE(std::find(found.begin(), found.end(), vip), found.end());
  EXPECT_NE(std::find(found.begin(), found.end(), *Address::parse("127.0.0.1")), found.end());
  EXPECT_NE(std::find(found.begin(), found.end(), *Address::parse("::1")), found.end());

  std::vector<std::vector<uint8_t>> del{buildAddress(false, lo.ifindex, vip)};
  acks = sock->transact(del);
  ASSERT_TRUE(acks);
  EXPECT_EQ((*acks)[0].error, 0);
  EXPECT_EQ(run("ip -4 addr show dev lo").find("10.96.7.7"), std::string::npos);
  // Deleting it again: the kernel's own errno comes back in the ack.
  acks = sock->transact(del);
  ASSERT_TRUE(acks);
  EXPECT_EQ((*acks)[0].error, EADDRNOTAVAIL);
}

}  // namespace
}  // namespace nodeagent::ipvs::rtnl
