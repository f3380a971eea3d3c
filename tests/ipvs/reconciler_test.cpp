// Planner and reconciler against a fake table: minimal ops, ownership, drain, restart.
#include "ipvs/reconciler.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>

#include "tests/common/fake_clock.h"
#include "tests/ipvs/fake_service_table.h"

namespace nodeagent::ipvs {
namespace {

using T = Op::Type;
using namespace std::chrono_literals;

using testing::FakeClock;

class FakeFlusher final : public FlowFlusher {
 public:
  Result<size_t> flush(std::span<const DestKey> b, std::span<const ServiceKey> s) override {
    ++calls;
    backends.insert(backends.end(), b.begin(), b.end());
    services.insert(services.end(), s.begin(), s.end());
    return b.size() + 2 * s.size();
  }
  int calls = 0;
  std::vector<DestKey> backends;
  std::vector<ServiceKey> services;
};

Address addr(const std::string& s) { return *Address::parse(s); }

DesiredService svc(const std::string& vip, uint16_t port, int ndest, Protocol proto = Protocol::kTcp) {
  DesiredService s;
  s.service.key = ServiceKey{AF_INET, proto, addr(vip), port, 0};
  s.service.scheduler = "rr";
  for (int i = 0; i < ndest; ++i) {
    Destination d{DestKey{addr("10.244.0." + std::to_string(i + 1)), 8080}, Forward::kMasq, 1, 0, 0};
    s.dests.insert(d);
  }
  return s;
}

void put(DesiredState& st, DesiredService s) { st[s.service.key] = std::make_shared<const DesiredService>(std::move(s)); }

// Entries are shared and immutable: a test changes one by replacing it with an edited copy.
template <class State>
DesiredService& edit(State& st, const ServiceKey& k) {
  auto copy = std::make_shared<DesiredService>(*st.at(k));
  st[k] = copy;
  return *copy;
}
DesiredService& editFirst(DesiredState& st) { return edit(st, st.begin()->first); }

class ReconcilerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("ipvs-rec-" + std::to_string(::getpid()) + "-" +
                                                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    restart();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  // A new agent process: fresh ownership (loaded from disk) and reconciler, same kernel.
  void restart(ReconcilerOptions opts = {}) {
    own_ = std::make_unique<Ownership>((dir_ / "owned").string());
    ASSERT_TRUE(own_->load());
    opts.drainTimeout = 60s;
    rec_ = std::make_unique<Reconciler>(kernel_, *own_, clock_, opts, &flusher_);
  }
  SyncReport sync(const DesiredState& d, bool full = false) {
    auto r = rec_->sync(d, SyncRequest{full, false});
    EXPECT_TRUE(r) << r.error().message();
    return r ? *r : SyncReport{};
  }
  std::filesystem::path dir_;
  FakeServiceTable kernel_;
  FakeClock clock_;
  FakeFlusher flusher_;
  std::unique_ptr<Ownership> own_;
  std::unique_ptr<Reconciler> rec_;
};

TEST(Planner, AddUpdateWeightSchedulerRemove) {
  DesiredState want;
  put(want, svc("10.96.0.1", 80, 2));
  AppliedState have;
  auto p = planChanges(want, have, {});
  ASSERT_EQ(p.ops.size(), 3u);
  EXPECT_EQ(p.ops[0].type, T::kAddService);
  EXPECT_EQ(p.ops[1].type, T::kAddDest);

  have = AppliedState(want.begin(), want.end());
  EXPECT_TRUE(planChanges(want, have, {}).empty());

  editFirst(want).dests.begin()->weight = 5;
  p = planChanges(want, have, {});
  ASSERT_EQ(p.ops.size(), 1u);
  EXPECT_EQ(p.ops[0].type, T::kEditDest);
  EXPECT_EQ(p.ops[0].dest.weight, 5u);
  EXPECT_EQ(p.ops[0].toString(), "ipvsadm -e -t 10.96.0.1:80 -r 10.244.0.1:8080 -m -w 5");

  auto& s = editFirst(want);
  s.dests.begin()->weight = 1;
  s.service.scheduler = "wlc";
  p = planChanges(want, have, {});
  ASSERT_EQ(p.ops.size(), 1u);
  EXPECT_EQ(p.ops[0].type, T::kEditService);
  EXPECT_EQ(p.ops[0].toString(), "ipvsadm -E -t 10.96.0.1:80 -s wlc");

  p = planChanges({}, have, {});
  ASSERT_EQ(p.ops.size(), 1u);
  EXPECT_EQ(p.ops[0].type, T::kDelService);
}

TEST(Planner, TcpEndpointDrainsUdpEndpointGoesAtOnce) {
  DesiredState want;
  put(want, svc("10.96.0.1", 80, 2));
  put(want, svc("10.96.0.53", 53, 2, Protocol::kUdp));
  AppliedState have;
  have = AppliedState(want.begin(), want.end());
  for (auto& [k, s] : want) {
    auto& e = edit(want, k);
    e.dests.erase(e.dests.begin()->key);
  }
  auto p = planChanges(want, have, {});
  ASSERT_EQ(p.ops.size(), 2u);
  EXPECT_EQ(p.ops[0].type, T::kEditDest);  // TCP: weight 0
  EXPECT_EQ(p.ops[0].dest.weight, 0u);
  EXPECT_EQ(p.ops[1].type, T::kDelDest);  // UDP: delete now
  ASSERT_EQ(p.startDrain.size(), 1u);
  ASSERT_EQ(p.flushBackend.size(), 1u);
  EXPECT_EQ(p.flushBackend[0].second.toString(), "10.244.0.1:8080");
  // Already draining: nothing more to do.
  std::set<DestRef> draining(p.startDrain.begin(), p.startDrain.end());
  edit(have, want.begin()->first).dests.begin()->weight = 0;  // the TCP one
  p = planChanges(want, have, draining);
  EXPECT_EQ(p.ops.size(), 1u);  // only the UDP delete (not yet recorded in `have`)
  EXPECT_TRUE(p.startDrain.empty());
}

TEST_F(ReconcilerTest, OneChangeIsOneOpWhateverTheTableSize) {
  DesiredState want;
  for (int i = 0; i < 2000; ++i) put(want, svc("10.96." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1), 80, 3));
  auto r = sync(want, true);
  EXPECT_EQ(r.applied, 2000u * 4);
  EXPECT_EQ(r.plannedTotal, 2000u * 4);
  EXPECT_EQ(rec_->appliedEndpoints(), 2000u * 3);
  EXPECT_EQ(r.planned.size(), kPlannedKept);  // the report keeps the first ops only
  EXPECT_GE(kernel_.applies, 2000u * 4 / kApplyBatch);  // sent in batches, not as one plan
  EXPECT_EQ(kernel_.table.size(), 2000u);
  EXPECT_EQ(own_->keys().size(), 2000u);
  size_t before = kernel_.log.size(), lists = kernel_.lists;
  editFirst(want).dests.begin()->weight = 7;
  r = sync(want);
  EXPECT_EQ(kernel_.log.size() - before, 1u);
  EXPECT_EQ(kernel_.lists, lists);  // no kernel read on an incremental pass
  EXPECT_TRUE(sync(want).planned.empty());
  // Told which service changed: only that one is planned.
  editFirst(want).dests.begin()->weight = 8;
  auto c = rec_->syncChanged(want, {want.begin()->first}, false);
  ASSERT_TRUE(c);
  ASSERT_EQ(c->planned.size(), 1u);
  EXPECT_EQ(c->planned[0].dest.weight, 8u);
  EXPECT_EQ(kernel_.lists, lists);
}

TEST_F(ReconcilerTest, AppliedStateSharesDesiredEntries) {
  // The table is held once: what was applied points to the desired entries.
  DesiredState want;
  for (int i = 0; i < 50; ++i) put(want, svc("10.96.2." + std::to_string(i + 1), 80, 3));
  auto shared = [&] {
    size_t n = 0;
    for (const auto& [k, s] : want) n += rec_->applied().at(k).get() == s.get();
    return n;
  };
  sync(want, true);
  EXPECT_EQ(shared(), 50u);
  editFirst(want).dests.begin()->weight = 9;
  sync(want);
  EXPECT_EQ(shared(), 50u);
  restart();  // a full read from the kernel: equal entries are shared, not copied
  auto r = sync(want, true);
  EXPECT_TRUE(r.planned.empty());
  EXPECT_EQ(shared(), 50u);
  // A resync that finds a hand-edited weight fixes it and shares again.
  kernel_.table.begin()->second.dests.begin()->second.dest.weight = 4;
  r = sync(want, true);
  ASSERT_EQ(r.planned.size(), 1u);
  EXPECT_EQ(shared(), 50u);
}

TEST_F(ReconcilerTest, LeavesForeignServicesAlone) {
  // Someone ran `ipvsadm -A -t 10.0.0.9:80` and one for a VIP we also want.
  Service foreign{ServiceKey{AF_INET, Protocol::kTcp, addr("10.0.0.9"), 80, 0}, "rr"};
  Service clash{ServiceKey{AF_INET, Protocol::kTcp, addr("10.96.0.2"), 80, 0}, "wrr"};
  ASSERT_TRUE(kernel_.apply(std::vector<Op>{{T::kAddService, foreign, {}}, {T::kAddService, clash, {}}}));
  kernel_.log.clear();
  DesiredState want;
  put(want, svc("10.96.0.1", 80, 1));
  put(want, svc("10.96.0.2", 80, 1));
  auto r = sync(want, true);
  ASSERT_EQ(r.conflicts.size(), 1u);
  EXPECT_NE(r.conflicts[0].find("10.96.0.2:80"), std::string::npos);
  EXPECT_EQ(kernel_.table.at(clash.key).service.scheduler, "wrr");
  EXPECT_TRUE(kernel_.table.contains(foreign.key));
  // Desired set empty: only our own service goes.
  r = sync({}, true);
  EXPECT_TRUE(kernel_.table.contains(foreign.key));
  EXPECT_TRUE(kernel_.table.contains(clash.key));
  EXPECT_EQ(kernel_.table.size(), 2u);
  for (const auto& op : kernel_.log) EXPECT_NE(op.service.key, foreign.key);
}

TEST_F(ReconcilerTest, ForeignServiceCreatedAfterTheFullReadIsNotTakenOver) {
  // The agent read the kernel (nothing there), then someone ran
  // `ipvsadm -A -t 10.96.0.7:80 -s wrr; ipvsadm -a -t 10.96.0.7:80 -r 192.168.9.9:80`
  // just before the source asked for the same address.
  sync({}, true);
  Service theirs{ServiceKey{AF_INET, Protocol::kTcp, addr("10.96.0.7"), 80, 0}, "wrr"};
  Destination theirDest{DestKey{addr("192.168.9.9"), 80}, Forward::kMasq, 1, 0, 0};
  ASSERT_TRUE(kernel_.apply(std::vector<Op>{{T::kAddService, theirs, {}}, {T::kAddDest, theirs, theirDest}}));
  kernel_.log.clear();
  DesiredState want;
  put(want, svc("10.96.0.7", 80, 2));
  put(want, svc("10.96.0.8", 80, 1));  // an ordinary new service in the same batch
  auto r = rec_->syncChanged(want, {theirs.key, *parseServiceKey("TCP 10.96.0.8:80")}, false);
  ASSERT_TRUE(r) << r.error().message();
  // A conflict: reported, not owned, not applied, no destination op sent to it.
  ASSERT_EQ(r->conflicts.size(), 1u);
  EXPECT_NE(r->conflicts[0].find("TCP 10.96.0.7:80"), std::string::npos) << r->conflicts[0];
  EXPECT_TRUE(r->failures.empty()) << r->failures[0];
  EXPECT_FALSE(own_->contains(theirs.key));
  EXPECT_FALSE(rec_->owns(theirs.key));
  EXPECT_FALSE(rec_->applied().contains(theirs.key));
  EXPECT_TRUE(rec_->foreign().contains(theirs.key));
  for (const auto& op : kernel_.log) {
    if (op.service.key == theirs.key) {
      EXPECT_EQ(op.type, T::kAddService) << op.toString();
    }
  }
  EXPECT_EQ(kernel_.table.at(theirs.key).service.scheduler, "wrr");
  EXPECT_EQ(kernel_.table.at(theirs.key).dests.size(), 1u);
  // The other new service went in whole.
  EXPECT_EQ(kernel_.table.at(*parseServiceKey("TCP 10.96.0.8:80")).dests.size(), 1u);
  EXPECT_TRUE(rec_->applied().contains(*parseServiceKey("TCP 10.96.0.8:80")));
  // Later passes leave it alone too, and it stays when it leaves the source.
  kernel_.log.clear();
  r = rec_->sync(want, SyncRequest{true, false});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->conflicts.size(), 1u);
  sync({}, true);
  ASSERT_TRUE(kernel_.table.contains(theirs.key));
  EXPECT_EQ(kernel_.table.at(theirs.key).dests.size(), 1u);
  for (const auto& op : kernel_.log) EXPECT_NE(op.service.key, theirs.key) << op.toString();
  // After a restart the ownership record still does not claim it.
  restart();
  sync({}, true);
  EXPECT_TRUE(kernel_.table.contains(theirs.key));
}

