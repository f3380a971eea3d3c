// Unit tests of imagepull's pure logic and of the scheduler against a small fake runtime.
#include <gtest/gtest.h>

#include <algorithm>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "common/config_reader.h"
#include "imagepull/config.h"
#include "imagepull/credentials.h"
#include "imagepull/image_ref.h"
#include "imagepull/policy.h"
#include "imagepull/prefetcher.h"
#include "imagepull/progress.h"
#include "tests/imagepull/fakes.h"

namespace nodeagent::imagepull {
namespace {

using namespace std::chrono_literals;

TEST(ImageRef, NormalisesLikeKubelet) {
  EXPECT_EQ(parseImageRef("nginx")->canonical(), "docker.io/library/nginx:latest");
  EXPECT_EQ(parseImageRef("team/app:1.2")->canonical(), "docker.io/team/app:1.2");
  EXPECT_EQ(parseImageRef("127.0.0.1:5000/a/b:v1")->canonical(), "127.0.0.1:5000/a/b:v1");
  EXPECT_EQ(parseImageRef("127.0.0.1:5000/a")->registry, "127.0.0.1:5000");
  EXPECT_EQ(parseImageRef("localhost/x")->canonical(), "localhost/x:latest");
  std::string d(64, 'a');
  EXPECT_EQ(parseImageRef("reg.io/x@sha256:" + d)->canonical(), "reg.io/x@sha256:" + d);
  EXPECT_FALSE(parseImageRef(""));
  EXPECT_FALSE(parseImageRef("Upper/case"));
  EXPECT_FALSE(parseImageRef("reg.io/x:bad tag"));
  EXPECT_FALSE(parseImageRef("reg.io/x@sha256:123"));
  EXPECT_FALSE(parseImageRef("reg.io//x"));
}

TEST(ImageRef, FollowsTheDistributionGrammar) {
  auto rejects = [](const std::string& ref, const std::string& why) {
    auto r = parseImageRef(ref);
    ASSERT_FALSE(r) << ref << " accepted as " << r->canonical();
    EXPECT_NE(r.error().message().find(why), std::string::npos) << ref << ": " << r.error().message();
  };
  rejects("../etc", "invalid registry host \"..\"");
  rejects("a/../etc", "invalid path component \"..\"");
  rejects("-lead", "invalid path component \"-lead\"");
  rejects("a..b", "invalid path component \"a..b\"");
  rejects("team/a..b", "invalid path component \"a..b\"");
  rejects("team/a_-b", "invalid path component");
  rejects("team/a___b", "invalid path component");
  rejects("team/trailing-", "invalid path component");
  rejects("reg.io/x@md5:d41d8cd98f00b204e9800998ecf8427e", "unsupported algorithm \"md5\"");
  rejects("reg.io/x@sha256:" + std::string(64, 'A'), "sha256 needs 64 lower-case hex digits");
  rejects("reg.io/x@sha512:" + std::string(64, 'a'), "sha512 needs 128");
  rejects("-reg.io/x", "invalid registry host");
  rejects("reg.io:port/x", "invalid registry host");
  rejects("reg.io/x:" + std::string(129, 'v'), "invalid tag");
  rejects("reg.io/x:.v1", "invalid tag");
  rejects("reg.io/" + std::string(250, 'a'), "longer than 255");
  // The limit is on the normalised name, as containerd checks it: 246 characters become
  // 256 with "docker.io/" (fuzz_image_ref found the canonical form rejected).
  rejects("team/" + std::string(241, 'a'), "longer than 255");
  EXPECT_TRUE(parseImageRef("team/" + std::string(240, 'a')));
  rejects(std::string(238, 'a'), "longer than 255");  // docker.io/library/ makes it 256
  EXPECT_TRUE(parseImageRef(std::string(237, 'a')));
  // What the grammar allows.
  EXPECT_EQ(parseImageRef("team/a__b.c-d--e")->canonical(), "docker.io/team/a__b.c-d--e:latest");
  EXPECT_EQ(parseImageRef("[::1]:5000/x:V1_a")->canonical(), "[::1]:5000/x:V1_a");
  EXPECT_EQ(parseImageRef("My.Registry:443/x")->registry, "My.Registry:443");
  EXPECT_EQ(parseImageRef("reg.io/x@sha512:" + std::string(128, 'f'))->digest, "sha512:" + std::string(128, 'f'));
  EXPECT_TRUE(parseImageRef("reg.io/x:1.2@sha256:" + std::string(64, '0')));
}

TEST(Credentials, DockerConfigAuthsAndLegacyForm) {
  // "auth" is base64("alice:s3cret")
  auto s = CredentialStore::parse(R"({"auths":{"https://index.docker.io/v1/":{"auth":"YWxpY2U6czNjcmV0"},
      "127.0.0.1:5000":{"username":"bob","password":"pw"}}})", "config.json");
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(s->size(), 2u);
  EXPECT_EQ(s->lookup("docker.io")->username, "alice");
  EXPECT_EQ(s->lookup("docker.io")->password, "s3cret");
  EXPECT_EQ(s->lookup("127.0.0.1:5000")->password, "pw");
  EXPECT_FALSE(s->lookup("other.io"));
  auto legacy = CredentialStore::parse(R"({"http://reg.example.com/v2/":{"auth":"dTpw"}})", "dockercfg");
  ASSERT_TRUE(legacy);
  EXPECT_EQ(legacy->lookup("reg.example.com")->username, "u");
}

TEST(Credentials, ErrorsNeverQuoteSecrets) {
  auto bad = CredentialStore::parse(R"({"auths":{"h":{"auth":"!!notbase64-hunter2"}}})", "f.json");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message().find("hunter2"), std::string::npos);
  auto junk = CredentialStore::parse(R"({"auths": {"h": {"password": "hunter2" )", "f.json");
  ASSERT_FALSE(junk);
  EXPECT_EQ(junk.error().message().find("hunter2"), std::string::npos);
  EXPECT_EQ(decodeBase64("YWxpY2U6czNjcmV0").value(), "alice:s3cret");
  EXPECT_FALSE(decodeBase64("a"));
}

