// Runs inside the QEMU VM (real IPVS): programs the kernel through NetlinkServiceTable and
// reads it back both through our dump and through ipvsadm, an independent client.
#include <gtest/gtest.h>
#include <linux/ip_vs.h>
#include <sys/socket.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "tests/ipvs/shell.h"

#include "ipvs/netlink_service_table.h"
#include "ipvs/vip_manager.h"

namespace nodeagent::ipvs {
namespace {

std::string run(const std::string& cmd) { return nodeagent::testing::shellOutput(cmd); }

Address addr(const char* s) { return *Address::parse(s); }

class NetlinkVm : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(std::system("ipvsadm -C"), 0);
    auto t = NetlinkServiceTable::open();
    ASSERT_TRUE(t) << t.error().message();
    table_ = std::move(*t);
  }
  std::unique_ptr<NetlinkServiceTable> table_;
};

TEST_F(NetlinkVm, ProgramsWhatIpvsadmReadsBack) {
  Service web{ServiceKey{AF_INET, Protocol::kTcp, addr("10.96.0.10"), 80, 0}, "wrr", 0, 0, 0};
  Service dns{ServiceKey{AF_INET, Protocol::kUdp, addr("10.96.0.53"), 53, 0}, "rr", 0, 0, 0};
  Service v6{ServiceKey{AF_INET6, Protocol::kTcp, addr("fd00::10"), 443, 0}, "sh",
             IP_VS_SVC_F_PERSISTENT, 300, 0};
  Service fwm{ServiceKey{AF_INET, Protocol::kTcp, {}, 0, 7}, "lc", 0, 0, 0};
  Service sctp{ServiceKey{AF_INET, Protocol::kSctp, addr("10.96.0.11"), 3868, 0}, "mh", 0, 0, 0};
  std::vector<Op> ops = {
      {Op::Type::kAddService, web, {}},
      {Op::Type::kAddService, dns, {}},
      {Op::Type::kAddService, v6, {}},
      {Op::Type::kAddService, fwm, {}},
      {Op::Type::kAddService, sctp, {}},
      {Op::Type::kAddDest, web, Destination{{addr("10.244.1.5"), 8080}, Forward::kMasq, 3, 0, 0}},
      {Op::Type::kAddDest, web, Destination{{addr("10.244.2.6"), 8080}, Forward::kMasq, 1, 100, 10}},
      {Op::Type::kAddDest, dns, Destination{{addr("10.244.1.7"), 53}, Forward::kMasq, 1, 0, 0}},
      {Op::Type::kAddDest, v6, Destination{{addr("fd00:1::5"), 8443}, Forward::kTunnel, 2, 0, 0}},
      {Op::Type::kAddDest, fwm, Destination{{addr("10.244.3.3"), 0}, Forward::kDirect, 4, 0, 0}},
      {Op::Type::kAddDest, sctp, Destination{{addr("10.244.3.4"), 3868}, Forward::kMasq, 1, 0, 0}},
  };
  auto res = table_->apply(ops);
  ASSERT_TRUE(res) << res.error().message();
  for (size_t i = 0; i < res->size(); ++i) EXPECT_TRUE((*res)[i].ok()) << (*res)[i].message;

  std::string got = run("ipvsadm -Ln");
  std::cout << got;
  EXPECT_NE(got.find("TCP  10.96.0.10:80 wrr\n  -> 10.244.1.5:8080              Masq    3"), std::string::npos);
  EXPECT_NE(got.find("  -> 10.244.2.6:8080              Masq    1"), std::string::npos);
  EXPECT_NE(got.find("UDP  10.96.0.53:53 rr\n  -> 10.244.1.7:53"), std::string::npos);
  EXPECT_NE(got.find("TCP  [fd00::10]:443 sh persistent 300\n  -> [fd00:1::5]:8443"), std::string::npos);
  EXPECT_NE(got.find("Tunnel  2"), std::string::npos);
  EXPECT_NE(got.find("FWM  7 lc\n  -> 10.244.3.3:0                 Route   4"), std::string::npos);
  EXPECT_NE(got.find("SCTP 10.96.0.11:3868 mh"), std::string::npos);
  std::string th = run("ipvsadm -Ln --thresholds -t 10.96.0.10:80");
  EXPECT_NE(th.find("10.244.2.6:8080              100        10"), std::string::npos) << th;

  // Our own dump agrees with what we asked for.
  auto listed = table_->list(true);
  ASSERT_TRUE(listed) << listed.error().message();
  ASSERT_EQ(listed->size(), 5u);
  for (const auto& s : *listed) {
    for (const auto& want : {web, dns, v6, fwm, sctp}) {
      if (want.key == s.service.key) {
        EXPECT_EQ(s.service, want) << want.key.toString();
      }
    }
    if (s.service.key == web.key) {
      ASSERT_EQ(s.dests.size(), 2u);
    }
  }

  // Adding again is "already there"; deleting twice is "already gone"; both succeed.
  std::vector<Op> again = {{Op::Type::kAddService, web, {}},
                           {Op::Type::kDelDest, web, Destination{{addr("10.244.2.6"), 8080}}},
                           {Op::Type::kDelDest, web, Destination{{addr("10.244.2.6"), 8080}}},
                           {Op::Type::kEditDest, web, Destination{{addr("10.244.1.5"), 8080}, Forward::kMasq, 0, 0, 0}},
                           {Op::Type::kDelService, dns, {}},
                           {Op::Type::kDelService, dns, {}}};
  res = table_->apply(again);
  ASSERT_TRUE(res);
  for (const auto& r : *res) EXPECT_TRUE(r.ok()) << r.message;
  got = run("ipvsadm -Ln");
  EXPECT_EQ(got.find("10.244.2.6"), std::string::npos);
  EXPECT_EQ(got.find("10.96.0.53"), std::string::npos);
  EXPECT_NE(got.find("10.244.1.5:8080              Masq    0"), std::string::npos) << got;

  // A real error (unknown scheduler, destination on a missing service) names the op.
  Service bad = web;
  bad.key.port = 81;
  bad.scheduler = "nosuch";
  std::vector<Op> fails = {{Op::Type::kAddService, bad, {}},
                           {Op::Type::kAddDest, dns, Destination{{addr("10.244.1.7"), 53}}}};
  res = table_->apply(fails);
  ASSERT_TRUE(res);
  EXPECT_EQ((*res)[0].error, ENOENT) << (*res)[0].message;
  EXPECT_NE((*res)[0].message.find("ipvsadm -A -t 10.96.0.10:81 -s nosuch"), std::string::npos);
  EXPECT_EQ((*res)[1].error, ESRCH) << (*res)[1].message;
}

