// Real-kernel conntrack tests in a fresh network namespace this test creates (unshare):
// real TCP and UDP flows over loopback, a DNAT rule from a VIP to a local "real server",
// fill level and per-CPU stats against the kernel's own files and the conntrack tool.
// Needs root; fails (does not skip) without it.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "common/fd.h"
#include "common/files.h"
#include "netfilter/conntrack.h"

namespace nodeagent::netfilter {
namespace {

std::string run(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ::pclose(p);
  return out;
}

int countLines(const std::string& text, const std::string& needle) {
  int n = 0;
  size_t pos = 0;
  while ((pos = text.find('\n', pos)) != std::string::npos) ++pos, ++n;
  if (needle.empty()) return n;
  n = 0;
  pos = 0;
  while ((pos = text.find(needle, pos)) != std::string::npos) ++pos, ++n;
  return n;
}

uint64_t kernelCount() {
  auto t = readFile("/proc/sys/net/netfilter/nf_conntrack_count");
  return t ? std::stoull(*t) : ~0ull;
}

// A bound socket and its port.
struct Bound {
  Fd fd;
  uint16_t port = 0;
};

Bound bindLocal(int family, int type) {
  Bound b;
  b.fd = Fd(::socket(family, type | SOCK_CLOEXEC, 0));
  sockaddr_storage ss{};
  socklen_t len;
  if (family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof *a;
  } else {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_addr = in6addr_loopback;
    len = sizeof *a;
  }
  if (::bind(b.fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) return b;
  if (type == SOCK_STREAM) ::listen(b.fd.get(), 16);
  len = sizeof ss;
  ::getsockname(b.fd.get(), reinterpret_cast<sockaddr*>(&ss), &len);
  b.port = ntohs(family == AF_INET ? reinterpret_cast<sockaddr_in*>(&ss)->sin_port
                                   : reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  return b;
}

sockaddr_storage addr(const std::string& ip, uint16_t port, socklen_t& len) {
  sockaddr_storage ss{};
  if (ip.find(':') == std::string::npos) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    ::inet_pton(AF_INET, ip.c_str(), &a->sin_addr);
    len = sizeof *a;
  } else {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    ::inet_pton(AF_INET6, ip.c_str(), &a->sin6_addr);
    len = sizeof *a;
  }
  return ss;
}

// Sends one datagram from a fresh socket: one new conntrack entry per call.
bool udpFlow(const std::string& ip, uint16_t port) {
  socklen_t len;
  auto ss = addr(ip, port, len);
  Fd s(::socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  return ::sendto(s.get(), "x", 1, 0, reinterpret_cast<sockaddr*>(&ss), len) == 1;
}

class ConntrackNetns : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_EQ(::geteuid(), 0u) << "the netns tier needs root";
    ASSERT_EQ(::unshare(CLONE_NEWNET), 0) << "unshare(CLONE_NEWNET): " << strerror(errno);
    ASSERT_EQ(std::system("ip link set lo up && ip route add local 10.96.0.0/16 dev lo"), 0);
  }

  void SetUp() override {
    udpServer_ = bindLocal(AF_INET, SOCK_DGRAM);
    otherUdp_ = bindLocal(AF_INET, SOCK_DGRAM);
    tcpServer_ = bindLocal(AF_INET, SOCK_STREAM);
    udp6_ = bindLocal(AF_INET6, SOCK_DGRAM);
    ASSERT_NE(udpServer_.port, 0);
    ASSERT_NE(tcpServer_.port, 0);
    ASSERT_NE(udp6_.port, 0);
    // The service: VIP 10.96.0.10 port 53 (udp and tcp), DNAT-ed to the local servers.
    std::string rules = "table inet natest {\n chain out {\n  type nat hook output priority -100;\n"
                        "  ip daddr 10.96.0.10 udp dport 53 dnat ip to 127.0.0.1:" + std::to_string(udpServer_.port) + "\n"
                        "  ip daddr 10.96.0.10 tcp dport 53 dnat ip to 127.0.0.1:" + std::to_string(tcpServer_.port) + "\n }\n"
                        // A ct expression makes the kernel track both families in this netns.
                        " chain track {\n  type filter hook output priority 0;\n  ct state new accept\n }\n}\n";
    ASSERT_TRUE(writeFileAtomic(tmp_, rules));
    ASSERT_EQ(std::system(("nft delete table inet natest 2>/dev/null; nft -f " + tmp_).c_str()), 0);
    ASSERT_EQ(std::system("conntrack -F 2>/dev/null; true"), 0);
  }
  void TearDown() override { ::unlink(tmp_.c_str()); }

  Bound udpServer_, otherUdp_, tcpServer_, udp6_;
  Fd tcpClient_, tcpAccepted_;
  std::string tmp_ = "/tmp/nodeagent-ct-test-" + std::to_string(::getpid()) + ".nft";

  void openTcpToVip() {
    socklen_t len;
    auto ss = addr("10.96.0.10", 53, len);
    tcpClient_ = Fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    ASSERT_EQ(::connect(tcpClient_.get(), reinterpret_cast<sockaddr*>(&ss), len), 0) << strerror(errno);
    tcpAccepted_ = Fd(::accept(tcpServer_.fd.get(), nullptr, nullptr));
    ASSERT_TRUE(tcpAccepted_.valid());
  }
};

TEST_F(ConntrackNetns, FillAndStatsMatchTheKernel) {
  openTcpToVip();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(udpFlow("10.96.0.10", 53));
  ASSERT_TRUE(udpFlow("::1", udp6_.port));
  auto ct = Conntrack::open();
  ASSERT_TRUE(ct) << ct.error().message();
  auto st = ct->stats();
  ASSERT_TRUE(st) << st.error().message();
  EXPECT_EQ(st->fill.count, kernelCount());
  EXPECT_EQ(st->fill.count, 5u);
  auto maxText = readFile("/proc/sys/net/netfilter/nf_conntrack_max");
  ASSERT_TRUE(maxText);
  EXPECT_EQ(st->fill.max, std::stoull(*maxText));
  EXPECT_GT(st->fill.percent(), 0.0);
  // One stats record per possible CPU, as `conntrack -S` prints.
  EXPECT_EQ(int(st->cpus.size()), countLines(run("conntrack -S 2>/dev/null"), "cpu="));
  EXPECT_FALSE(st->cpus.empty());
  auto all = ct->list();
  ASSERT_TRUE(all);
  EXPECT_EQ(all->size(), 5u);
}

TEST_F(ConntrackNetns, DeleteByOrigDstRemovesUdpKeepsTcp) {
  openTcpToVip();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(udpFlow("10.96.0.10", 53));
  ASSERT_TRUE(udpFlow("127.0.0.1", otherUdp_.port));
  ASSERT_EQ(kernelCount(), 5u);
  auto ct = Conntrack::open();
  ASSERT_TRUE(ct);
  auto n = ct->deleteByOrigDst({IPPROTO_UDP, "10.96.0.10", 53});
  ASSERT_TRUE(n) << n.error().message();
  EXPECT_EQ(*n, 3u);
  EXPECT_EQ(kernelCount(), 2u);
  // The independent reader agrees: the TCP flow to the VIP and the other UDP flow remain.
  std::string listing = run("conntrack -L 2>/dev/null");
  EXPECT_EQ(countLines(listing, "tcp "), 1) << listing;
  EXPECT_EQ(countLines(listing, "dport=53 "), 1) << listing;
  EXPECT_EQ(countLines(listing, "dport=" + std::to_string(otherUdp_.port) + " "), 1) << listing;
  // Nothing left to match: zero, not an error.
  auto again = ct->deleteByOrigDst({IPPROTO_UDP, "10.96.0.10", 53});
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, 0u);
}

TEST_F(ConntrackNetns, DeleteByNatDstRemovesFlowsToTheRealServer) {
  openTcpToVip();
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(udpFlow("10.96.0.10", 53));
  ASSERT_TRUE(udpFlow("127.0.0.1", otherUdp_.port));
  auto ct = Conntrack::open();
  ASSERT_TRUE(ct);
  // The real server behind the VIP is 127.0.0.1:udpServer_.port.
  auto n = ct->deleteByNatDst({IPPROTO_UDP, "127.0.0.1", udpServer_.port});
  ASSERT_TRUE(n) << n.error().message();
  EXPECT_EQ(*n, 2u);
  std::string listing = run("conntrack -L -p udp 2>/dev/null");
  EXPECT_EQ(countLines(listing, "udp "), 1) << listing;
  EXPECT_EQ(countLines(run("conntrack -L -p tcp 2>/dev/null"), "tcp "), 1);
}

TEST_F(ConntrackNetns, Ipv6Flows) {
  ASSERT_TRUE(udpFlow("::1", udp6_.port));
  ASSERT_TRUE(udpFlow("::1", udp6_.port));
  ASSERT_TRUE(udpFlow("127.0.0.1", otherUdp_.port));
  auto ct = Conntrack::open();
  ASSERT_TRUE(ct);
  auto v6 = ct->list(AF_INET6);
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->size(), 2u);
  auto n = ct->deleteByOrigDst({IPPROTO_UDP, "::1", udp6_.port});
  ASSERT_TRUE(n) << n.error().message();
  EXPECT_EQ(*n, 2u);
  EXPECT_EQ(countLines(run("conntrack -L -f ipv6 2>/dev/null"), "udp "), 0);
  EXPECT_EQ(kernelCount(), 1u);
}

TEST_F(ConntrackNetns, BadAddressIsAnError) {
  auto ct = Conntrack::open();
  ASSERT_TRUE(ct);
  EXPECT_FALSE(ct->deleteByOrigDst({IPPROTO_UDP, "10.96.0", 53}));
}

}  // namespace
}  // namespace nodeagent::netfilter
