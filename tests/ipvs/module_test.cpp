// IpvsModule against fakes of what it programs (IPVS table, VIPs, nftables, conntrack):
// reload, switch-off cleanup, drain after a restart, conflict reporting. The services file
// and the state directory are real files in a temp dir.
#include "ipvs/module.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/state_store.h"
#include "tests/ipvs/fake_service_table.h"

namespace nodeagent::ipvs {
namespace {

using namespace std::chrono_literals;

class FakeClock final : public Clock {
 public:
  TimePoint now() const override { return t; }
  std::chrono::system_clock::time_point wallNow() const override { return {}; }
  TimePoint t{};
};

// The node's kernel as the fakes leave it; it outlives every module instance ("restart").
struct FakeNode {
  FakeServiceTable ipvs;
  int ipvsErrno = 0;  // serviceTable() fails with it (ENOENT: no IPVS in the kernel)
  std::string vipInterface;  // "": no interface
  std::set<Address> vips;
  std::string nftTable;  // "": no table
  std::set<netfilter::NftService> nft;
  std::vector<DestKey> flushedBackends;
  std::vector<ServiceKey> flushedServices;
  FakeClock clock;

  KernelParts parts();
};

// A view of the node's one IPVS table (each module instance gets its own handle).
class TableHandle final : public ServiceTable {
 public:
  explicit TableHandle(FakeServiceTable& t) : t_(t) {}
  Result<std::vector<ServiceState>> list(bool withDests) override { return t_.list(withDests); }
  Result<std::vector<DestinationState>> listDests(const ServiceKey& key) override { return t_.listDests(key); }
  Result<std::vector<OpResult>> apply(std::span<const Op> ops) override { return t_.apply(ops); }
  Result<Timeouts> timeouts() override { return t_.timeouts(); }
  Result<void> setTimeouts(const Timeouts& t) override { return t_.setTimeouts(t); }

 private:
  FakeServiceTable& t_;
};

class FakeVips final : public VipBinder {
 public:
  FakeVips(FakeNode& n, std::string ifname) : n_(n), ifname_(std::move(ifname)) {}
  Result<void> sync(const std::set<Address>& vips, bool) override {
    n_.vipInterface = ifname_;
    n_.vips = vips;
    return {};
  }
  Result<void> update(std::span<const std::pair<Address, bool>> changes) override {
    n_.vipInterface = ifname_;
    for (const auto& [a, bind] : changes) bind ? (void)n_.vips.insert(a) : (void)n_.vips.erase(a);
    return {};
  }
  Result<void> remove() override {
    if (n_.vipInterface == ifname_) n_.vipInterface.clear(), n_.vips.clear();
    return {};
  }

 private:
  FakeNode& n_;
  std::string ifname_;
};

class FakeProxyTable final : public netfilter::ProxyTable {
 public:
  FakeProxyTable(FakeNode& n, std::string name) : n_(n), name_(std::move(name)) {}
  Result<void> sync(const std::set<netfilter::NftService>& services, bool) override {
    n_.nftTable = name_;
    n_.nft = services;
    return {};
  }
  Result<void> update(std::span<const netfilter::NftChange> changes) override {
    n_.nftTable = name_;
    for (const auto& c : changes) {
      std::erase_if(n_.nft, [&](const netfilter::NftService& s) {
        return s.family == c.service.family && s.addr == c.service.addr && s.protocol == c.service.protocol &&
               s.port == c.service.port;
      });
      if (c.present) n_.nft.insert(c.service);
    }
    return {};
  }
  Result<void> remove() override {
    if (n_.nftTable == name_) n_.nftTable.clear(), n_.nft.clear();
    return {};
  }

 private:
  FakeNode& n_;
  std::string name_;
};

class FakeFlusher final : public FlowFlusher {
 public:
  explicit FakeFlusher(FakeNode& n) : n_(n) {}
  Result<size_t> flush(std::span<const DestKey> b, std::span<const ServiceKey> s) override {
    n_.flushedBackends.insert(n_.flushedBackends.end(), b.begin(), b.end());
    n_.flushedServices.insert(n_.flushedServices.end(), s.begin(), s.end());
    return b.size() + s.size();
  }

