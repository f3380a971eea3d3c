// Global keys (vm.*, fs.*, kernel.*, the conntrack hashsize) against a fake /proc and /sys
// tree written by the test: apply, verify, persist, originals, revert, drift, dry run.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "core/state_store.h"
#include "common/files.h"
#include "sysctl/module.h"
#include "tests/sysctl/null_output.h"
#include "sysctl/tuner.h"

namespace nodeagent::sysctl {
namespace {

namespace fs = std::filesystem;

class FakeTree : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/nodeagent-sysctl-XXXXXX";
    root_ = ::mkdtemp(tmpl);
    proc_ = root_ + "/proc";
    sys_ = root_ + "/sys";
    put(proc_ + "/meminfo", "MemTotal:       16384000 kB\n");
    put(sys_ + "/devices/system/cpu/online", "0-7\n");  // 8 CPUs: conntrack max 262144
    // Every profile key exists with a kernel-like default, so only what we test differs.
    auto keys = *builtinProfile("large-cluster", ScaleInputs{.cpus = 8});
    KernelTree tree(proc_, sys_, true);
    for (const auto& k : keys) put(tree.pathOf(k.key), k.value + "\n");
    set("vm.max_map_count", "65530");
    set("fs.file-max", "9223372036854775807");  // above the minimum: left alone
    set("kernel.panic", "0");
    set("fs.inotify.max_user_watches", "8192");
    put(sys_ + "/module/nf_conntrack/parameters/hashsize", "16384\n");
    dropIn_ = root_ + "/etc/sysctl.d/90-nodeagent.conf";
    stateDir_ = root_ + "/state/sysctl";
  }
  void TearDown() override { fs::remove_all(root_); }

  static void put(const std::string& path, const std::string& text) {
    fs::create_directories(fs::path(path).parent_path());
    ASSERT_TRUE(writeFileAtomic(path, text));
  }
  std::string path(const std::string& key) const { return KernelTree(proc_, sys_, true).pathOf(key); }
  void set(const std::string& key, const std::string& v) { put(path(key), v + "\n"); }
  std::string get(const std::string& key) const { return normalize(readFile(path(key)).value_or("?")); }

  std::unique_ptr<SysctlModule> makeModule(Config c, bool dryRun = false) {
    core::ModuleContext ctx{.store = &store_, .dryRun = dryRun, .stateDir = stateDir_, .trigger = {}};
    ModuleOptions o{.procRoot = proc_, .sysRoot = sys_, .dropInPath = dropIn_, .initialNetns = true, .conntrackStats = false};
    return std::make_unique<SysctlModule>(ctx, o, c);
  }
  Json details() const { return store_.get("sysctl")->state.details; }
  Json keyState(const std::string& key) const {
    Json keys = details().get("keys");
    for (const auto& k : keys.asArray())
      if (k.get("key").asString() == key) return k;
    return Json();
  }

  std::string root_, proc_, sys_, dropIn_, stateDir_;
  core::StateStore store_;
};

TEST_F(FakeTree, PlanListsCurrentAndDesired) {
  Tuner t(KernelTree(proc_, sys_, true));
  auto keys = *builtinProfile("large-cluster", ScaleInputs{.cpus = 8});
  auto plan = t.plan(keys);
  std::map<std::string, PlanItem> by;
  for (auto& p : plan) by[p.spec.key] = p;
  EXPECT_EQ(by["vm.max_map_count"].action, Action::kSet);
  EXPECT_EQ(*by["vm.max_map_count"].current, "65530");
  EXPECT_EQ(by["vm.max_map_count"].target, "262144");
  EXPECT_EQ(by["fs.file-max"].action, Action::kNone);
  EXPECT_EQ(by["kernel.panic"].action, Action::kSet);
  EXPECT_EQ(by[std::string(kHashsizeKey)].target, "65536");
  EXPECT_EQ(by["net.core.somaxconn"].action, Action::kNone);
  EXPECT_EQ(get("vm.max_map_count"), "65530");  // planning changed nothing
}