TEST(Credentials, FromADockerConfigJsonSecretMergedOverTheNodesFile) {
  // data[".dockerconfigjson"] = base64 of {"auths":{"reg.example.com":{"auth":"base64(svc:hunter2)"}}}
  const std::string b64 = "eyJhdXRocyI6eyJyZWcuZXhhbXBsZS5jb20iOnsiYXV0aCI6ImMzWmpPbWgxYm5SbGNqST0ifX19";
  auto secret = CredentialStore::fromSecret(
      R"({"kind":"Secret","type":"kubernetes.io/dockerconfigjson","data":{".dockerconfigjson":")" + b64 + R"("}})",
      "secret kube-system/regcred");
  ASSERT_TRUE(secret) << secret.error().message();
  EXPECT_EQ(secret->lookup("reg.example.com")->password, "hunter2");
  auto node = CredentialStore::parse(R"({"auths":{"reg.example.com":{"auth":"dTpw"},"other.io":{"auth":"dTpw"}}})", "f");
  ASSERT_TRUE(node);
  node->merge(*secret);
  EXPECT_EQ(node->lookup("reg.example.com")->username, "svc");  // the Secret wins for its host
  EXPECT_EQ(node->lookup("other.io")->username, "u");           // the node's file keeps working
  for (auto body : {std::string(R"({"type":"Opaque","data":{"password":"aHVudGVyMg=="}})"),
                    std::string(R"({"type":"kubernetes.io/dockerconfigjson","data":{".dockerconfigjson":"!!hunter2"}})"),
                    std::string(R"({"type":"kubernetes.io/dockerconfigjson","data":{".dockerconfigjson":"aHVudGVyMg=="}})")}) {
    auto bad = CredentialStore::fromSecret(body, "secret kube-system/x");
    ASSERT_FALSE(bad) << body;
    EXPECT_NE(bad.error().message().find("secret kube-system/x"), std::string::npos) << bad.error().message();
    EXPECT_EQ(bad.error().message().find("hunter2"), std::string::npos) << bad.error().message();
    EXPECT_EQ(bad.error().message().find("aHVudGVyMg"), std::string::npos) << bad.error().message();
  }
}

TEST(Policy, ClassifiesByGrpcCodeAndMessage) {
  EXPECT_EQ(classifyError(GrpcCode::kNotFound, ""), RetryClass::kPermanent);
  EXPECT_EQ(classifyError(GrpcCode::kUnauthenticated, ""), RetryClass::kPermanent);
  EXPECT_EQ(classifyError(GrpcCode::kUnavailable, ""), RetryClass::kRetryable);
  EXPECT_EQ(classifyError(GrpcCode::kDeadlineExceeded, ""), RetryClass::kRetryable);
  EXPECT_EQ(classifyError(GrpcCode::kUnknown, "dial tcp 127.0.0.1:1: connect: connection refused"),
            RetryClass::kRetryable);
  EXPECT_EQ(classifyError(GrpcCode::kUnknown, "failed to authorize: ... 401 Unauthorized"), RetryClass::kPermanent);
  EXPECT_EQ(classifyError(GrpcCode::kUnknown, "failed to pull and unpack image \"x\": invalid reference format"),
            RetryClass::kRejected);
  EXPECT_EQ(classifyError(GrpcCode::kInvalidArgument, ""), RetryClass::kRejected);
}

TEST(Policy, BackoffGrowsIsCappedAndJittered) {
  EXPECT_EQ(backoffDelay(1, 1000ms, 60000ms, 0.999999).count(), 999);
  EXPECT_EQ(backoffDelay(1, 1000ms, 60000ms, 0.0), 500ms);
  EXPECT_EQ(backoffDelay(3, 1000ms, 60000ms, 0.0), 2000ms);
  EXPECT_EQ(backoffDelay(30, 1000ms, 60000ms, 0.0), 30000ms);
  EXPECT_LE(backoffDelay(30, 1000ms, 60000ms, 1.0), 60000ms);
}