 private:
  FakeNode& n_;
};

KernelParts FakeNode::parts() {
  KernelParts k;
  k.serviceTable = [this]() -> Result<std::unique_ptr<ServiceTable>> {
    if (ipvsErrno) return failErrno(ipvsErrno, "IPVS generic netlink family");
    return std::unique_ptr<ServiceTable>(std::make_unique<TableHandle>(ipvs));
  };
  k.flowFlusher = [this] { return std::make_unique<FakeFlusher>(*this); };
  k.vipBinder = [this](const std::string& ifname, const std::string&) {
    return std::make_unique<FakeVips>(*this, ifname);
  };
  k.proxyTable = [this](const std::string& name, uint32_t, std::vector<netfilter::ProxyTable::Prefix>) {
    return std::make_unique<FakeProxyTable>(*this, name);
  };
  k.clock = &clock;
  return k;
}

Address addr(const std::string& s) { return *Address::parse(s); }
ServiceKey tcp(const std::string& vip, uint16_t port) { return ServiceKey{AF_INET, Protocol::kTcp, addr(vip), port, 0}; }
DestKey dest(const std::string& a, uint16_t port) { return DestKey{addr(a), port}; }

class IpvsModuleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("ipvs-module-" + std::to_string(::getpid()) + "-" +
                                                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_ / "state");
    config_.enabled = true;
    config_.servicesFile = (dir_ / "services.yaml").string();
    config_.drainTimeout = 60s;
  }
  void TearDown() override {
    module_.reset();
    std::filesystem::remove_all(dir_);
  }
  void writeServices(const std::string& text, const std::string& name = "services.yaml") {
    std::ofstream(dir_ / name) << "services:\n" << text;
  }
  // A new agent process: the kernel (node_) and the state directory survive.
  void start() {
    module_.reset();
    core::ModuleContext ctx;
    ctx.store = &store_;
    ctx.stateDir = (dir_ / "state").string();
    module_ = std::make_unique<IpvsModule>(ctx, config_, node_.parts());
    initial_ = true;
  }
  void pass(bool resync = false) {
    auto r = module_->reconcile(core::ReconcileContext{false, initial_, resync});
    initial_ = false;
    ASSERT_TRUE(r) << r.error().message();
  }
  core::ModuleState state() const { return store_.get("ipvs")->state; }
  const FakeServiceTable::Entry* kernel(const ServiceKey& k) const {
    auto it = node_.ipvs.table.find(k);
    return it == node_.ipvs.table.end() ? nullptr : &it->second;
  }

  std::filesystem::path dir_;
  Config config_;
  FakeNode node_;
  core::StateStore store_;
  std::unique_ptr<IpvsModule> module_;
  bool initial_ = true;
};

const char* kTwoServices =
    "  - {address: 10.96.0.1, port: 80, endpoints: [{address: 10.244.0.1, port: 8080}, {address: 10.244.0.2, port: 8080}]}\n"
    "  - {address: 10.96.0.2, port: 443, endpoints: [{address: 10.244.0.3, port: 8443}]}\n";

TEST_F(IpvsModuleTest, ProgramsServicesVipsAndNftables) {
  writeServices(kTwoServices);
  start();
  pass();
  ASSERT_NE(kernel(tcp("10.96.0.1", 80)), nullptr);
  EXPECT_EQ(kernel(tcp("10.96.0.1", 80))->dests.size(), 2u);
  ASSERT_NE(kernel(tcp("10.96.0.2", 443)), nullptr);
  EXPECT_EQ(node_.vipInterface, "nodeagent-ipvs0");
  EXPECT_EQ(node_.vips, (std::set<Address>{addr("10.96.0.1"), addr("10.96.0.2")}));
  EXPECT_EQ(node_.nftTable, "nodeagent-ipvs");
  EXPECT_EQ(node_.nft.size(), 2u);
  EXPECT_EQ(state().health, core::Health::kHealthy) << state().summary;
  EXPECT_EQ(state().details.get("owned_services").asInt(), 2);
}