TEST_F(FakeTree, ApplyVerifiesPersistsAndSavesOriginalsOnce) {
  auto m = makeModule(Config{});
  ASSERT_TRUE(m->reconcile({.initial = true}));
  EXPECT_EQ(get("vm.max_map_count"), "262144");
  EXPECT_EQ(get("kernel.panic"), "10");
  EXPECT_EQ(get("fs.inotify.max_user_watches"), "524288");
  EXPECT_EQ(get("fs.file-max"), "9223372036854775807");
  EXPECT_EQ(normalize(*readFile(sys_ + "/module/nf_conntrack/parameters/hashsize")), "65536");
  auto s = store_.get("sysctl")->state;
  EXPECT_EQ(s.health, core::Health::kHealthy) << s.summary;
  EXPECT_EQ(details().get("keys_in_sync").asInt(), details().get("keys_total").asInt());

  // Drop-in: every in-sync sysctl with its reason; not the module parameter.
  auto dropIn = readFile(dropIn_);
  ASSERT_TRUE(dropIn);
  EXPECT_NE(dropIn->find("vm.max_map_count = 262144\n"), std::string::npos);
  EXPECT_NE(dropIn->find("fs.file-max = 9223372036854775807\n"), std::string::npos);
  EXPECT_NE(dropIn->find("# reboot 10 s after a panic"), std::string::npos);
  EXPECT_EQ(dropIn->find("hashsize"), std::string::npos);

  // Originals: only the keys changed, with their values before the first change.
  Originals o(stateDir_ + "/originals.json");
  ASSERT_TRUE(o.load());
  EXPECT_EQ(o.values().at("vm.max_map_count"), "65530");
  EXPECT_EQ(o.values().at("kernel.panic"), "0");
  EXPECT_EQ(o.values().at(std::string(kHashsizeKey)), "16384");
  EXPECT_FALSE(o.has("fs.file-max"));
  EXPECT_EQ(o.values().size(), 4u);

  // Someone changes a key; the module restores it, the first original stays.
  set("kernel.panic", "3");
  ASSERT_TRUE(m->reconcile({.resync = true}));
  EXPECT_EQ(get("kernel.panic"), "10");
  ASSERT_TRUE(o.load());
  EXPECT_EQ(o.values().at("kernel.panic"), "0");
}

TEST_F(FakeTree, HashsizeOnlyRaised) {
  put(sys_ + "/module/nf_conntrack/parameters/hashsize", "1048576\n");
  auto m = makeModule(Config{});
  ASSERT_TRUE(m->reconcile({}));
  EXPECT_EQ(normalize(*readFile(sys_ + "/module/nf_conntrack/parameters/hashsize")), "1048576");
}

TEST_F(FakeTree, DriftEnforceRestoresAndCounts) {
  auto m = makeModule(Config{});
  ASSERT_TRUE(m->reconcile({}));
  set("vm.max_map_count", "1000");
  set("vm.overcommit_memory", "0");
  ASSERT_TRUE(m->reconcile({.resync = true}));
  EXPECT_EQ(get("vm.max_map_count"), "262144");
  EXPECT_EQ(get("vm.overcommit_memory"), "1");
  EXPECT_EQ(details().get("drift_events").asInt(), 2);
  EXPECT_EQ(details().get("drift_restored").asInt(), 2);
  EXPECT_EQ(keyState("vm.max_map_count").get("drifts").asInt(), 1);
  EXPECT_EQ(store_.get("sysctl")->state.health, core::Health::kHealthy);
  // A quiet pass counts nothing more.
  ASSERT_TRUE(m->reconcile({.resync = true}));
  EXPECT_EQ(details().get("drift_events").asInt(), 2);
}

