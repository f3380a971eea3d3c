// cri tier: the prefetcher against Debian's real containerd (CRI runtime.v1) and
// docker-registry on 127.0.0.1, started by cri_harness.sh in a temp dir. Independent
// witnesses: containerd's own log (PullImage start/end, for order and concurrency), the
// registry's access log (blob GETs) and `ctr -n k8s.io images ls`.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "imagepull/cri_image_service.h"
#include "imagepull/disk_guard.h"
#include "imagepull/prefetcher.h"
#include "imagepull/progress.h"
#include "tests/imagepull/cri_env.h"

namespace nodeagent::imagepull {
namespace {

using namespace std::chrono_literals;

PrefetchOptions testOptions(unsigned concurrency) {
  return PrefetchOptions{.concurrency = concurrency, .perRegistry = concurrency, .attemptTimeout = 60s,
                         .backoffInitial = 200ms, .backoffMax = 1s, .maxAttempts = 30, .maxPermanentAttempts = 2,
                         .diskHighWaterPercent = 99.9, .diskRecheck = 300ms};
}

bool waitAll(Prefetcher& p, std::chrono::milliseconds limit = 60s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  uint64_t v = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    bool done = true;
    for (const auto& r : p.snapshot()) done = done && isTerminal(r.state);
    if (done) return true;
    v = p.waitForChange(v, std::chrono::steady_clock::now() + 100ms);
  }
  return false;
}

std::string dump(Prefetcher& p) {
  std::string s;
  for (const auto& r : p.snapshot()) s += toJson(r, std::chrono::steady_clock::now()).dump() + "\n";
  return s;
}

// Tiers in priority order under a concurrency limit, shared blobs fetched once, a warm
// re-run free of blob GETs, all visible to ctr. Through a throttled link so pulls overlap.
TEST(CriPrefetch, TiersInOrderWithinLimitAndEachBlobOnce) {
  Env env("--proxy-rate 4194304 --proxy-delay-ms 5");
  std::vector<std::string> names = {"os1:v1=os/1024+128",  "os2:v1=os/1024+128",  "biz:v1=rt/1024+256",
                                    "rt1:v1=rt/1024+128",  "rt2:v1=rt/1024+128",  "rt3:v1=jvm/1024+128",
                                    "rt4:v1=jvm/1024+128", "rt5:v1=os/1024+128"};
  std::string specs;
  std::vector<std::string> refs;
  for (auto& n : names) specs += n + " ", refs.push_back(n.substr(0, n.find('=')));
  env.push(specs);
  auto gets0 = env.totalBlobGets();
  ASSERT_EQ(gets0, 0);

  CriImageService svc(env.cri());
  CriDiskProbe disk(svc);
  const unsigned kLimit = 2;
  {
    Prefetcher p(svc, disk, testOptions(kLimit));
    ASSERT_TRUE(p.setConfigured({env.image("os1:v1"), env.image("os2:v1")},
                                {env.image("rt1:v1"), env.image("rt2:v1"), env.image("rt3:v1"), env.image("rt4:v1"),
                                 env.image("rt5:v1")}));
    p.release();
    std::this_thread::sleep_for(50ms);  // base pulls are under way
    ASSERT_TRUE(p.request(env.image("biz:v1"), Tier::kBusiness));
    ASSERT_TRUE(waitAll(p)) << dump(p);
    for (const auto& r : p.snapshot()) EXPECT_EQ(r.state, PullState::kPresent) << r.image << ": " << r.lastError;
  }
  // Order and concurrency as containerd saw them.
  auto pulls = env.runtimePulls();
  ASSERT_EQ(pulls.size(), names.size());
  std::vector<std::string> order;
  for (auto& p : pulls) order.push_back(p.image.substr(p.image.rfind('/') + 1));
  std::string lastBaseEnd = std::max(pulls[0].end, pulls[1].end);
  // The two base pulls start together (limit 2), in either order.
  EXPECT_EQ((std::set<std::string>{order[0], order[1]}), (std::set<std::string>{"os1:v1", "os2:v1"})) << "base first";
  EXPECT_EQ(order[2], "biz:v1") << "business ahead of environment";
  for (size_t i = 3; i < pulls.size(); ++i) {
    EXPECT_EQ(order[i].substr(0, 2), "rt");
    EXPECT_GE(pulls[i].start, lastBaseEnd) << "environment after base";
  }
  int seen = env.runtimeMaxConcurrency();
  EXPECT_LE(seen, static_cast<int>(kLimit));
  EXPECT_GE(seen, 2) << "pulls should overlap through the slow link";
  // Each unique blob fetched exactly once.
  auto gets = env.blobGets();
  auto unique = env.blobsOf(refs);
  EXPECT_EQ(gets.size(), unique.size());
  for (auto& [digest, n] : gets) {
    EXPECT_EQ(n, 1) << digest;
    EXPECT_TRUE(unique.contains(digest)) << digest;
  }
  // An independent client sees them all.
  auto ls = env.ctrImages();
  for (auto& r : refs) EXPECT_NE(ls.find(env.image(r)), std::string::npos) << r << " missing from ctr:\n" << ls;

  // Warm: the same set again costs no blob GET, and no PullImage at all.
  int before = env.totalBlobGets();
  {
    CriImageService svc2(env.cri());  // a stopped Prefetcher has cancelled its service for good
    Prefetcher p(svc2, disk, testOptions(kLimit));
    ASSERT_TRUE(p.setConfigured({env.image("os1:v1")}, {env.image("rt1:v1")}));
    p.release();
    ASSERT_TRUE(waitAll(p));
    EXPECT_EQ(p.stats().attempts, 0u);
    EXPECT_EQ(p.stats().skippedPresent, 2u);
    // A tag re-check pulls by tag: the manifest is asked for, but no blob.
    p.refreshEnvironment();
    ASSERT_TRUE(waitAll(p));
    EXPECT_EQ(p.find(env.image("rt1:v1"))->state, PullState::kPresent);
    EXPECT_FALSE(p.find(env.image("rt1:v1"))->digestChanged);
  }
  EXPECT_EQ(env.totalBlobGets(), before);

  // The tag moves to a new image: the re-check pulls it and reports the change; only the
  // new blobs (config and own layer) are fetched.
  std::string oldId = svc.status(env.image("rt1:v1")).value()->id;
  env.push("rt1:v1=rt/1024+160");
  before = env.totalBlobGets();
  {
    CriImageService svc3(env.cri());
    Prefetcher p(svc3, disk, testOptions(kLimit));
    ASSERT_TRUE(p.setConfigured({}, {env.image("rt1:v1")}));
    p.release();
    ASSERT_TRUE(waitAll(p));
    EXPECT_EQ(p.find(env.image("rt1:v1"))->imageId, oldId) << "present: not pulled again";
    p.refreshEnvironment();
    ASSERT_TRUE(waitAll(p));
    auto r = p.find(env.image("rt1:v1"));
    EXPECT_EQ(r->state, PullState::kPresent);
    EXPECT_TRUE(r->digestChanged);
    EXPECT_NE(r->imageId, oldId);
  }
  EXPECT_EQ(env.totalBlobGets(), before + 2);
}

TEST(CriPrefetch, RegistryOutageRetriesThenRecoversAndMissingTagFails) {
  Env env;
  env.push("late:v1=os/256+64");
  CriImageService svc(env.cri());
  CriDiskProbe disk(svc);
  Prefetcher p(svc, disk, testOptions(2));
  p.release();
  run(kHarness + " stop-registry " + env.dir());
  auto key = p.request(env.image("late:v1"), Tier::kBusiness);
  auto missing = p.request(env.image("late:nope"), Tier::kBusiness);
  ASSERT_TRUE(key && missing);
  // Retrying with backoff while the registry is down.
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (p.find(*key)->attempts < 3 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(50ms);
  auto r = p.find(*key);
  EXPECT_GE(r->attempts, 3u) << dump(p);
  EXPECT_TRUE(r->state == PullState::kRetrying || r->state == PullState::kPulling) << dump(p);
  int rc = 0;
  auto out = run(kHarness + " start-registry " + env.dir(), &rc);
  ASSERT_EQ(rc, 0) << out;
  ASSERT_TRUE(waitAll(p, 30s)) << dump(p);
  EXPECT_EQ(p.find(*key)->state, PullState::kPresent) << dump(p);
  auto m = p.find(*missing);
  EXPECT_EQ(m->state, PullState::kFailed);
  EXPECT_EQ(m->lastCode, "NotFound") << m->lastError;
  // No endless retry: exactly max_permanent_attempts pulls of the missing tag once the
  // registry answered NotFound (earlier attempts, while it was down, were Unavailable-like).
  int missingAttempts = 0;
  for (auto& pl : env.runtimePulls()) missingAttempts += pl.image == env.image("late:nope");
  std::this_thread::sleep_for(1500ms);
  int later = 0;
  for (auto& pl : env.runtimePulls()) later += pl.image == env.image("late:nope");
  EXPECT_EQ(later, missingAttempts) << "a failed NotFound pull is not retried";
  EXPECT_NE(env.ctrImages().find(env.image("late:v1")), std::string::npos);
}

TEST(CriPrefetch, DeadlineCancelsTheAttemptAndRetries) {
  // 2 MiB at 256 KiB/s takes ~8 s; each attempt may take 1 s.
  Env env("--proxy-rate 262144 --proxy-delay-ms 5");
  env.push("big:v1=os/2048+64");
  CriImageService svc(env.cri());
  CriDiskProbe disk(svc);
  auto opts = testOptions(1);
  opts.attemptTimeout = 1s;
  opts.maxAttempts = 2;
  Prefetcher p(svc, disk, opts);
  auto key = p.request(env.image("big:v1"), Tier::kBusiness);
  ASSERT_TRUE(key);
  ASSERT_TRUE(waitAll(p, 30s)) << dump(p);
  auto r = p.find(*key);
  EXPECT_EQ(r->state, PullState::kFailed);
  EXPECT_EQ(r->attempts, 2u);
  EXPECT_EQ(r->lastCode, "DeadlineExceeded") << r->lastError;
  // containerd saw two PullImage calls for it, both ended (cancelled), none succeeded.
  auto pulls = env.runtimePulls();
  ASSERT_EQ(pulls.size(), 2u);
  for (auto& pl : pulls) EXPECT_FALSE(pl.ok);
  EXPECT_EQ(env.ctrImages().find(env.image("big:v1")), std::string::npos);
}

TEST(CriPrefetch, DiskGuardHoldsEnvironmentPulls) {
  Env env;
  env.push("os:v1=os/128+16 rt:v1=os/128+16");
  CriImageService svc(env.cri());
  CriDiskProbe disk(svc);
  auto usage = disk.probe();
  ASSERT_TRUE(usage) << usage.error().message();
  ASSERT_GT(usage->usedPercent, 0.5);
  auto opts = testOptions(2);
  opts.diskHighWaterPercent = 0.5;  // below current usage of the real file system
  Prefetcher p(svc, disk, opts);
  ASSERT_TRUE(p.setConfigured({env.image("os:v1")}, {env.image("rt:v1")}));
  p.release();
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline) {
    auto e = p.find(env.image("rt:v1"));
    if (e->state == PullState::kWaitingForDisk && p.find(env.image("os:v1"))->state == PullState::kPresent) break;
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(p.find(env.image("os:v1"))->state, PullState::kPresent) << dump(p);
  auto e = p.find(env.image("rt:v1"));
  EXPECT_EQ(e->state, PullState::kWaitingForDisk) << dump(p);
  EXPECT_NE(e->waitReason.find(usage->mountpoint), std::string::npos) << e->waitReason;
  std::this_thread::sleep_for(1s);  // several rechecks: still held, never pulled
  EXPECT_EQ(p.find(env.image("rt:v1"))->state, PullState::kWaitingForDisk);
  for (auto& pl : env.runtimePulls()) EXPECT_NE(pl.image, env.image("rt:v1"));
  EXPECT_TRUE(p.stats().diskHigh);
}

// No fight with the image GC. A pulled image removed as the kubelet's GC would (`ctr images
// rm` in k8s.io) is noticed from ListImages, reported once, and pulled again once after its
// backoff, not in a loop; the base image carries containerd's pin label; while a pull is in
// flight containerd's content service shows its bytes.
TEST(CriPrefetch, ImageRemovedAsTheGcWouldIsPulledAgainOnceAndBaseGetsThePinLabel) {
  Env env("--proxy-rate 1048576 --proxy-delay-ms 5");
  env.push("gcbase:v1=gcb/256+64 gcenv:v1=gce/2048+512");
  const std::string base = env.image("gcbase:v1"), envImage = env.image("gcenv:v1");
  CriImageService svc(env.cri());
  CriDiskProbe disk(svc);
  auto opts = testOptions(2);
  opts.removalBackoffInitial = opts.removalBackoffMax = 3s;
  Prefetcher p(svc, disk, opts);
  ASSERT_TRUE(p.setConfigured({base}, {envImage}));
  p.release();
  uint64_t done = 0, total = 0;
  auto deadline = std::chrono::steady_clock::now() + 60s;
  for (bool all = false; !all && std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(100ms)) {
    auto in = svc.ingests();
    ASSERT_TRUE(in) << in.error().message();
    auto bp = sumIngests(*in, 1);
    done = std::max(done, bp.done), total = std::max(total, bp.total);
    all = true;
    for (const auto& r : p.snapshot()) all = all && isTerminal(r.state);
  }
  ASSERT_TRUE(waitAll(p)) << dump(p);
  EXPECT_GT(done, 0u) << "no download seen through containerd's content service";
  EXPECT_GE(total, done);
  auto b = p.find(base);
  EXPECT_EQ(b->pinLabel, "set");
  std::string labelled, unlabelled;
  std::istringstream ls(run("ctr --address " + env["CRI_SOCKET"] + " -n k8s.io images ls"));
  for (std::string line; std::getline(ls, line);) {
    if (line.starts_with(base + " ")) labelled = line;
    if (line.starts_with(envImage + " ")) unlabelled = line;
  }
  EXPECT_NE(labelled.find("io.cri-containerd.pinned=pinned"), std::string::npos) << labelled;
  EXPECT_EQ(unlabelled.find("io.cri-containerd.pinned"), std::string::npos) << unlabelled;
  if (auto v = svc.version(); v && v->runtimeVersion.find("1.6.") != std::string::npos) {
    EXPECT_FALSE(b->pinned) << "containerd 1.6's CRI never reports an image pinned";
  }
  ASSERT_EQ(env.pullsOf(envImage), 1);

  run("ctr --address " + env["CRI_SOCKET"] + " -n k8s.io images rm " + envImage);
  auto removedAt = std::chrono::steady_clock::now();
  std::vector<Removal> removals;
  for (auto until = removedAt + 10s; removals.empty() && std::chrono::steady_clock::now() < until;
       std::this_thread::sleep_for(100ms)) {
    auto listedAt = std::chrono::steady_clock::now();
    auto listed = svc.list();
    ASSERT_TRUE(listed) << listed.error().message();
    removals = p.checkPresence(*listed, listedAt);
  }
  ASSERT_EQ(removals.size(), 1u) << dump(p);
  EXPECT_EQ(removals[0].image, envImage);
  EXPECT_EQ(p.find(envImage)->state, PullState::kRemoved);
  std::this_thread::sleep_for(1s);
  EXPECT_TRUE(p.checkPresence(*svc.list(), std::chrono::steady_clock::now()).empty()) << "reported once";
  EXPECT_EQ(env.pullsOf(envImage), 1) << "not pulled again before the backoff";
  deadline = std::chrono::steady_clock::now() + 60s;
  while (p.find(envImage)->state != PullState::kPresent && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(100ms);
  ASSERT_EQ(p.find(envImage)->state, PullState::kPresent) << dump(p);
  EXPECT_GE(std::chrono::steady_clock::now() - removedAt, 1500ms);
  std::this_thread::sleep_for(4s);  // past another backoff: nothing more happens
  auto listedAt = std::chrono::steady_clock::now();
  EXPECT_TRUE(p.checkPresence(*svc.list(), listedAt).empty());
  EXPECT_EQ(env.pullsOf(envImage), 2) << "pulled again once, not in a loop";
  EXPECT_EQ(env.pullsOf(base), 1);
  EXPECT_EQ(p.stats().removals, 1u);
}

}  // namespace
}  // namespace nodeagent::imagepull