TEST_F(IpvsModuleTest, ReloadAppliesTheNewSectionOnTheNextPass) {
  writeServices(kTwoServices);
  start();
  pass();
  // A new section: another services file, another VIP interface and nftables table.
  writeServices("  - {address: 10.96.0.9, port: 53, protocol: udp, endpoints: [{address: 10.244.0.9, port: 53}]}\n",
                "other.yaml");
  Config next = config_;
  next.servicesFile = (dir_ / "other.yaml").string();
  next.interface = "na-test1";
  next.nftTable = "na-test";
  module_->reload(next);
  EXPECT_NE(kernel(tcp("10.96.0.1", 80)), nullptr) << "reload applies nothing by itself";
  pass();
  EXPECT_EQ(kernel(tcp("10.96.0.1", 80)), nullptr);
  EXPECT_EQ(kernel(tcp("10.96.0.2", 443)), nullptr);
  ServiceKey dns{AF_INET, Protocol::kUdp, addr("10.96.0.9"), 53, 0};
  ASSERT_NE(kernel(dns), nullptr);
  EXPECT_EQ(node_.vipInterface, "na-test1");
  EXPECT_EQ(node_.vips, std::set<Address>{addr("10.96.0.9")});
  EXPECT_EQ(node_.nftTable, "na-test");
  EXPECT_EQ(node_.nft.size(), 1u);
  EXPECT_EQ(state().details.get("services_file").asString(), next.servicesFile);
}

TEST_F(IpvsModuleTest, SwitchedOffRemovesWhatItMadeAndLeavesForeignServices) {
  writeServices(kTwoServices);
  node_.ipvs.table[tcp("10.1.1.1", 80)] = {Service{tcp("10.1.1.1", 80)}, {}};  // not ours
  start();
  pass();
  ASSERT_EQ(node_.ipvs.table.size(), 3u);
  ASSERT_TRUE(std::filesystem::exists(dir_ / "state" / "ipvs"));
  Config off = config_;
  off.enabled = false;
  module_->reload(off);
  pass();
  EXPECT_EQ(node_.ipvs.table.size(), 1u);
  EXPECT_NE(kernel(tcp("10.1.1.1", 80)), nullptr) << "a foreign service stays";
  EXPECT_EQ(node_.vipInterface, "");
  EXPECT_TRUE(node_.vips.empty());
  EXPECT_EQ(node_.nftTable, "");
  EXPECT_FALSE(std::filesystem::exists(dir_ / "state" / "ipvs"));
  EXPECT_EQ(state().health, core::Health::kDisabled);
  // A restart while switched off touches nothing (no state directory left).
  node_.ipvs.log.clear();
  config_ = off;
  start();
  pass();
  EXPECT_TRUE(node_.ipvs.log.empty());
}

TEST_F(IpvsModuleTest, SwitchedOffDryRunChangesNothing) {
  writeServices(kTwoServices);
  start();
  pass();
  Config off = config_;
  off.enabled = false;
  module_->reload(off);
  ASSERT_TRUE(module_->reconcile(core::ReconcileContext{true, false, false}));
  EXPECT_EQ(node_.ipvs.table.size(), 2u);
  EXPECT_EQ(node_.vips.size(), 2u);
  EXPECT_EQ(node_.nftTable, "nodeagent-ipvs");
}

TEST_F(IpvsModuleTest, RestartFinishesADrainStartedBeforeIt) {
  writeServices(kTwoServices);
  start();
  pass();
  // 10.244.0.2 goes while it still has connections: weight 0, kept.
  node_.ipvs.table[tcp("10.96.0.1", 80)].dests[dest("10.244.0.2", 8080)].activeConns = 3;
  writeServices(
      "  - {address: 10.96.0.1, port: 80, endpoints: [{address: 10.244.0.1, port: 8080}]}\n"
      "  - {address: 10.96.0.2, port: 443, endpoints: [{address: 10.244.0.3, port: 8443}]}\n");
  module_->reload(config_);  // re-reads the file (SIGHUP), as the inotify watch would
  pass();
  auto* svc = kernel(tcp("10.96.0.1", 80));
  ASSERT_NE(svc, nullptr);
  ASSERT_TRUE(svc->dests.contains(dest("10.244.0.2", 8080)));
  EXPECT_EQ(svc->dests.at(dest("10.244.0.2", 8080)).dest.weight, 0u);
  EXPECT_EQ(state().details.get("draining").asInt(), 1);

  // kill -9 and start again: the drain goes on (no delete while connections last, no
  // service re-created), and ends once the connections have.
  start();
  node_.ipvs.log.clear();
  pass();
  svc = kernel(tcp("10.96.0.1", 80));
  ASSERT_TRUE(svc->dests.contains(dest("10.244.0.2", 8080)));
  EXPECT_EQ(node_.ipvs.count(Op::Type::kDelService) + node_.ipvs.count(Op::Type::kAddService), 0u);
  EXPECT_EQ(state().details.get("draining").asInt(), 1);
  svc->dests.at(dest("10.244.0.2", 8080)).activeConns = 0;
  pass();
  EXPECT_FALSE(kernel(tcp("10.96.0.1", 80))->dests.contains(dest("10.244.0.2", 8080)));
  EXPECT_EQ(state().details.get("draining").asInt(), 0);
  ASSERT_EQ(node_.ipvs.log.size(), 1u);
  EXPECT_EQ(node_.ipvs.log[0].toString(), "ipvsadm -d -t 10.96.0.1:80 -r 10.244.0.2:8080");
}