TEST_F(ReconcilerTest, ExistingServiceInsideAnOwnedCidrIsAdoptedAtTheNextRead) {
  ReconcilerOptions o;
  o.ownedCidrs.push_back(*Cidr::parse("10.96.0.0/12"));
  restart(o);
  sync({}, true);
  Service stale{ServiceKey{AF_INET, Protocol::kTcp, addr("10.96.0.7"), 80, 0}, "wrr"};
  ASSERT_TRUE(kernel_.apply(std::vector<Op>{{T::kAddService, stale, {}}}));
  DesiredState want;
  put(want, svc("10.96.0.7", 80, 2));
  auto r = rec_->syncChanged(want, {stale.key}, false);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->conflicts.empty());
  EXPECT_TRUE(rec_->needsFullRead());  // ours by config: read it, then converge
  sync(want);
  EXPECT_EQ(kernel_.table.at(stale.key).service.scheduler, "rr");
  EXPECT_EQ(kernel_.table.at(stale.key).dests.size(), 2u);
}

TEST_F(ReconcilerTest, OwnedCidrAdoptsServices) {
  Service stale{ServiceKey{AF_INET, Protocol::kTcp, addr("10.96.5.5"), 80, 0}, "rr"};
  ASSERT_TRUE(kernel_.apply(std::vector<Op>{{T::kAddService, stale, {}}}));
  ReconcilerOptions o;
  o.ownedCidrs.push_back(*Cidr::parse("10.96.0.0/12"));
  restart(o);
  sync({}, true);
  EXPECT_TRUE(kernel_.table.empty());
}