TEST(Policy, StartDelayIsDeterministicAndSpread) {
  EXPECT_EQ(startDelay("node-1", 600000ms), startDelay("node-1", 600000ms));
  EXPECT_EQ(startDelay("node-1", 0ms), 0ms);
  // 5,000 nodes over 10 minutes: every 10-second bucket of the window gets some nodes,
  // none gets more than three times its share.
  std::vector<int> buckets(60);
  for (int i = 0; i < 5000; ++i) {
    auto d = startDelay("node-" + std::to_string(i), 600000ms);
    ASSERT_LT(d, 600000ms);
    ++buckets[d.count() / 10000];
  }
  for (int b : buckets) {
    EXPECT_GT(b, 0);
    EXPECT_LT(b, 3 * 5000 / 60);
  }
}

TEST(Policy, SetStartDelayIsAFunctionOfNodeAndSet) {
  EXPECT_EQ(startDelay("node-1", "gpu", 120000ms), startDelay("node-1", "gpu", 120000ms));
  EXPECT_EQ(startDelay("node-1", "gpu", 0ms), 0ms);
  // The same node, other sets: other offsets; the same set, other nodes: other offsets.
  std::set<int64_t> perSet, perNode;
  for (int i = 0; i < 20; ++i) perSet.insert(startDelay("node-1", "set-" + std::to_string(i), 120000ms).count());
  for (int i = 0; i < 20; ++i) perNode.insert(startDelay("node-" + std::to_string(i), "gpu", 120000ms).count());
  EXPECT_EQ(perSet.size(), 20u);
  EXPECT_EQ(perNode.size(), 20u);
  // A name pair is not a concatenation: ("ab", "c") and ("a", "bc") differ.
  EXPECT_NE(startDelay("ab", "c", 120000ms), startDelay("a", "bc", 120000ms));
  // 2,000 nodes, two sets over 2 minutes: both sets spread over every 10-second bucket,
  // and the two land in the same second on a node about as often as chance says (1/120),
  // not always, as they would with the node name alone.
  std::vector<int> a(12), b(12);
  int sameSecond = 0;
  for (int i = 0; i < 2000; ++i) {
    auto node = "node-" + std::to_string(i);
    auto da = startDelay(node, "gpu-runtime", 120000ms), db = startDelay(node, "ml-models", 120000ms);
    ++a[da.count() / 10000], ++b[db.count() / 10000];
    sameSecond += da.count() / 1000 == db.count() / 1000;
  }
  for (int i = 0; i < 12; ++i) {
    EXPECT_GT(a[i], 2000 / 12 / 2) << i;
    EXPECT_LT(a[i], 2000 / 12 * 2) << i;
    EXPECT_GT(b[i], 2000 / 12 / 2) << i;
  }
  EXPECT_LT(sameSecond, 2000 * 3 / 120);
}

TEST(Policy, SeparateStartKeepsASecondFromTheNodesOtherStarts) {
  using T = std::chrono::steady_clock::time_point;
  T t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(separateStart(t0 + 5000ms, {t0, t0 + 2000ms}, 1000ms), t0 + 5000ms);
  // 0.5 s after one start: moved a second past it, which is 0.5 s before the next: past that too.
  EXPECT_EQ(separateStart(t0 + 500ms, {t0, t0 + 1500ms}, 1000ms), t0 + 2500ms);
  EXPECT_EQ(separateStart(t0 - 300ms, {t0}, 1000ms), t0 + 1000ms);
  EXPECT_EQ(separateStart(t0 + 1000ms, {t0}, 1000ms), t0 + 1000ms);  // a second apart is enough
}

TEST(Progress, SumsTheRuntimesDownloads) {
  auto t0 = std::chrono::system_clock::now();
  std::vector<Ingest> in{{.ref = "layer-sha256:a", .offset = 4 << 20, .total = 8 << 20, .startedAt = t0, .updatedAt = t0 + 2s},
                         {.ref = "layer-sha256:b", .offset = 1 << 20, .total = 0, .startedAt = t0, .updatedAt = t0 + 1s}};
  auto p = sumIngests(in, 1);
  EXPECT_EQ(p.done, 5u << 20);
  EXPECT_EQ(p.total, 9u << 20);  // an unknown total counts what is there so far
  EXPECT_NEAR(p.bytesPerSecond, 3.0 * (1 << 20), 1);
  EXPECT_FALSE(p.shared);
  EXPECT_EQ(formatProgress(p), "5.0 MiB / 9.0 MiB, 3.0 MiB/s (2 downloads)");
  EXPECT_TRUE(sumIngests(in, 2).shared);
  EXPECT_EQ(formatProgress(sumIngests({}, 1)), "");
}