TEST_F(NetlinkVm, TimeoutsRoundTrip) {
  ASSERT_TRUE(table_->setTimeouts(Timeouts{86400, 120, 300}));
  auto t = table_->timeouts();
  ASSERT_TRUE(t) << t.error().message();
  EXPECT_EQ(t->tcp, 86400u);
  EXPECT_EQ(t->tcpFin, 120u);
  EXPECT_EQ(t->udp, 300u);
  EXPECT_NE(run("ipvsadm -L --timeout").find("86400 120 300"), std::string::npos);
}

TEST_F(NetlinkVm, LargeBatchAndDump) {
  std::vector<Op> ops;
  for (int i = 0; i < 2000; ++i) {
    Service s{ServiceKey{AF_INET, Protocol::kTcp, {}, static_cast<uint16_t>(1000 + i), 0}, "rr", 0, 0, 0};
    s.key.address = addr("10.97.0.1");
    ops.push_back({Op::Type::kAddService, s, {}});
    for (int d = 0; d < 3; ++d)
      ops.push_back({Op::Type::kAddDest, s, Destination{{addr(("10.245.0." + std::to_string(d + 1)).c_str()), 80}}});
  }
  auto res = table_->apply(ops);
  ASSERT_TRUE(res) << res.error().message();
  for (const auto& r : *res) ASSERT_TRUE(r.ok()) << r.message;
  auto listed = table_->list(true);
  ASSERT_TRUE(listed) << listed.error().message();
  ASSERT_EQ(listed->size(), 2000u);
  size_t dests = 0;
  for (const auto& s : *listed) dests += s.dests.size();
  EXPECT_EQ(dests, 6000u);
  EXPECT_EQ(run("ipvsadm -Ln | grep -c -- '->'"), "6001\n");  // plus the header line
}

// VipManager over rtnetlink (NetlinkSocket and the checked rtnetlink parsers) on a real
// dummy interface: creates and owns it, binds and unbinds VIPs, leaves a foreign one alone.
TEST(VipManagerVm, BindsVipsOnItsOwnDummyInterface) {
  auto dir = std::filesystem::temp_directory_path() / "vip-vm-test";
  std::filesystem::create_directories(dir);
  VipManager vips("nodeagent-vt0", (dir / "interface").string());
  auto r = vips.sync({addr("10.96.0.10"), addr("10.96.0.11"), addr("fd00::10")}, true);
  ASSERT_TRUE(r) << r.error().message();
  std::string out = run("ip addr show dev nodeagent-vt0");
  EXPECT_NE(out.find("10.96.0.10/32"), std::string::npos) << out;
  EXPECT_NE(out.find("10.96.0.11/32"), std::string::npos) << out;
  EXPECT_NE(out.find("fd00::10/128"), std::string::npos) << out;
  // A restart (new manager, full read) finds what is bound and only removes the extra one;
  // its full read also checks, from the kernel's IFLA_INFO_KIND, that the link is a dummy.
  VipManager again("nodeagent-vt0", (dir / "interface").string());
  r = again.sync({addr("10.96.0.10"), addr("fd00::10")}, true);
  ASSERT_TRUE(r) << r.error().message();
  out = run("ip addr show dev nodeagent-vt0");
  EXPECT_EQ(out.find("10.96.0.11"), std::string::npos) << out;
  EXPECT_NE(out.find("10.96.0.10/32"), std::string::npos) << out;
  ASSERT_TRUE(again.remove());
  EXPECT_EQ(run("ip link show nodeagent-vt0 >/dev/null 2>&1 && echo present || echo gone"), "gone\n");

  // An interface of that name that the agent did not create is never touched.
  ASSERT_EQ(std::system("ip link add foreign-vt0 type dummy"), 0);
  VipManager foreign("foreign-vt0", (dir / "foreign-interface").string());
  r = foreign.sync({addr("10.96.0.12")}, true);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("not created by nodeagent"), std::string::npos) << r.error().message();
  EXPECT_EQ(run("ip addr show dev foreign-vt0").find("10.96.0.12"), std::string::npos);
  ASSERT_EQ(std::system("ip link del foreign-vt0"), 0);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace nodeagent::ipvs