TEST_F(ReconcilerTest, RestoresHandDeletedServiceAtResync) {
  DesiredState want;
  put(want, svc("10.96.0.1", 80, 2));
  sync(want, true);
  kernel_.table.clear();  // ipvsadm -D by hand
  EXPECT_TRUE(sync(want).planned.empty());  // incremental pass trusts its own record
  auto r = sync(want, true);              // resync reads the kernel
  EXPECT_EQ(r.applied, 3u);
  EXPECT_EQ(kernel_.table.size(), 1u);
}

// A periodic full read gives way to a waiting change between services: it plans and
// changes nothing, removes nothing it did not get to see, and the change's own pass then
// goes through; the next full read repairs what the stopped one did not reach.
TEST_F(ReconcilerTest, AFullReadStoppedForAChangeChangesNothing) {
  DesiredState want;
  for (int i = 0; i < 20; ++i) put(want, svc("10.96.3." + std::to_string(i + 1), 80, 2));
  sync(want, true);
  // A hand-made drift the stopped read must not act on yet: the last five deleted.
  for (int i = 0; i < 5; ++i) kernel_.table.erase(std::prev(kernel_.table.end()));
  size_t before = kernel_.log.size();
  int asked = 0;
  auto stopped = rec_->sync(want, SyncRequest{true, false, [&] { return ++asked > 5; }});
  ASSERT_TRUE(stopped);
  EXPECT_TRUE(stopped->gaveWay);
  EXPECT_EQ(stopped->plannedTotal, 0u);
  EXPECT_EQ(kernel_.log.size(), before);
  EXPECT_EQ(rec_->applied().size(), 20u);  // nothing forgotten for not having been read
  // The change's own pass (incremental) goes through.
  editFirst(want).dests.begin()->weight = 5;
  auto c = rec_->syncChanged(want, {want.begin()->first}, false);
  ASSERT_TRUE(c);
  EXPECT_FALSE(c->gaveWay);
  // The full read after it runs to its end and restores the table.
  auto full = rec_->sync(want, SyncRequest{true, false, [] { return false; }});
  ASSERT_TRUE(full);
  EXPECT_FALSE(full->gaveWay);
  EXPECT_EQ(full->applied, 5u * 3);
  EXPECT_EQ(kernel_.table.size(), 20u);
}

