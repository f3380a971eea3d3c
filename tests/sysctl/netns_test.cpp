// Namespaced keys for real, in a fresh network namespace (and a private mount namespace
// whose /proc/sys/{vm,fs,kernel} are covered by tmpfs, so a bug cannot reach the host's
// global keys). The kernel's own normalisation, rejections and read-only keys are seen
// here and nowhere else. Needs root; fails (does not skip) without it.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>

#include "core/state_store.h"
#include "common/fd.h"
#include "common/files.h"
#include "sysctl/module.h"
#include "tests/sysctl/null_output.h"

namespace nodeagent::sysctl {
namespace {

namespace fs = std::filesystem;

std::string kernel(const std::string& key) {
  std::string path = "/proc/sys/";
  for (char c : key) path.push_back(c == '.' ? '/' : c);
  return readFile(path).value_or("<unreadable>");
}

std::string sysctlN(const std::string& key) {
  std::string out;
  FILE* p = ::popen(("sysctl -n " + key + " 2>&1").c_str(), "r");
  char buf[256];
  while (p && fgets(buf, sizeof buf, p)) out += buf;
  if (p) ::pclose(p);
  return normalize(out);
}

void writeKernel(const std::string& key, const std::string& v) {
  std::string path = "/proc/sys/";
  for (char c : key) path.push_back(c == '.' ? '/' : c);
  FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_TRUE(f) << path;
  std::fputs(v.c_str(), f);
  std::fclose(f);
}

class SysctlNetns : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_EQ(::geteuid(), 0u) << "the netns tier needs root";
    ASSERT_EQ(::unshare(CLONE_NEWNS), 0) << strerror(errno);
    ASSERT_EQ(::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), 0) << strerror(errno);
    for (const char* d : {"/proc/sys/vm", "/proc/sys/fs", "/proc/sys/kernel"})
      ASSERT_EQ(::mount("tmpfs", d, "tmpfs", 0, "size=1m"), 0) << d << ": " << strerror(errno);
  }

  void SetUp() override {
    // A fresh network namespace per test: every test starts from the kernel's defaults.
    ASSERT_EQ(::unshare(CLONE_NEWNET), 0) << strerror(errno);
    ASSERT_FALSE(detectInitialNetns());
    char tmpl[] = "/tmp/nodeagent-sysctl-netns-XXXXXX";
    root_ = ::mkdtemp(tmpl);
    fs::create_directories(root_ + "/sys/module/nf_conntrack/parameters");
  }
  void TearDown() override { fs::remove_all(root_); }

  std::unique_ptr<SysctlModule> makeModule(Config c) {
    c.profile = "none";
    core::ModuleContext ctx{.store = &store_, .dryRun = false, .stateDir = root_ + "/state", .trigger = {}};
    ModuleOptions o{.procRoot = "/proc",
                    .sysRoot = root_ + "/sys",
                    .dropInPath = root_ + "/sysctl.d/90-nodeagent.conf",
                    .initialNetns = detectInitialNetns(),
                    .conntrackStats = true};
    return std::make_unique<SysctlModule>(ctx, o, c);
  }
  static KeySpec key(std::string k, std::string v, Mode m = Mode::kExact) {
    bool numeric = isNumericValue(v);
    return {std::move(k), std::move(v), m, "test", "config", numeric};
  }
  Json keyState(const std::string& k) const {
    Json keys = store_.get("sysctl")->state.details.get("keys");
    for (const auto& s : keys.asArray())
      if (s.get("key").asString() == k) return s;
    return Json();
  }
  Json details() const { return store_.get("sysctl")->state.details; }

  std::string root_;
  core::StateStore store_;
};

Config namespacedKeys() {
  Config c;
  for (auto [k, v, m] : std::vector<std::tuple<std::string, std::string, Mode>>{
           {"net.core.somaxconn", "32768", Mode::kMin},
           {"net.ipv4.tcp_max_syn_backlog", "8096", Mode::kMin},
           {"net.ipv4.tcp_tw_reuse", "1", Mode::kExact},
           {"net.ipv4.tcp_slow_start_after_idle", "0", Mode::kExact},
           {"net.ipv4.tcp_rmem", "4096 87380 16777216", Mode::kMin},
           {"net.ipv4.tcp_wmem", "4096 87380 16777216", Mode::kMin},
           {"net.ipv4.ip_local_reserved_ports", "30000-32767", Mode::kExact},
           {"net.netfilter.nf_conntrack_tcp_timeout_established", "86400", Mode::kExact},
           {"net.netfilter.nf_conntrack_tcp_timeout_close_wait", "3600", Mode::kExact}})
    c.keys.push_back({k, v, m, "test", "config", isNumericValue(v)});
  return c;
}