Result<Config> parse(const std::string& yaml) {
  auto doc = loadYaml(yaml, "t.yaml");
  if (!doc) return fail(doc.error());
  ConfigErrors errors("t.yaml");
  Config c;
  ConfigMap m(*doc, "imagepull", errors);
  parseConfig(std::move(m), c);
  if (auto r = errors.toResult(); !r) return fail(r.error());
  return c;
}

TEST(Config, DefaultsAreIdleWithoutImages) {
  auto c = parse("{}");
  ASSERT_TRUE(c);
  EXPECT_FALSE(c->active());
  EXPECT_EQ(c->runtimeEndpoint, "unix:///run/containerd/containerd.sock");
  EXPECT_EQ(c->concurrency, 3u);
  EXPECT_EQ(c->diskHighWaterPercent, 80);
  auto with = parse("images: {base: [busybox]}");
  ASSERT_TRUE(with);
  EXPECT_TRUE(with->active());
  EXPECT_EQ(c->presenceCheck, 60000ms);
  EXPECT_EQ(c->removalBackoffInitial, 600000ms);
  EXPECT_TRUE(c->pinBase);
  auto gc = parse("presence_check: 5s\nremoval_backoff: {initial: 1m, max: 1h}\npin_base: false");
  ASSERT_TRUE(gc);
  EXPECT_EQ(gc->removalBackoffMax, 3600000ms);
  EXPECT_FALSE(gc->pinBase);
  EXPECT_FALSE(parse("removal_backoff: {initial: 2h, max: 1h}"));
}

TEST(Config, RejectsBadInputWithKeyAndLine) {
  auto c = parse("images:\n  base: [nginx, docker.io/library/nginx:latest]\nconcurrency: 0\nrutnime_endpoint: x\n");
  ASSERT_FALSE(c);
  auto msg = c.error().message();
  EXPECT_NE(msg.find("listed twice"), std::string::npos) << msg;
  EXPECT_NE(msg.find("concurrency"), std::string::npos) << msg;
  EXPECT_NE(msg.find("rutnime_endpoint"), std::string::npos) << msg;
  EXPECT_NE(msg.find("t.yaml:"), std::string::npos) << msg;
  EXPECT_FALSE(parse("runtime_endpoint: /run/containerd/containerd.sock"));
  EXPECT_FALSE(parse("images: {base: ['Bad Image']}"));
}

PrefetchOptions fastOptions() {
  return PrefetchOptions{.concurrency = 2, .perRegistry = 2, .attemptTimeout = 2000ms, .backoffInitial = 20ms,
                         .backoffMax = 50ms, .maxAttempts = 4, .maxPermanentAttempts = 2,
                         .diskHighWaterPercent = 80, .diskRecheck = 50ms};
}

bool waitFor(Prefetcher& p, const std::function<bool()>& done, std::chrono::milliseconds limit = 5000ms) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  uint64_t v = 0;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    v = p.waitForChange(v, std::min(deadline, std::chrono::steady_clock::now() + 50ms));
  }
  return true;
}

bool allTerminal(Prefetcher& p) {
  for (const auto& r : p.snapshot())
    if (!isTerminal(r.state)) return false;
  return true;
}

TEST(Prefetcher, PullsInPriorityOrderWithinTheLimit) {
  FakeService svc;
  FakeDisk disk;
  auto opts = fastOptions();
  opts.concurrency = 1;
  svc.pullTime = 100ms;
  Prefetcher p(svc, disk, opts);
  ASSERT_TRUE(p.setConfigured({"r.io/base1", "r.io/base2"}, {"r.io/env1", "r.io/env2", "r.io/env3"}));
  // "Started" means the runtime saw the pull, not merely that the image left the queue (it
  // passes through the disk check first, and a loaded machine can stretch that).
  auto started = [&](const std::string& image) {
    std::lock_guard l(svc.mu);
    return std::find(svc.order.begin(), svc.order.end(), image) != svc.order.end();
  };
  ASSERT_TRUE(p.request("r.io/biz1", Tier::kBusiness));  // before the start slot: goes first
  ASSERT_TRUE(waitFor(p, [&] { return started("r.io/biz1:latest"); }));
  p.release();
  ASSERT_TRUE(waitFor(p, [&] { return started("r.io/base1:latest"); }));
  ASSERT_TRUE(p.request("r.io/biz2", Tier::kBusiness));  // while base pulls: after base, ahead of env
  ASSERT_TRUE(waitFor(p, [&] { return allTerminal(p); }));
  std::lock_guard l(svc.mu);
  std::vector<std::string> want = {"r.io/biz1:latest", "r.io/base1:latest", "r.io/base2:latest", "r.io/biz2:latest",
                                   "r.io/env1:latest", "r.io/env2:latest", "r.io/env3:latest"};
  EXPECT_EQ(svc.order, want);
  EXPECT_EQ(svc.maxInFlight, 1);
}