TEST_F(IpvsModuleTest, DrainEndsAtItsDeadlineAfterRestart) {
  writeServices(kTwoServices);
  start();
  pass();
  node_.ipvs.table[tcp("10.96.0.1", 80)].dests[dest("10.244.0.2", 8080)].activeConns = 3;
  writeServices(
      "  - {address: 10.96.0.1, port: 80, endpoints: [{address: 10.244.0.1, port: 8080}]}\n"
      "  - {address: 10.96.0.2, port: 443, endpoints: [{address: 10.244.0.3, port: 8443}]}\n");
  module_->reload(config_);
  pass();
  start();
  pass();
  ASSERT_TRUE(kernel(tcp("10.96.0.1", 80))->dests.contains(dest("10.244.0.2", 8080)));
  node_.clock.t += 61s;  // drain_timeout passed, connections or not
  pass();
  EXPECT_FALSE(kernel(tcp("10.96.0.1", 80))->dests.contains(dest("10.244.0.2", 8080)));
}

TEST_F(IpvsModuleTest, ForeignServiceAtADesiredAddressIsReportedAsAConflict) {
  writeServices(kTwoServices);
  Service theirs{tcp("10.96.0.2", 443)};
  theirs.scheduler = "wlc";
  node_.ipvs.table[theirs.key] = {theirs, {}};
  start();
  pass();
  auto* svc = kernel(theirs.key);
  ASSERT_NE(svc, nullptr);
  EXPECT_EQ(svc->service.scheduler, "wlc") << "their service is left alone";
  EXPECT_TRUE(svc->dests.empty());
  const auto& conflicts = state().details.get("conflicts").asArray();
  ASSERT_EQ(conflicts.size(), 1u);
  EXPECT_NE(conflicts[0].asString().find("TCP 10.96.0.2:443"), std::string::npos) << conflicts[0].asString();
  EXPECT_NE(conflicts[0].asString().find("not created by nodeagent"), std::string::npos);
  EXPECT_FALSE(node_.vips.contains(addr("10.96.0.2"))) << "no VIP for a service that is not ours";
  // `nodeagentctl ipvs plan` shows it too.
  struct NoOutput final : core::CallOutput {
    void progress(const Json&) override {}
    bool cancelled() const override { return false; }
  } out;
  auto plan = module_->call(core::CallRequest{"plan", {}, {}, false}, out);
  ASSERT_TRUE(plan) << plan.error().message();
  EXPECT_EQ(plan->get("conflicts").size(), 1u);
  EXPECT_TRUE(plan->get("dry_run").asBool());
}

TEST_F(IpvsModuleTest, KernelWithoutIpvsDegradesTheModule) {
  writeServices(kTwoServices);
  node_.ipvsErrno = ENOENT;
  start();
  auto r = module_->reconcile(core::ReconcileContext{false, true, false});
  EXPECT_FALSE(r);
  EXPECT_EQ(state().health, core::Health::kDegraded);
  ASSERT_FALSE(state().conditions.empty());
  EXPECT_EQ(state().conditions[0].reason, "IpvsUnavailable");
  node_.ipvsErrno = 0;  // ip_vs loaded later: the next pass programs
  pass();
  EXPECT_EQ(node_.ipvs.table.size(), 2u);
}

}  // namespace
}  // namespace nodeagent::ipvs