TEST_F(SysctlNetns, ApplyReadBackDriftRevert) {
  std::string origSomaxconn = normalize(kernel("net.core.somaxconn"));
  std::string origRmem = normalize(kernel("net.ipv4.tcp_rmem"));
  std::string origTw = normalize(kernel("net.ipv4.tcp_tw_reuse"));
  std::string origEst = normalize(kernel("net.netfilter.nf_conntrack_tcp_timeout_established"));
  ASSERT_NE(origSomaxconn, "32768");
  ASSERT_NE(kernel("net.ipv4.tcp_rmem").find('\t'), std::string::npos);  // the kernel prints tabs

  auto m = makeModule(namespacedKeys());
  ASSERT_TRUE(m->reconcile({.initial = true}));
  auto s = store_.get("sysctl")->state;
  EXPECT_EQ(s.health, core::Health::kHealthy) << s.summary;
  EXPECT_EQ(details().get("keys_in_sync").asInt(), 9) << s.summary;
  // Read back through the kernel, with procps as an independent reader.
  EXPECT_EQ(sysctlN("net.core.somaxconn"), "32768");
  EXPECT_EQ(sysctlN("net.ipv4.tcp_tw_reuse"), "1");
  EXPECT_EQ(sysctlN("net.ipv4.tcp_slow_start_after_idle"), "0");
  EXPECT_EQ(sysctlN("net.ipv4.ip_local_reserved_ports"), "30000-32767");
  EXPECT_EQ(sysctlN("net.netfilter.nf_conntrack_tcp_timeout_established"), "86400");
  EXPECT_EQ(sysctlN("net.netfilter.nf_conntrack_tcp_timeout_close_wait"), "3600");
  // min mode, element-wise: the kernel's larger maximum stays, the rest is raised.
  EXPECT_TRUE(satisfies({"net.ipv4.tcp_rmem", "4096 87380 16777216", Mode::kMin}, sysctlN("net.ipv4.tcp_rmem")))
      << sysctlN("net.ipv4.tcp_rmem");
  auto dropIn = readFile(root_ + "/sysctl.d/90-nodeagent.conf");
  ASSERT_TRUE(dropIn);
  EXPECT_NE(dropIn->find("net.core.somaxconn = 32768\n"), std::string::npos);

  // Drift injected by writing the file directly; the next pass restores it.
  writeKernel("net.core.somaxconn", "100\n");
  writeKernel("net.ipv4.tcp_tw_reuse", "0\n");
  ASSERT_TRUE(m->reconcile({.resync = true}));
  EXPECT_EQ(sysctlN("net.core.somaxconn"), "32768");
  EXPECT_EQ(sysctlN("net.ipv4.tcp_tw_reuse"), "1");
  EXPECT_EQ(details().get("drift_events").asInt(), 2);
  EXPECT_EQ(details().get("drift_restored").asInt(), 2);

  // A second, quiet pass writes nothing and counts nothing.
  ASSERT_TRUE(m->reconcile({.resync = true}));
  EXPECT_EQ(details().get("drift_events").asInt(), 2);

  // Revert restores the originals through the kernel and removes the drop-in.
  NullOutput out;
  auto r = m->call({.command = "revert"}, out);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->get("exit_code").asInt(), 0) << r->dump();
  EXPECT_EQ(sysctlN("net.core.somaxconn"), origSomaxconn);
  EXPECT_EQ(sysctlN("net.ipv4.tcp_rmem"), origRmem);
  EXPECT_EQ(sysctlN("net.ipv4.tcp_tw_reuse"), origTw);
  EXPECT_EQ(sysctlN("net.netfilter.nf_conntrack_tcp_timeout_established"), origEst);
  EXPECT_FALSE(pathExists(root_ + "/sysctl.d/90-nodeagent.conf"));
}

