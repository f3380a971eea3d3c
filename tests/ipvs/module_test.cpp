// IpvsModule against fakes of what it programs (IPVS table, VIPs, nftables, conntrack):
// reload, switch-off cleanup, drain after a restart, conflict reporting. The services file
// and the state directory are real files in a temp dir.
#include "ipvs/module.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/state_store.h"
#include "tests/common/fake_clock.h"
#include "tests/ipvs/fake_service_table.h"

namespace nodeagent::ipvs {
namespace {

using namespace std::chrono_literals;

using testing::FakeClock;

// What a fake VIP binder or nftables table leaves on the node: the name of what holds the
// items (the interface, the table; "" when there is none) and the items.
template <class Item>
struct Held {
  std::string name;
  std::set<Item> items;
  void sync(const std::string& by, const std::set<Item>& want) {
    name = by;
    items = want;
  }
  void remove(const std::string& by) {
    if (name == by) name.clear(), items.clear();
  }
};

// The node's kernel as the fakes leave it; it outlives every module instance ("restart").
struct FakeNode {
  FakeServiceTable ipvs;
  int ipvsErrno = 0;  // serviceTable() fails with it (ENOENT: no IPVS in the kernel)
  Held<Address> vips;               // name: the dummy interface
  Held<netfilter::NftService> nft;  // name: the nftables table
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

// What the fakes below share: the items they hold on the node, under their name.
template <class Item>
class HeldBy {
 protected:
  HeldBy(Held<Item>& held, std::string name) : held_(held), name_(std::move(name)) {}
  Result<void> hold(const std::set<Item>& items) {
    held_.sync(name_, items);
    return {};
  }
  Result<void> drop() {
    held_.remove(name_);
    return {};
  }
  Held<Item>& held_;
  std::string name_;
};

class FakeVips final : public VipBinder, HeldBy<Address> {
 public:
  FakeVips(FakeNode& n, std::string ifname) : HeldBy(n.vips, std::move(ifname)) {}
  Result<void> sync(const std::set<Address>& vips, bool) override { return hold(vips); }
  Result<void> update(std::span<const std::pair<Address, bool>> changes) override {
    auto now = held_.items;
    for (const auto& [a, bind] : changes) bind ? (void)now.insert(a) : (void)now.erase(a);
    return hold(now);
  }
  Result<void> remove() override { return drop(); }
};

class FakeProxyTable final : public netfilter::ProxyTable, HeldBy<netfilter::NftService> {
 public:
  FakeProxyTable(FakeNode& n, std::string name) : HeldBy(n.nft, std::move(name)) {}
  Result<void> sync(const std::set<netfilter::NftService>& services, bool) override { return hold(services); }
  // A change replaces whatever entry the service (family, address, protocol, port) had.
  Result<void> update(std::span<const netfilter::NftChange> changes) override {
    auto now = held_.items;
    for (const auto& c : changes) {
      std::erase_if(now, [&](const netfilter::NftService& s) {
        return std::tie(s.family, s.addr, s.protocol, s.port) ==
               std::tie(c.service.family, c.service.addr, c.service.protocol, c.service.port);
      });
      if (c.present) now.insert(c.service);
    }
    return hold(now);
  }
  Result<void> remove() override { return drop(); }
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
    char tmpl[] = "/tmp/ipvs-module-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
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
  void drainOneEndpoint();
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
  EXPECT_EQ(node_.vips.name, "nodeagent-ipvs0");
  EXPECT_EQ(node_.vips.items, (std::set<Address>{addr("10.96.0.1"), addr("10.96.0.2")}));
  EXPECT_EQ(node_.nft.name, "nodeagent-ipvs");
  EXPECT_EQ(node_.nft.items.size(), 2u);
  EXPECT_EQ(state().health, core::Health::kHealthy) << state().summary;
  EXPECT_EQ(state().details.get("owned_services").asInt(), 2);
}

// A periodic pass asked to give way (a change waits) stops its full read, changes nothing
// and says so to the runner; the next periodic pass repairs the drift.
TEST_F(IpvsModuleTest, APeriodicPassGivesWayWhenAChangeWaits) {
  writeServices(kTwoServices);
  start();
  pass();
  node_.ipvs.table.erase(tcp("10.96.0.2", 443));  // hand-deleted
  core::ReconcileContext ctx{false, false, true};
  ctx.changeWaiting = [] { return true; };
  ASSERT_TRUE(module_->reconcile(ctx));
  EXPECT_TRUE(ctx.gaveWay);
  EXPECT_EQ(kernel(tcp("10.96.0.2", 443)), nullptr);
  pass(true);
  EXPECT_NE(kernel(tcp("10.96.0.2", 443)), nullptr);
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
  EXPECT_EQ(node_.vips.name, "na-test1");
  EXPECT_EQ(node_.vips.items, std::set<Address>{addr("10.96.0.9")});
  EXPECT_EQ(node_.nft.name, "na-test");
  EXPECT_EQ(node_.nft.items.size(), 1u);
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
  EXPECT_EQ(node_.vips.name, "");
  EXPECT_TRUE(node_.vips.items.empty());
  EXPECT_EQ(node_.nft.name, "");
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
  EXPECT_EQ(node_.vips.items.size(), 2u);
  EXPECT_EQ(node_.nft.name, "nodeagent-ipvs");
}

// Programs kTwoServices, then 10.244.0.2 goes while it still has connections.
void IpvsModuleTest::drainOneEndpoint() {
  writeServices(kTwoServices);
  start();
  pass();
  node_.ipvs.table[tcp("10.96.0.1", 80)].dests[dest("10.244.0.2", 8080)].activeConns = 3;
  writeServices(
      "  - {address: 10.96.0.1, port: 80, endpoints: [{address: 10.244.0.1, port: 8080}]}\n"
      "  - {address: 10.96.0.2, port: 443, endpoints: [{address: 10.244.0.3, port: 8443}]}\n");
  module_->reload(config_);  // re-reads the file (SIGHUP), as the inotify watch would
  pass();
}

TEST_F(IpvsModuleTest, RestartFinishesADrainStartedBeforeIt) {
  drainOneEndpoint();  // weight 0, kept
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
  node_.ipvs.table[tcp("10.96.0.1", 80)].dests[dest("10.244.0.2", 8080)].activeConns = 0;
  pass();
  EXPECT_FALSE(kernel(tcp("10.96.0.1", 80))->dests.contains(dest("10.244.0.2", 8080)));
  EXPECT_EQ(state().details.get("draining").asInt(), 0);
  ASSERT_EQ(node_.ipvs.log.size(), 1u);
  EXPECT_EQ(node_.ipvs.log[0].toString(), "ipvsadm -d -t 10.96.0.1:80 -r 10.244.0.2:8080");
}

TEST_F(IpvsModuleTest, DrainEndsAtItsDeadlineAfterRestart) {
  drainOneEndpoint();
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
  EXPECT_FALSE(node_.vips.items.contains(addr("10.96.0.2"))) << "no VIP for a service that is not ours";
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