TEST_F(ReconcilerTest, DrainDeletesWhenIdleOrAfterTimeout) {
  DesiredState want;
  put(want, svc("10.96.0.1", 80, 3));
  sync(want, true);
  auto key = want.begin()->first;
  auto gone1 = DestKey{addr("10.244.0.1"), 8080}, gone2 = DestKey{addr("10.244.0.2"), 8080};
  kernel_.table[key].dests[gone1].activeConns = 1;  // an established connection
  kernel_.table[key].dests[gone2].inactiveConns = 2;
  editFirst(want).dests.erase(gone1);
  editFirst(want).dests.erase(gone2);
  sync(want);
  EXPECT_EQ(kernel_.table[key].dests.at(gone1).dest.weight, 0u);
  EXPECT_EQ(rec_->draining().size(), 2u);
  kernel_.table[key].dests[gone2].inactiveConns = 0;  // its connections closed
  EXPECT_EQ(rec_->appliedEndpoints(), 3u);  // draining ones are still there
  auto r = sync(want);
  EXPECT_EQ(rec_->appliedEndpoints(), 2u);
  EXPECT_FALSE(kernel_.table[key].dests.contains(gone2));
  EXPECT_TRUE(kernel_.table[key].dests.contains(gone1));
  EXPECT_EQ(r.drainsFinished, 1u);
  clock_.t += 61s;  // drain timeout passed
  sync(want);
  EXPECT_FALSE(kernel_.table[key].dests.contains(gone1));
  EXPECT_TRUE(rec_->draining().empty());
}