TEST_F(SysctlNetns, HostLevelKeysReportedPerKeyNotFailed) {
  Config c = namespacedKeys();
  // Ask for a change, so a write is attempted even where the current value would do.
  auto bump = [](const std::string& k) { return std::to_string(std::stoull(normalize(kernel(k))) + 1); };
  c.keys.push_back(key("net.core.rmem_max", bump("net.core.rmem_max")));
  c.keys.push_back(key("net.netfilter.nf_conntrack_max", bump("net.netfilter.nf_conntrack_max")));
  c.keys.push_back(key("net.core.netdev_max_backlog", "16384", Mode::kMin));
  c.keys.push_back(key("net.ipv4.neigh.default.gc_thresh3", "65536", Mode::kMin));
  auto m = makeModule(c);
  auto rc = m->reconcile({});
  ASSERT_TRUE(rc) << rc.error().message();
  for (const char* k : {"net.core.rmem_max", "net.netfilter.nf_conntrack_max", "net.core.netdev_max_backlog",
                        "net.ipv4.neigh.default.gc_thresh3"}) {
    EXPECT_EQ(keyState(k).get("state").asString(), "not-in-netns") << k << ": " << keyState(k).dump();
  }
  EXPECT_NE(keyState("net.core.rmem_max").get("message").asString().find("not writable in this network namespace"),
            std::string::npos);
  EXPECT_NE(keyState("net.core.netdev_max_backlog").get("message").asString().find("not present in this network namespace"),
            std::string::npos);
  auto s = store_.get("sysctl")->state;
  EXPECT_EQ(s.health, core::Health::kHealthy) << s.summary;
  EXPECT_EQ(s.conditions.front().reason, "NamespaceLimited");
  EXPECT_NE(s.summary.find("4 host-level keys not writable in this network namespace"), std::string::npos) << s.summary;
  EXPECT_EQ(details().get("keys_in_sync").asInt(), 9);  // the others were applied
  NullOutput out;
  auto a = m->call({.command = "apply"}, out);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->get("exit_code").asInt(), 0);  // namespace limits are not failures
}

TEST_F(SysctlNetns, KernelRejectionIsAFailureOfThatKeyOnly) {
  Config c = namespacedKeys();
  c.keys.push_back(key("net.ipv4.tcp_tw_reuse", "7"));                  // out of range 0..2
  c.keys.push_back(key("net.ipv4.ip_local_reserved_ports", "banana"));  // not a port list
  auto m = makeModule(c);
  ASSERT_TRUE(m->reconcile({}));
  EXPECT_EQ(keyState("net.ipv4.tcp_tw_reuse").get("state").asString(), "rejected") << keyState("net.ipv4.tcp_tw_reuse").dump();
  EXPECT_EQ(keyState("net.ipv4.ip_local_reserved_ports").get("state").asString(), "rejected");
  EXPECT_EQ(sysctlN("net.core.somaxconn"), "32768");  // the others went on
  auto s = store_.get("sysctl")->state;
  EXPECT_EQ(s.health, core::Health::kDegraded);
  EXPECT_EQ(s.conditions.front().reason, "KeysFailed");
  NullOutput out;
  auto a = m->call({.command = "apply"}, out);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->get("exit_code").asInt(), 1);
  EXPECT_EQ(a->get("failed").asInt(), 2);
}

TEST_F(SysctlNetns, ConntrackFillMatchesKernelAndWarns) {
  ASSERT_EQ(std::system("ip link set lo up && nft -f - <<'EOF'\n"
                        "table inet natest {\n chain o {\n  type filter hook output priority 0;\n  ct state new accept\n }\n}\n"
                        "EOF"),
            0);
  // 3000 UDP flows from one socket to 3000 ports: more than 1% of the table on this host.
  Fd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int port = 20000; port < 23000; ++port) {
    a.sin_port = htons(port);
    ::sendto(s.get(), "x", 1, 0, reinterpret_cast<sockaddr*>(&a), sizeof a);
  }
  Config c;
  c.fillWarningPercent = 1;
  auto m = makeModule(c);
  ASSERT_TRUE(m->reconcile({}));
  auto ct = details().get("conntrack");
  ASSERT_TRUE(ct.get("available").asBool()) << ct.dump();
  uint64_t count = std::stoull(normalize(*readFile("/proc/sys/net/netfilter/nf_conntrack_count")));
  EXPECT_EQ(uint64_t(ct.get("count").asInt()), count);
  EXPECT_GE(count, 3000u);
  EXPECT_EQ(uint64_t(ct.get("max").asInt()), std::stoull(normalize(*readFile("/proc/sys/net/netfilter/nf_conntrack_max"))));
  EXPECT_FALSE(ct.get("cpus").asArray().empty());
  bool pressure = false;
  auto state = store_.get("sysctl")->state;
  for (const auto& cond : state.conditions)
    if (cond.type == "ConntrackPressure") pressure = cond.status;
  uint64_t max = uint64_t(ct.get("max").asInt());
  EXPECT_EQ(pressure, count * 100 >= max) << ct.dump();
  NullOutput out;
  auto st = m->call({.command = "stats"}, out);
  ASSERT_TRUE(st) << st.error().message();
  EXPECT_EQ(st->get("items").size(), ct.get("cpus").size());
}

}  // namespace
}  // namespace nodeagent::sysctl