TEST(Prefetcher, BoundsConcurrencyGloballyAndPerRegistry) {
  FakeService svc;
  FakeDisk disk;
  auto opts = fastOptions();
  opts.concurrency = 3;
  opts.perRegistry = 2;
  Prefetcher p(svc, disk, opts);
  std::vector<std::string> env;
  for (int i = 0; i < 8; ++i) env.push_back("a.io/img" + std::to_string(i));
  ASSERT_TRUE(p.setConfigured({}, env));
  p.release();
  ASSERT_TRUE(waitFor(p, [&] { return allTerminal(p); }));
  EXPECT_EQ(svc.maxInFlight, 2);  // one registry: its limit binds
  EXPECT_EQ(p.stats().maxActive, 2u);
}

TEST(Prefetcher, SharesOnePullAndSkipsPresentImages) {
  FakeService svc;
  FakeDisk disk;
  svc.present.insert("r.io/there:latest");
  svc.pullTime = 100ms;
  Prefetcher p(svc, disk, fastOptions());
  auto k1 = p.request("r.io/x", Tier::kBusiness);
  auto k2 = p.request("r.io/x:latest", Tier::kBusiness);
  auto k3 = p.request("r.io/there", Tier::kBusiness);
  ASSERT_TRUE(k1 && k2 && k3);
  EXPECT_EQ(*k1, *k2);
  ASSERT_TRUE(waitFor(p, [&] { return allTerminal(p); }));
  EXPECT_EQ(svc.pulls["r.io/x:latest"], 1);
  EXPECT_EQ(svc.pulls.count("r.io/there:latest"), 0u);
  EXPECT_EQ(p.find(*k3)->state, PullState::kPresent);
  EXPECT_EQ(p.stats().skippedPresent, 1u);
}

TEST(Prefetcher, RetriesTransientErrorsAndGivesUpOnNotFound) {
  FakeService svc;
  FakeDisk disk;
  svc.failures["r.io/flaky:latest"] = {GrpcCode::kUnavailable, GrpcCode::kDeadlineExceeded};
  svc.failures["r.io/gone:latest"] = {GrpcCode::kNotFound, GrpcCode::kNotFound, GrpcCode::kNotFound,
                                      GrpcCode::kNotFound, GrpcCode::kNotFound};
  Prefetcher p(svc, disk, fastOptions());
  auto flaky = p.request("r.io/flaky", Tier::kBusiness);
  auto gone = p.request("r.io/gone", Tier::kBusiness);
  ASSERT_TRUE(waitFor(p, [&] { return allTerminal(p); }));
  EXPECT_EQ(p.find(*flaky)->state, PullState::kPresent);
  EXPECT_EQ(svc.pulls["r.io/flaky:latest"], 3);
  auto g = p.find(*gone);
  EXPECT_EQ(g->state, PullState::kFailed);
  EXPECT_EQ(g->lastCode, "NotFound");
  EXPECT_EQ(svc.pulls["r.io/gone:latest"], 2);  // max_permanent_attempts, not forever
}

// A runtime that does not answer, and one image requested while it is down, given up on
// after `maxAttempts`.
struct Outage {
  FakeService svc;
  FakeDisk disk;
  std::unique_ptr<Prefetcher> p;
  std::string key;
  explicit Outage(unsigned maxAttempts) {
    svc.down = true;
    auto opts = fastOptions();
    opts.maxAttempts = maxAttempts;
    p = std::make_unique<Prefetcher>(svc, disk, opts);
    key = p->request("r.io/app", Tier::kBusiness).value_or("");
  }
  bool gaveUp() {
    return waitFor(*p, [&] { return p->find(key) && p->find(key)->state == PullState::kFailed; });
  }
};

TEST(Prefetcher, RuntimeOutageCountsAttemptsBacksOffAndRecovers) {
  Outage o(4);
  auto& svc = o.svc;
  auto& p = *o.p;
  auto k = &o.key;
  // Each failed presence check is an attempt with its backoff: four, then it gives up
  // instead of asking again every few seconds forever at "attempt 1".
  ASSERT_TRUE(o.gaveUp());
  auto r = p.find(*k);
  EXPECT_EQ(r->attempts, 4u);
  EXPECT_EQ(r->lastCode, "Unavailable");
  EXPECT_TRUE(r->runtimeDown);
  EXPECT_TRUE(p.stats().runtimeDown);
  EXPECT_NE(p.stats().runtimeError.find("dial unix"), std::string::npos);
  std::this_thread::sleep_for(200ms);
  {
    std::lock_guard l(svc.mu);
    EXPECT_EQ(svc.statusCalls, 4);
    EXPECT_EQ(svc.pulls.count("r.io/app:latest"), 0u);
  }
  // The runtime answers again (the module's version probe): everything it failed is queued.
  svc.down = false;
  p.runtimeAnswered();
  ASSERT_TRUE(waitFor(p, [&] { return p.find(*k)->state == PullState::kPresent; }));
  EXPECT_FALSE(p.stats().runtimeDown);
  EXPECT_EQ(p.find(*k)->attempts, 1u);
}