TEST_F(ReconcilerTest, EndpointBackBeforeDrainEndsIsRestored) {
  DesiredState want;
  put(want, svc("10.96.0.1", 80, 2));
  sync(want, true);
  auto key = want.begin()->first;
  auto full = want;
  auto d = want.begin()->second->dests.begin()->key;
  kernel_.table[key].dests[d].activeConns = 1;
  editFirst(want).dests.erase(d);
  sync(want);
  EXPECT_EQ(rec_->draining().size(), 1u);
  sync(full);
  EXPECT_TRUE(rec_->draining().empty());
  EXPECT_EQ(kernel_.table[key].dests.at(d).dest.weight, 1u);
}

TEST_F(ReconcilerTest, UdpEndpointRemovalFlushesFlows) {
  DesiredState want;
  put(want, svc("10.96.0.53", 53, 2, Protocol::kUdp));
  sync(want, true);
  auto removed = want.begin()->second->dests.begin()->key;
  editFirst(want).dests.erase(removed);
  auto r = sync(want);
  ASSERT_EQ(flusher_.backends.size(), 1u);
  EXPECT_EQ(flusher_.backends[0], removed);
  EXPECT_EQ(r.flowsFlushed, 1u);
  sync({});
  ASSERT_EQ(flusher_.services.size(), 1u);
}