TEST_F(FakeTree, DriftReportLeavesValueAndDegrades) {
  Config c;
  c.driftMode = DriftMode::kReport;
  auto m = makeModule(c);
  ASSERT_TRUE(m->reconcile({}));
  set("kernel.panic", "0");
  ASSERT_TRUE(m->reconcile({.resync = true}));
  EXPECT_EQ(get("kernel.panic"), "0");
  EXPECT_EQ(keyState("kernel.panic").get("state").asString(), "drifted");
  auto s = store_.get("sysctl")->state;
  EXPECT_EQ(s.health, core::Health::kDegraded);
  EXPECT_EQ(s.conditions.front().reason, "Drifted");
  ASSERT_TRUE(m->reconcile({.resync = true}));  // counted once, not every pass
  EXPECT_EQ(details().get("drift_events").asInt(), 1);
  // The drop-in keeps the desired value, not the one someone else left.
  EXPECT_EQ(readFile(dropIn_)->find("kernel.panic = 0"), std::string::npos);
  EXPECT_NE(readFile(dropIn_)->find("kernel.panic = 10"), std::string::npos);
  // Raising a min key above its minimum is counted but needs no action.
  set("vm.max_map_count", "300000");
  ASSERT_TRUE(m->reconcile({.resync = true}));
  EXPECT_EQ(details().get("drift_events").asInt(), 2);
  EXPECT_EQ(get("vm.max_map_count"), "300000");
}

TEST_F(FakeTree, RevertRestoresOriginalsAndRemovesDropIn) {
  auto m = makeModule(Config{});
  ASSERT_TRUE(m->reconcile({}));
  ASSERT_TRUE(pathExists(dropIn_));
  NullOutput out;
  auto dry = m->call({.command = "revert", .dryRun = true}, out);
  ASSERT_TRUE(dry);
  EXPECT_EQ(dry->get("items").size(), 4u);
  EXPECT_EQ(get("vm.max_map_count"), "262144");  // dry run changed nothing
  auto r = m->call({.command = "revert"}, out);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->get("exit_code").asInt(), 0);
  EXPECT_EQ(get("vm.max_map_count"), "65530");
  EXPECT_EQ(get("kernel.panic"), "0");
  EXPECT_EQ(normalize(*readFile(sys_ + "/module/nf_conntrack/parameters/hashsize")), "16384");
  EXPECT_FALSE(pathExists(dropIn_));
  EXPECT_FALSE(pathExists(stateDir_ + "/originals.json"));
  // Reverted: the next pass does not re-apply, and says so.
  ASSERT_TRUE(m->reconcile({.resync = true}));
  EXPECT_EQ(get("vm.max_map_count"), "65530");
  EXPECT_EQ(store_.get("sysctl")->state.conditions.front().reason, "Reverted");
  // The marker survives a restart.
  auto m2 = makeModule(Config{});
  ASSERT_TRUE(m2->reconcile({}));
  EXPECT_EQ(get("vm.max_map_count"), "65530");
  // apply resumes.
  auto a = m2->call({.command = "apply"}, out);
  ASSERT_TRUE(a) << a.error().message();
  EXPECT_EQ(a->get("changed").asInt(), 4);
  EXPECT_EQ(get("vm.max_map_count"), "262144");
}

TEST_F(FakeTree, MissingKeyFailsAloneOthersApply) {
  fs::remove(path("kernel.softlockup_panic"));
  Config c;
  c.keys.push_back({"vm.dirty_ratio", "abc", Mode::kExact, "test", "config", false});
  set("vm.dirty_ratio", "20");
  auto m = makeModule(c);
  ASSERT_TRUE(m->reconcile({}));
  EXPECT_EQ(keyState("kernel.softlockup_panic").get("state").asString(), "absent");
  EXPECT_EQ(get("vm.max_map_count"), "262144");
  EXPECT_EQ(get("vm.dirty_ratio"), "abc");  // plain files take anything; the kernel would not
  auto s = store_.get("sysctl")->state;
  EXPECT_EQ(s.health, core::Health::kDegraded);
  EXPECT_EQ(s.conditions.front().reason, "KeysFailed");
  EXPECT_NE(s.summary.find("1 failed"), std::string::npos) << s.summary;
  NullOutput out;
  auto plan = m->call({.command = "plan"}, out);
  ASSERT_TRUE(plan);
  EXPECT_EQ(plan->get("errors").asInt(), 1);
}