TEST(Prefetcher, AnyAnswerFromTheRuntimeRequeuesWhatItsOutageFailed) {
  Outage o(2);
  auto& p = *o.p;
  ASSERT_TRUE(o.gaveUp());
  o.svc.down = false;
  auto b = p.request("r.io/b", Tier::kBusiness);  // its presence check gets an answer
  ASSERT_TRUE(waitFor(p, [&] { return allTerminal(p) && p.find(o.key)->state == PullState::kPresent; }));
  EXPECT_EQ(p.find(*b)->state, PullState::kPresent);
}

TEST(Prefetcher, InvalidReferenceFromTheRuntimeIsNotRetried) {
  FakeService svc;
  FakeDisk disk;
  svc.failures["r.io/odd:latest"] = {GrpcCode::kUnknown, GrpcCode::kUnknown};
  svc.failureText["r.io/odd:latest"] =
      "failed to pull and unpack image \"r.io/odd:latest\": failed to resolve reference: invalid reference format";
  Prefetcher p(svc, disk, fastOptions());
  auto k = p.request("r.io/odd", Tier::kBusiness);
  ASSERT_TRUE(waitFor(p, [&] { return allTerminal(p); }));
  EXPECT_EQ(p.find(*k)->state, PullState::kFailed);
  EXPECT_EQ(p.find(*k)->attempts, 1u);
  EXPECT_EQ(svc.pulls["r.io/odd:latest"], 1);
  EXPECT_FALSE(p.stats().runtimeDown);
}

TEST(Prefetcher, RequestOfAConfiguredImageKeepsItsTier) {
  FakeService svc;
  FakeDisk disk;
  Prefetcher p(svc, disk, fastOptions());
  ASSERT_TRUE(p.setConfigured({}, {"r.io/env"}));
  // Before the start slot: the request does not wait for it, nor relabels the image.
  auto k = p.request("r.io/env", Tier::kBusiness);
  ASSERT_TRUE(k);
  ASSERT_TRUE(waitFor(p, [&] { return p.find(*k)->state == PullState::kPresent; }));
  auto r = p.find(*k);
  EXPECT_EQ(r->tier, Tier::kEnvironment);
  EXPECT_EQ(r->priority, Tier::kEnvironment);
  EXPECT_TRUE(r->configured);
  EXPECT_EQ(std::string(toJson(*r, std::chrono::steady_clock::now()).get("tier").asString()), "environment");
  // An image only requested takes the tier its requests give it.
  auto b = p.request("r.io/biz", Tier::kBusiness);
  ASSERT_TRUE(p.request("r.io/biz", Tier::kBase));
  ASSERT_TRUE(waitFor(p, [&] { return allTerminal(p); }));
  EXPECT_EQ(p.find(*b)->tier, Tier::kBase);
}

TEST(Prefetcher, DeadlineCancelsAndRetries) {
  FakeService svc;
  FakeDisk disk;
  svc.pullTime = 200ms;
  auto opts = fastOptions();
  opts.attemptTimeout = 50ms;
  opts.maxAttempts = 3;
  Prefetcher p(svc, disk, opts);
  auto k = p.request("r.io/slow", Tier::kBusiness);
  ASSERT_TRUE(waitFor(p, [&] { return allTerminal(p); }));
  auto r = p.find(*k);
  EXPECT_EQ(r->state, PullState::kFailed);
  EXPECT_EQ(r->lastCode, "DeadlineExceeded");
  EXPECT_EQ(svc.pulls["r.io/slow:latest"], 3);
}

TEST(Prefetcher, DiskGuardHoldsEnvironmentButNotBase) {
  FakeService svc;
  FakeDisk disk;
  disk.percent = 90;
  Prefetcher p(svc, disk, fastOptions());
  ASSERT_TRUE(p.setConfigured({"r.io/base"}, {"r.io/env"}));
  p.release();
  ASSERT_TRUE(waitFor(p, [&] {
    auto e = p.find("r.io/env:latest");
    return e && e->state == PullState::kWaitingForDisk;
  }));
  EXPECT_EQ(p.find("r.io/base:latest")->state, PullState::kPresent);
  EXPECT_NE(p.find("r.io/env:latest")->waitReason.find("high-water"), std::string::npos);
  EXPECT_EQ(svc.pulls.count("r.io/env:latest"), 0u);
  disk.percent = 50;  // space freed: the held pull goes ahead at the next recheck
  ASSERT_TRUE(waitFor(p, [&] { return p.find("r.io/env:latest")->state == PullState::kPresent; }));
}