// Many UDP backends and services gone in one pass: one flush call (one conntrack dump),
// not one per backend.
TEST_F(ReconcilerTest, UdpRemovalsOfOnePassFlushOnce) {
  DesiredState want;
  for (int i = 0; i < 5; ++i) put(want, svc("10.96.1." + std::to_string(i + 1), 53, 3, Protocol::kUdp));
  sync(want, true);
  EXPECT_EQ(flusher_.calls, 0);
  DesiredState next;
  for (auto& [k, s] : want) {
    auto e = *s;
    e.dests.erase(e.dests.begin()->key);
    if (k.address.toString() != "10.96.1.5") put(next, e);
  }
  auto r = sync(next);
  EXPECT_EQ(flusher_.calls, 1);
  EXPECT_EQ(flusher_.backends.size(), 4u);  // one per remaining service
  EXPECT_EQ(flusher_.services.size(), 1u);  // the removed one
  EXPECT_EQ(r.flowsFlushed, 4u + 2u);
  sync(next);
  EXPECT_EQ(flusher_.calls, 1);  // nothing removed: no dump at all
}

TEST_F(ReconcilerTest, RestartConvergesWithoutFlushOrSpuriousDeletes) {
  DesiredState want;
  for (int i = 0; i < 100; ++i) put(want, svc("10.96.1." + std::to_string(i + 1), 80, 3));
  sync(want, true);
  // A TCP endpoint was draining when the agent died: its weight-0 leftover must finish.
  auto key = want.begin()->first;
  auto leftover = want.begin()->second->dests.begin()->key;
  kernel_.table[key].dests[leftover].activeConns = 1;
  editFirst(want).dests.erase(leftover);
  sync(want);
  ASSERT_EQ(kernel_.table[key].dests.at(leftover).dest.weight, 0u);
  kernel_.log.clear();
  restart();  // kill -9: only the kernel and the ownership file survive
  auto r = sync(want, true);
  EXPECT_TRUE(r.planned.empty()) << r.planned.front().toString();
  EXPECT_EQ(kernel_.count(T::kDelService), 0u);
  EXPECT_EQ(kernel_.count(T::kAddService), 0u);
  EXPECT_EQ(rec_->draining().size(), 1u);  // picked up again, not forgotten
  kernel_.table[key].dests[leftover].activeConns = 0;
  sync(want);  // its last connection closed: deleted
  EXPECT_FALSE(kernel_.table[key].dests.contains(leftover));
  EXPECT_EQ(kernel_.count(T::kDelDest), 1u);
}

TEST_F(ReconcilerTest, DryRunChangesNothing) {
  DesiredState want;
  put(want, svc("10.96.0.1", 80, 2));
  auto r = rec_->sync(want, SyncRequest{true, true});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->planned.size(), 3u);
  EXPECT_TRUE(kernel_.table.empty());
  EXPECT_TRUE(kernel_.log.empty());
  EXPECT_TRUE(own_->keys().empty());
}

}  // namespace
}  // namespace nodeagent::ipvs