TEST_F(FakeTree, DryRunChangesNothing) {
  auto m = makeModule(Config{}, /*dryRun=*/true);
  ASSERT_TRUE(m->reconcile({.dryRun = true}));
  EXPECT_EQ(get("vm.max_map_count"), "65530");
  EXPECT_FALSE(pathExists(dropIn_));
  EXPECT_FALSE(pathExists(stateDir_));
  EXPECT_EQ(keyState("vm.max_map_count").get("state").asString(), "pending");
  NullOutput out;
  EXPECT_FALSE(m->call({.command = "apply"}, out));  // the daemon itself runs --dry-run
}

TEST_F(FakeTree, ContributedKeysShowTheirSource) {
  Config c;
  c.contributed.push_back({"net.ipv4.vs.conntrack", "1", Mode::kExact, "IPVS keeps conntrack entries", "ipvs"});
  set("net.ipv4.vs.conntrack", "0");
  auto m = makeModule(c);
  NullOutput out;
  auto plan = m->call({.command = "plan"}, out);
  ASSERT_TRUE(plan);
  bool seen = false;
  for (const auto& item : plan->get("items").asArray())
    if (item.get("key").asString() == "net.ipv4.vs.conntrack") {
      seen = true;
      EXPECT_EQ(item.get("source").asString(), "ipvs");
      EXPECT_EQ(item.get("action").asString(), "set");
      EXPECT_EQ(item.get("note").asString(), "IPVS keeps conntrack entries");
    }
  EXPECT_TRUE(seen);
  ASSERT_TRUE(m->reconcile({}));
  EXPECT_EQ(get("net.ipv4.vs.conntrack"), "1");
}

}  // namespace
}  // namespace nodeagent::sysctl

namespace nodeagent::sysctl {
namespace {

// How a refusal is reported depends on where the agent runs.
TEST(KernelTreeClassify, NamespaceLimitsAreNotFailures) {
  KernelTree host("/proc", "/sys", true), netns("/proc", "/sys", false);
  EXPECT_EQ(host.classify("net.core.rmem_max", EACCES), KeyError::kReadOnly);
  EXPECT_EQ(netns.classify("net.core.rmem_max", EACCES), KeyError::kNotInNetns);
  EXPECT_EQ(host.classify("net.core.netdev_max_backlog", ENOENT), KeyError::kAbsent);
  EXPECT_EQ(netns.classify("net.core.netdev_max_backlog", ENOENT), KeyError::kNotInNetns);
  EXPECT_EQ(netns.classify(std::string(kHashsizeKey), EOPNOTSUPP), KeyError::kNotInNetns);
  // Global trees are never a network namespace matter.
  EXPECT_EQ(netns.classify("vm.max_map_count", ENOENT), KeyError::kAbsent);
  EXPECT_EQ(netns.classify("kernel.panic", EACCES), KeyError::kReadOnly);
  EXPECT_EQ(netns.classify("net.ipv4.tcp_tw_reuse", EINVAL), KeyError::kRejected);
  EXPECT_EQ(host.pathOf("net.ipv4.conf.eth0/100.rp_filter"), "/proc/sys/net/ipv4/conf/eth0.100/rp_filter");
  EXPECT_EQ(host.pathOf(std::string(kHashsizeKey)), "/sys/module/nf_conntrack/parameters/hashsize");
}

}  // namespace
}  // namespace nodeagent::sysctl