TEST(Prefetcher, RefreshRePullsByTagAndForgetKeepsConfigured) {
  FakeService svc;
  FakeDisk disk;
  Prefetcher p(svc, disk, fastOptions());
  ASSERT_TRUE(p.setConfigured({}, {"r.io/env"}));
  p.release();
  ASSERT_TRUE(waitFor(p, [&] { return allTerminal(p); }));
  p.refreshEnvironment();
  ASSERT_TRUE(waitFor(p, [&] { return allTerminal(p); }));
  EXPECT_EQ(svc.pulls["r.io/env:latest"], 2);
  EXPECT_FALSE(p.forget("r.io/env"));
  ASSERT_TRUE(p.request("r.io/biz", Tier::kBusiness));
  ASSERT_TRUE(waitFor(p, [&] { return allTerminal(p); }));
  EXPECT_TRUE(p.forget("r.io/biz"));
  EXPECT_FALSE(p.find("r.io/biz:latest"));
}

TEST(Prefetcher, HoldsConfiguredImagesUntilTheStartSlot) {
  FakeService svc;
  FakeDisk disk;
  Prefetcher p(svc, disk, fastOptions());
  ASSERT_TRUE(p.setConfigured({"r.io/base"}, {}));
  p.releaseAt(std::chrono::steady_clock::now() + 1000ms);
  std::this_thread::sleep_for(150ms);
  EXPECT_EQ(p.find("r.io/base:latest")->state, PullState::kQueued);
  ASSERT_TRUE(waitFor(p, [&] { return allTerminal(p); }));
}

TEST(Prefetcher, ASetsSlotHoldsOnlyItsImages) {
  FakeService svc;
  FakeDisk disk;
  Prefetcher p(svc, disk, fastOptions());
  auto now = std::chrono::steady_clock::now();
  ASSERT_TRUE(p.setConfigured(std::vector<ConfiguredImage>{
      {.image = "r.io/local", .tier = Tier::kEnvironment},
      {.image = "r.io/late", .tier = Tier::kEnvironment, .source = "set late", .notBefore = now + 800ms},
      {.image = "r.io/early", .tier = Tier::kEnvironment, .source = "set early", .notBefore = now - 1ms}}));
  p.release();
  ASSERT_TRUE(waitFor(p, [&] {
    return p.find("r.io/local:latest")->state == PullState::kPresent &&
           p.find("r.io/early:latest")->state == PullState::kPresent;
  }));
  EXPECT_EQ(p.find("r.io/late:latest")->state, PullState::kQueued);
  EXPECT_TRUE(p.waitingForStartSlot());
  ASSERT_TRUE(waitFor(p, [&] { return allTerminal(p); }));
  EXPECT_GE(std::chrono::steady_clock::now(), now + 800ms);
  EXPECT_FALSE(p.waitingForStartSlot());
  // An image two sets list takes the earlier slot of the two.
  auto later = std::chrono::steady_clock::now() + 1h;
  ASSERT_TRUE(p.setConfigured(std::vector<ConfiguredImage>{
      {.image = "r.io/shared", .tier = Tier::kEnvironment, .source = "set a", .notBefore = later},
      {.image = "r.io/shared", .tier = Tier::kEnvironment, .source = "set b", .notBefore = now}}));
  ASSERT_TRUE(waitFor(p, [&] { return allTerminal(p); }));
  EXPECT_EQ(p.find("r.io/shared:latest")->source, "set a");
}

TEST(Prefetcher, RemovedImageIsReportedAndPulledAgainOnceAfterItsBackoff) {
  FakeService svc;
  FakeDisk disk;
  auto opts = fastOptions();
  opts.removalBackoffInitial = 400ms;
  opts.removalBackoffMax = 2000ms;
  Prefetcher p(svc, disk, opts);
  ASSERT_TRUE(p.setConfigured({}, {"r.io/env"}));
  p.release();
  ASSERT_TRUE(waitFor(p, [&] { return allTerminal(p); }));
  const std::string key = "r.io/env:latest";
  // A list taken before the image was confirmed present says nothing about it.
  EXPECT_TRUE(p.checkPresence({}, std::chrono::steady_clock::now() - 1h).empty());
  EXPECT_TRUE(p.checkPresence(*svc.list(), std::chrono::steady_clock::now()).empty());
  ASSERT_TRUE(svc.remove(key));  // the kubelet's image GC
  auto removedAt = std::chrono::steady_clock::now();
  auto removals = p.checkPresence(*svc.list(), removedAt);
  ASSERT_EQ(removals.size(), 1u);
  EXPECT_EQ(removals[0].image, key);
  EXPECT_EQ(removals[0].removals, 1u);
  EXPECT_GE(removals[0].retryIn, 200ms);
  EXPECT_LE(removals[0].retryIn, 400ms);
  EXPECT_EQ(p.find(key)->state, PullState::kRemoved);
  EXPECT_NE(p.find(key)->waitReason.find("removed by the runtime"), std::string::npos);
  EXPECT_TRUE(p.checkPresence(*svc.list(), std::chrono::steady_clock::now()).empty());  // reported once
  ASSERT_TRUE(waitFor(p, [&] { return p.find(key)->state == PullState::kPresent; }));
  EXPECT_GE(std::chrono::steady_clock::now() - removedAt, 200ms);
  EXPECT_EQ(svc.pulls[key], 2);  // once after the backoff, not in a loop
  EXPECT_EQ(p.stats().removals, 1u);
  // Removed again: the backoff doubles.
  ASSERT_TRUE(svc.remove(key));
  removals = p.checkPresence(*svc.list(), std::chrono::steady_clock::now());
  ASSERT_EQ(removals.size(), 1u);
  EXPECT_EQ(removals[0].removals, 2u);
  EXPECT_GE(removals[0].retryIn, 400ms);
  std::this_thread::sleep_for(150ms);
  EXPECT_EQ(svc.pulls[key], 2);
  EXPECT_EQ(p.find(key)->removals, 2u);
}

