// The IPVS proxy's nftables table, for real, in a fresh network namespace of this process.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>

#include <cstdio>
#include <string>

#include "tests/ipvs/shell.h"

#include "netfilter/nft_proxy_table.h"

namespace nodeagent::netfilter {
namespace {

std::string run(const std::string& cmd) { return nodeagent::testing::shellOutput(cmd); }

NftService svc(const char* ip, uint8_t proto, uint16_t port, bool masq) {
  NftService s;
  s.family = std::string(ip).find(':') != std::string::npos ? AF_INET6 : AF_INET;
  ::inet_pton(s.family, ip, s.addr.data());
  s.protocol = proto;
  s.port = port;
  s.masquerade = masq;
  return s;
}

TEST(NftProxyTable, BuildsTableAndUpdatesElementsInANetns) {
  ASSERT_EQ(::unshare(CLONE_NEWNET), 0) << "needs root (CAP_SYS_ADMIN) for a network namespace";
  // A table of someone else: never touched.
  ASSERT_EQ(std::system("nft add table inet other && nft add chain inet other c"), 0);
  NftProxyTable t("nodeagent-ipvs", 0x4000);
  std::set<NftService> want = {svc("10.96.0.10", IPPROTO_TCP, 80, true), svc("10.96.0.10", IPPROTO_UDP, 53, false),
                               svc("fd00::10", IPPROTO_TCP, 443, false)};
  auto r = t.sync(want);
  ASSERT_TRUE(r) << r.error().message();
  std::string out = run("nft list table inet nodeagent-ipvs");
  std::cout << out;
  EXPECT_NE(out.find("10.96.0.10 . tcp . 80"), std::string::npos);
  EXPECT_NE(out.find("10.96.0.10 . udp . 53"), std::string::npos);
  EXPECT_NE(out.find("fd00::10 . tcp . 443"), std::string::npos);
  EXPECT_NE(out.find("masquerade"), std::string::npos);
  EXPECT_NE(out.find("meta mark set meta mark | 0x00004000"), std::string::npos);
  EXPECT_NE(out.find("drop"), std::string::npos);

  // An update is element changes only: rules keep their handles.
  std::string handles = run("nft -a list chain inet nodeagent-ipvs input | grep -o 'handle [0-9]*'");
  want.erase(svc("10.96.0.10", IPPROTO_UDP, 53, false));
  want.insert(svc("10.96.0.11", IPPROTO_TCP, 8080, true));
  r = t.sync(want);
  ASSERT_TRUE(r) << r.error().message();
  out = run("nft list table inet nodeagent-ipvs");
  EXPECT_EQ(out.find("udp . 53"), std::string::npos);
  EXPECT_NE(out.find("10.96.0.11 . tcp . 8080"), std::string::npos);
  EXPECT_EQ(run("nft -a list chain inet nodeagent-ipvs input | grep -o 'handle [0-9]*'"), handles);

  // Incremental updates: one service's elements (and its VIP when it was the last one).
  std::vector<NftChange> changes = {{svc("10.96.0.11", IPPROTO_TCP, 8080, false), true},  // masquerade off
                                    {svc("fd00::10", IPPROTO_TCP, 443, false), false},    // gone, and its VIP
                                    {svc("10.96.0.12", IPPROTO_UDP, 53, true), true}};    // new, new VIP
  r = t.update(changes);
  ASSERT_TRUE(r) << r.error().message();
  out = run("nft list table inet nodeagent-ipvs");
  EXPECT_EQ(out.find("fd00::10"), std::string::npos) << out;
  EXPECT_NE(out.find("10.96.0.12 . udp . 53"), std::string::npos) << out;
  EXPECT_EQ(run("nft list set inet nodeagent-ipvs masq4 | grep -c '10.96.0.11 . tcp . 8080'"), "0\n");
  EXPECT_EQ(run("nft list set inet nodeagent-ipvs svc4 | grep -c '10.96.0.11 . tcp . 8080'"), "1\n");
  EXPECT_NE(run("nft list set inet nodeagent-ipvs masq4").find("10.96.0.12 . udp . 53"), std::string::npos);
  EXPECT_NE(run("nft list set inet nodeagent-ipvs vips4").find("10.96.0.12"), std::string::npos);
  EXPECT_EQ(run("nft -a list chain inet nodeagent-ipvs input | grep -o 'handle [0-9]*'"), handles);
  // One of two services of a VIP goes: the VIP stays; the last one goes: so does the VIP.
  r = t.update(std::vector<NftChange>{{svc("10.96.0.10", IPPROTO_UDP, 5353, false), true},
                                      {svc("10.96.0.10", IPPROTO_TCP, 80, true), false}});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(run("nft list set inet nodeagent-ipvs vips4 | grep -cE '10\\.96\\.0\\.10([^0-9]|$)'"), "1\n");
  r = t.update(std::vector<NftChange>{{svc("10.96.0.10", IPPROTO_UDP, 5353, false), false},
                                      {svc("10.96.0.10", IPPROTO_TCP, 80, true), false}});  // already gone: no-op
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(run("nft list table inet nodeagent-ipvs | grep -cE '10\\.96\\.0\\.10([^0-9]|$)'"), "0\n");
  want = {svc("10.96.0.11", IPPROTO_TCP, 8080, false), svc("10.96.0.12", IPPROTO_UDP, 53, true)};

  // A new process (restart) rebuilds the table atomically, without duplicating rules.
  NftProxyTable again("nodeagent-ipvs", 0x4000);
  ASSERT_TRUE(again.sync(want));
  EXPECT_EQ(run("nft list chain inet nodeagent-ipvs masq | grep -c masquerade"), "1\n");
  EXPECT_NE(run("nft list tables").find("table inet other"), std::string::npos);
  ASSERT_TRUE(again.remove());
  EXPECT_EQ(run("nft list tables").find("nodeagent-ipvs"), std::string::npos);
  EXPECT_NE(run("nft list tables").find("table inet other"), std::string::npos);
}

// The Kubernetes source's flags: ClusterIP traffic SNAT-ed only from outside the cluster
// CIDR (masqx4 and a `saddr !=` rule), and a NodePort on a node address that is not a VIP
// (no entry in vips4, so the node's other ports stay open).
TEST(NftProxyTable, ClusterCidrMasqueradeAndNodeAddresses) {
  ASSERT_EQ(::unshare(CLONE_NEWNET), 0) << "needs root (CAP_SYS_ADMIN) for a network namespace";
  NftProxyTable::Prefix cidr{AF_INET, {}, 16};
  ::inet_pton(AF_INET, "10.244.0.0", cidr.addr.data());
  NftProxyTable t("nodeagent-ipvs", 0x4000, {cidr});
  NftService cluster = svc("10.96.0.20", IPPROTO_TCP, 80, false);
  cluster.masqueradeOutside = true;
  NftService nodePort = svc("192.168.1.10", IPPROTO_TCP, 30080, true);
  nodePort.vip = false;
  ASSERT_TRUE(t.sync({cluster, nodePort}));
  std::string pre = run("nft list chain inet nodeagent-ipvs mark-pre");
  std::cout << pre;
  EXPECT_NE(pre.find("ip saddr != 10.244.0.0/16"), std::string::npos);
  EXPECT_NE(run("nft list set inet nodeagent-ipvs masqx4").find("10.96.0.20 . tcp . 80"), std::string::npos);
  EXPECT_EQ(run("nft list set inet nodeagent-ipvs masq4").find("10.96.0.20"), std::string::npos);
  EXPECT_NE(run("nft list set inet nodeagent-ipvs masq4").find("192.168.1.10 . tcp . 30080"), std::string::npos);
  EXPECT_NE(run("nft list set inet nodeagent-ipvs svc4").find("192.168.1.10 . tcp . 30080"), std::string::npos);
  EXPECT_EQ(run("nft list set inet nodeagent-ipvs vips4").find("192.168.1.10"), std::string::npos);
  EXPECT_NE(run("nft list set inet nodeagent-ipvs vips4").find("10.96.0.20"), std::string::npos);
  // masquerade_all switched on: the element moves from masqx4 to masq4.
  NftService all = cluster;
  all.masquerade = true;
  std::vector<NftChange> changes = {{all, true}, {nodePort, false}};
  ASSERT_TRUE(t.update(changes));
  EXPECT_EQ(run("nft list set inet nodeagent-ipvs masqx4").find("10.96.0.20"), std::string::npos);
  EXPECT_NE(run("nft list set inet nodeagent-ipvs masq4").find("10.96.0.20 . tcp . 80"), std::string::npos);
  EXPECT_EQ(run("nft list set inet nodeagent-ipvs svc4").find("192.168.1.10"), std::string::npos);
  EXPECT_NE(run("nft list set inet nodeagent-ipvs vips4").find("10.96.0.20"), std::string::npos);
  ASSERT_TRUE(t.remove());
}

// A rebuild far larger than one page of the batch (libnftnl's nftnl_batch moves a message
// that crosses a page's limit to a new page): 6,000 services, 18,000 elements, in one
// transaction, all acknowledged, all in the kernel.
TEST(NftProxyTable, LargeRebuildSpansBatchPages) {
  ASSERT_EQ(::unshare(CLONE_NEWNET), 0) << "needs root (CAP_SYS_ADMIN) for a network namespace";
  std::set<NftService> want;
  for (int i = 0; i < 3000; ++i) {
    std::string v4 = "10.98." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1);
    std::string v6 = "fd00::" + std::to_string(i + 1);
    want.insert(svc(v4.c_str(), IPPROTO_TCP, static_cast<uint16_t>(1000 + i % 7), true));
    want.insert(svc(v6.c_str(), IPPROTO_UDP, 53, false));
  }
  NftProxyTable t("nodeagent-ipvs", 0x4000);
  auto r = t.sync(want);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(run("nft list set inet nodeagent-ipvs svc4 | grep -o 'tcp . 100[0-6]' | wc -l"), "3000\n");
  EXPECT_EQ(run("nft list set inet nodeagent-ipvs svc6 | grep -o 'udp . 53' | wc -l"), "3000\n");
  EXPECT_EQ(run("nft list set inet nodeagent-ipvs masq4 | grep -o 'tcp . 100[0-6]' | wc -l"), "3000\n");
  // And all of it goes again in one update.
  std::vector<NftChange> gone;
  for (const auto& s : want) gone.push_back({s, false});
  r = t.update(gone);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(run("nft list set inet nodeagent-ipvs svc4 | grep -c 'tcp . 100'"), "0\n");
  ASSERT_TRUE(t.remove());
}

}  // namespace
}  // namespace nodeagent::netfilter
