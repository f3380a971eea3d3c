// The IPVS proxy's nftables table, for real, in a fresh network namespace of this process.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
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
  // The mark rule and the two hairpin rules (IPv4, IPv6), once each.
  EXPECT_EQ(run("nft list chain inet nodeagent-ipvs masq | grep -c masquerade"), "3\n");
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

// TCP connect from `src` to `dst`:`port` in this namespace within a second: 0 when it is
// established, ETIMEDOUT when the SYN was dropped (TCP retries a dropped SYN instead of
// failing), else the errno.
int connectFrom(const char* src, const char* dst, uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  ::inet_pton(AF_INET, src, &a.sin_addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return errno;
  a.sin_port = htons(port);
  ::inet_pton(AF_INET, dst, &a.sin_addr);
  int rc = 0;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    rc = errno;
    if (rc == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      socklen_t len = sizeof rc;
      if (::poll(&p, 1, 1000) != 1) rc = ETIMEDOUT;
      else ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &rc, &len);
    }
  }
  ::close(fd);
  return rc;
}

NftPrefix prefix(const char* ip, int len) {
  NftPrefix p{AF_INET, {}, len};
  ::inet_pton(AF_INET, ip, p.addr.data());
  return p;
}

// loadBalancerSourceRanges for real: a listener on the load balancer address, connections
// from an allowed source get through, from any other source are dropped; another port of
// the same address is not filtered by them. Then the ranges change and go.
TEST(NftProxyTable, LoadBalancerSourceRangesDropOtherSources) {
  ASSERT_EQ(::unshare(CLONE_NEWNET), 0) << "needs root (CAP_SYS_ADMIN) for a network namespace";
  ASSERT_EQ(std::system("ip link set lo up && ip addr add 203.0.113.20/32 dev lo && ip addr add 10.1.0.1/32 dev lo && "
                        "ip addr add 10.1.0.200/32 dev lo && ip addr add 10.2.0.1/32 dev lo"),
            0);
  int listeners[2];
  uint16_t ports[2] = {80, 81};
  for (int i = 0; i < 2; ++i) {
    listeners[i] = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(listeners[i], SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(ports[i]);
    ::inet_pton(AF_INET, "203.0.113.20", &a.sin_addr);
    ASSERT_EQ(::bind(listeners[i], reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ASSERT_EQ(::listen(listeners[i], 16), 0);
  }
  NftProxyTable t("nodeagent-ipvs", 0x4000);
  NftService lb = svc("203.0.113.20", IPPROTO_TCP, 80, false);
  lb.firewall = true;
  lb.allowedSources = {prefix("10.1.0.0", 25), prefix("192.0.2.0", 24)};
  NftService other = svc("203.0.113.20", IPPROTO_TCP, 81, false);
  ASSERT_TRUE(t.sync({lb, other}));
  std::cout << run("nft list table inet nodeagent-ipvs");
  EXPECT_EQ(connectFrom("10.1.0.1", "203.0.113.20", 80), 0);
  EXPECT_EQ(connectFrom("10.1.0.200", "203.0.113.20", 80), ETIMEDOUT);  // outside the /25
  EXPECT_EQ(connectFrom("10.2.0.1", "203.0.113.20", 80), ETIMEDOUT);
  EXPECT_EQ(connectFrom("10.2.0.1", "203.0.113.20", 81), 0);  // another service of the address
  // The ranges change (one update: the old ranges go, the new one comes).
  NftService moved = lb;
  moved.allowedSources = {prefix("10.2.0.0", 16)};
  ASSERT_TRUE(t.update(std::vector<NftChange>{{moved, true}}));
  EXPECT_EQ(connectFrom("10.1.0.1", "203.0.113.20", 80), ETIMEDOUT);
  EXPECT_EQ(connectFrom("10.2.0.1", "203.0.113.20", 80), 0);
  // Firewall on with no range of its family: nothing gets through.
  NftService none = lb;
  none.allowedSources = {};
  ASSERT_TRUE(t.update(std::vector<NftChange>{{none, true}}));
  EXPECT_EQ(connectFrom("10.2.0.1", "203.0.113.20", 80), ETIMEDOUT);
  // The ranges removed from the service: everyone again, and the sets are empty.
  ASSERT_TRUE(t.update(std::vector<NftChange>{{svc("203.0.113.20", IPPROTO_TCP, 80, false), true}}));
  EXPECT_EQ(connectFrom("10.1.0.200", "203.0.113.20", 80), 0);
  EXPECT_EQ(run("nft list set inet nodeagent-ipvs fw4").find("203.0.113.20"), std::string::npos);
  EXPECT_EQ(run("nft list set inet nodeagent-ipvs fwallow4").find("203.0.113.20"), std::string::npos);
  // A full sync from scratch gives the same elements as the updates.
  ASSERT_TRUE(t.sync({lb, other}, true));
  EXPECT_EQ(connectFrom("10.1.0.1", "203.0.113.20", 80), 0);
  EXPECT_EQ(connectFrom("10.2.0.1", "203.0.113.20", 80), ETIMEDOUT);
  for (int fd : listeners) ::close(fd);
  ASSERT_TRUE(t.remove());
}

// Hairpin elements: an endpoint shared by two services stays in loop4 until the last of
// them lets it go; the masquerade rule for it is in the postrouting chain.
TEST(NftProxyTable, HairpinEndpointsAreCountedAcrossServices) {
  ASSERT_EQ(::unshare(CLONE_NEWNET), 0) << "needs root (CAP_SYS_ADMIN) for a network namespace";
  NftEndpoint ep{{}, 8080};
  ::inet_pton(AF_INET, "10.244.1.5", ep.addr.data());
  NftService a = svc("10.96.0.30", IPPROTO_TCP, 80, false), b = svc("10.96.0.31", IPPROTO_TCP, 80, false);
  a.hairpin = {ep};
  b.hairpin = {ep};
  NftProxyTable t("nodeagent-ipvs", 0x4000);
  ASSERT_TRUE(t.sync({a, b}));
  std::string masq = run("nft list chain inet nodeagent-ipvs masq");
  std::cout << masq;
  EXPECT_NE(masq.find("ip daddr . meta l4proto . th dport . ip saddr @loop4 masquerade"), std::string::npos);
  auto loops = [] { return run("nft list set inet nodeagent-ipvs loop4 | grep -c '10.244.1.5 . tcp . 8080 . 10.244.1.5'"); };
  EXPECT_EQ(loops(), "1\n");
  ASSERT_TRUE(t.update(std::vector<NftChange>{{a, false}}));
  EXPECT_EQ(loops(), "1\n");  // b still has it
  NftService bare = b;
  bare.hairpin.clear();
  ASSERT_TRUE(t.update(std::vector<NftChange>{{bare, true}}));
  EXPECT_EQ(loops(), "0\n");
  ASSERT_TRUE(t.update(std::vector<NftChange>{{a, true}}));
  EXPECT_EQ(loops(), "1\n");
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