TEST(Prefetcher, TheRuntimesListAnswersForQueuedImagesBeforeTheirSlot) {
  FakeService svc;
  FakeDisk disk;
  svc.present = {"r.io/env:latest", "r.io/base:latest"};
  Prefetcher p(svc, disk, fastOptions());
  auto later = std::chrono::steady_clock::now() + 1h;  // a restart: every slot is ahead
  ASSERT_TRUE(p.setConfigured(std::vector<ConfiguredImage>{
      {.image = "r.io/env", .tier = Tier::kEnvironment, .source = "set s", .notBefore = later},
      {.image = "r.io/base", .tier = Tier::kBase, .source = "set s", .notBefore = later},
      {.image = "r.io/gone", .tier = Tier::kEnvironment, .source = "set s", .notBefore = later}}));
  EXPECT_TRUE(p.checkPresence(*svc.list(), std::chrono::steady_clock::now()).empty());
  EXPECT_EQ(p.find("r.io/env:latest")->state, PullState::kPresent);
  EXPECT_EQ(p.find("r.io/base:latest")->state, PullState::kQueued) << "a base image waits for its pin label";
  EXPECT_EQ(p.find("r.io/gone:latest")->state, PullState::kQueued);
  EXPECT_EQ(svc.pulls.size(), 0u);
}

TEST(Prefetcher, RemovedBaseImageWaitsForTheDiskGuard) {
  FakeService svc;
  FakeDisk disk;
  auto opts = fastOptions();
  opts.removalBackoffInitial = opts.removalBackoffMax = 50ms;
  Prefetcher p(svc, disk, opts);
  ASSERT_TRUE(p.setConfigured({"r.io/base"}, {}));
  p.release();
  ASSERT_TRUE(waitFor(p, [&] { return allTerminal(p); }));
  disk.percent = 95;  // what made the GC run
  ASSERT_TRUE(svc.remove("r.io/base:latest"));
  ASSERT_EQ(p.checkPresence(*svc.list(), std::chrono::steady_clock::now()).size(), 1u);
  ASSERT_TRUE(waitFor(p, [&] { return p.find("r.io/base:latest")->state == PullState::kWaitingForDisk; }));
  EXPECT_EQ(svc.pulls["r.io/base:latest"], 1);  // a base image too: no re-pull into a full disk
  disk.percent = 50;
  ASSERT_TRUE(waitFor(p, [&] { return p.find("r.io/base:latest")->state == PullState::kPresent; }));
  EXPECT_EQ(svc.pulls["r.io/base:latest"], 2);
}

TEST(Prefetcher, PinsBaseImagesOnceAndReportsWhatTheRuntimeSays) {
  FakeService svc;
  FakeDisk disk;
  svc.honourPin = false;  // containerd 1.6: the label is kept, the CRI never says pinned
  Prefetcher p(svc, disk, fastOptions());
  ASSERT_TRUE(p.setConfigured({"r.io/base"}, {"r.io/env"}));
  p.release();
  ASSERT_TRUE(waitFor(p, [&] { return allTerminal(p); }));
  EXPECT_EQ(p.find("r.io/base:latest")->pinLabel, "set");
  EXPECT_FALSE(p.find("r.io/base:latest")->pinned);
  EXPECT_EQ(svc.pinned, std::set<std::string>{"r.io/base:latest"});  // environment images are not pinned
  EXPECT_EQ(svc.pinCalls, 1);
  svc.honourPin = true;
  ASSERT_TRUE(svc.remove("r.io/base:latest"));
  Prefetcher q(svc, disk, fastOptions());
  ASSERT_TRUE(q.setConfigured({"r.io/base"}, {}));
  q.release();
  ASSERT_TRUE(waitFor(q, [&] { return allTerminal(q); }));
  EXPECT_TRUE(q.find("r.io/base:latest")->pinned);
  auto j = toJson(*q.find("r.io/base:latest"), std::chrono::steady_clock::now());
  EXPECT_EQ(j.get("pin_label").asString(), "set");
}

}  // namespace
}  // namespace nodeagent::imagepull
