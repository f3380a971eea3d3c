// Prefetch sets from a ConfigMap: parsing, rejection of bad sets (naming set and field),
// the node-selector match, and ClusterSetSource driven through its watch handlers.
#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "imagepull/cluster_sets.h"
#include "core/state_store.h"
#include "common/files.h"
#include "imagepull/module.h"
#include "tests/imagepull/fakes.h"
#include "imagepull/prefetch_set.h"

namespace nodeagent::imagepull {
namespace {

const char* kWhere = "kube-system/nodeagent-prefetch";

TEST(PrefetchSets, ParsesTierImagesSelectorAndDeadline) {
  auto p = parsePrefetchSets({{"gpu", R"(tier: environment
images: [nvidia/cuda:12.4, "registry.example.com/ml/torch:2.5"]
nodeSelector: {node.kubernetes.io/instance-type: g5.xlarge, gpu: "true"}
deadline: "2026-12-03T06:00:00Z"
)"},
                              {"all", "tier: base\nimages: [busybox]\n"}},
                             kWhere);
  ASSERT_TRUE(p.rejected.empty()) << p.rejected.front().problem;
  ASSERT_EQ(p.sets.size(), 2u);
  const auto& all = p.sets[0];
  EXPECT_EQ(all.name, "all");
  EXPECT_EQ(all.tier, Tier::kBase);
  EXPECT_EQ(all.images, std::vector<std::string>{"docker.io/library/busybox:latest"});
  EXPECT_TRUE(all.nodeSelector.empty());
  EXPECT_FALSE(all.deadline);
  const auto& gpu = p.sets[1];
  EXPECT_EQ(gpu.tier, Tier::kEnvironment);
  EXPECT_EQ(gpu.images, (std::vector<std::string>{"docker.io/nvidia/cuda:12.4", "registry.example.com/ml/torch:2.5"}));
  EXPECT_EQ(gpu.nodeSelector, (Labels{{"gpu", "true"}, {"node.kubernetes.io/instance-type", "g5.xlarge"}}));
  ASSERT_TRUE(gpu.deadline);
  EXPECT_EQ(std::chrono::system_clock::to_time_t(*gpu.deadline), 1796277600);
}

TEST(PrefetchSets, RejectsABadSetNamingSetAndFieldAndKeepsTheOthers) {
  auto p = parsePrefetchSets({{"bad-ref", "tier: base\nimages: ['Not An Image']\n"},
                              {"bad-tier", "tier: gold\nimages: [busybox]\n"},
                              {"bad-selector", "tier: base\nimages: [busybox]\nnodeSelector: {'-x-': y}\n"},
                              {"selector-list", "tier: base\nimages: [busybox]\nnodeSelector: [a, b]\n"},
                              {"bad-deadline", "tier: base\nimages: [busybox]\ndeadline: tomorrow\n"},
                              {"unknown-key", "tier: base\nimages: [busybox]\nnodeselector: {a: b}\n"},
                              {"no-images", "tier: base\n"},
                              {"not-yaml", "tier: [\n"},
                              {"bad-secret", "tier: base\nimages: [busybox]\nimagePullSecrets: [Bad_Name]\n"},
                              {"good", "tier: business\nimages: [nginx:1.27]\n"},
                              {"with-secrets",
                               "tier: business\nimages: [nginx:1.27]\nimagePullSecrets: [regcred, {name: other}, regcred]\n"}},
                             kWhere);
  ASSERT_EQ(p.sets.size(), 2u);
  EXPECT_EQ(p.sets[0].name, "good");
  EXPECT_TRUE(p.sets[0].imagePullSecrets.empty());
  EXPECT_EQ(p.sets[1].imagePullSecrets, (std::vector<std::string>{"regcred", "other"}));
  ASSERT_EQ(p.rejected.size(), 9u);
  std::map<std::string, std::string> why;
  for (const auto& r : p.rejected) why[r.name] = r.problem;
  auto has = [&](const std::string& set, const std::string& text) {
    EXPECT_NE(why[set].find("set " + set), std::string::npos) << why[set];
    EXPECT_NE(why[set].find(text), std::string::npos) << set << ": " << why[set];
  };
  has("bad-ref", "images: ");
  has("bad-tier", "tier: ");
  has("bad-selector", "nodeSelector: \"-x-\" is not a valid label key");
  has("selector-list", "nodeSelector: must be a mapping");
  has("bad-deadline", "deadline: ");
  has("unknown-key", "nodeselector");
  has("no-images", "images is required");
  has("not-yaml", kWhere);
  has("bad-secret", "imagePullSecrets: entry 1 is not a Secret name");
}

TEST(PrefetchSets, LabelSyntax) {
  EXPECT_TRUE(validLabelKey("gpu"));
  EXPECT_TRUE(validLabelKey("node.kubernetes.io/instance-type"));
  EXPECT_TRUE(validLabelKey("a_b.c-d"));
  EXPECT_FALSE(validLabelKey(""));
  EXPECT_FALSE(validLabelKey("-a"));
  EXPECT_FALSE(validLabelKey("Example.com/a"));
  EXPECT_FALSE(validLabelKey("a/b/c"));
  EXPECT_FALSE(validLabelKey(std::string(64, 'a')));
  EXPECT_TRUE(validLabelValue(""));
  EXPECT_TRUE(validLabelValue("g5.xlarge"));
  EXPECT_FALSE(validLabelValue("a b"));
  EXPECT_FALSE(parseRfc3339Utc("2026-12-03T06:00:00+01:00"));
  EXPECT_FALSE(parseRfc3339Utc("2026-13-03T06:00:00Z"));
  EXPECT_TRUE(parseRfc3339Utc("2026-12-03T06:00:00.250Z"));
}

TEST(PrefetchSets, SelectorNeedsEveryPair) {
  PrefetchSet s{.name = "x", .nodeSelector = {{"a", "1"}, {"b", ""}}};
  EXPECT_TRUE(selects(s, {{"a", "1"}, {"b", ""}, {"c", "3"}}));
  EXPECT_FALSE(selects(s, {{"a", "1"}}));
  EXPECT_FALSE(selects(s, {{"a", "2"}, {"b", ""}}));
  EXPECT_TRUE(selects(PrefetchSet{}, {}));
}

Json node(const std::map<std::string, std::string>& labels) {
  Json l = Json::object();
  for (const auto& [k, v] : labels) l.set(k, v);
  return Json::object().set("metadata", Json::object().set("name", "n1").set("labels", l));
}

Json configMap(const std::map<std::string, std::string>& data) {
  Json d = Json::object();
  for (const auto& [k, v] : data) d.set(k, v);
  return Json::object().set("metadata", Json::object().set("name", "nodeagent-prefetch")).set("data", d);
}

// The source without an API server (never started: its handlers are what the watches call).
std::unique_ptr<kube::Client> unusedClient() {
  auto c = kube::Client::create({.server = "https://127.0.0.1:1", .token = "unused"}, {});
  EXPECT_TRUE(c) << c.error().message();
  return std::move(*c);
}

TEST(ClusterSetSource, ReEvaluatesOnLabelAndConfigMapChangesAndReportsRejectionsOnce) {
  auto client = unusedClient();
  ClusterSetSource src(*client, {.nodeName = "n1"});
  EXPECT_FALSE(src.view().synced());
  src.setConfigMap(nullptr);
  src.setNode(node({{"gpu", "true"}}));
  EXPECT_TRUE(src.view().synced());
  EXPECT_FALSE(src.view().configMapFound);
  EXPECT_TRUE(src.view().selected.empty());

  auto cm = configMap({{"gpu", "tier: environment\nimages: [cuda]\nnodeSelector: {gpu: 'true'}\n"},
                       {"web", "tier: business\nimages: [nginx]\nnodeSelector: {role: web}\n"},
                       {"broken", "tier: gold\nimages: [x]\n"}});
  src.setConfigMap(&cm);
  EXPECT_EQ(src.view().selected, std::vector<std::string>{"gpu"});
  auto rejected = src.takeNewRejected();
  ASSERT_EQ(rejected.size(), 1u);
  EXPECT_EQ(rejected[0].name, "broken");
  src.setConfigMap(&cm);
  EXPECT_TRUE(src.takeNewRejected().empty()) << "reported once";

  src.setNode(node({{"gpu", "true"}, {"role", "web"}}));
  EXPECT_EQ(src.view().selected, (std::vector<std::string>{"gpu", "web"}));
  src.setNode(node({{"role", "web"}}));
  EXPECT_EQ(src.view().selected, std::vector<std::string>{"web"});
  src.setConfigMap(nullptr);
  EXPECT_TRUE(src.view().selected.empty());
  EXPECT_TRUE(src.view().parsed.rejected.empty());
  src.setConfigMap(&cm);
  EXPECT_EQ(src.takeNewRejected().size(), 1u) << "broken again after a fix is reported again";
}

ImageRecord record(const std::string& image, PullState state, bool configured = true) {
  ImageRecord r;
  r.image = image;
  r.state = state;
  r.configured = configured;
  return r;
}

TEST(ImagesReady, CountsWhatTheNodeShouldHoldAndNamesTheFirstMissing) {
  auto c = imagesReadyCondition({}, "", true);
  EXPECT_TRUE(c.status);
  EXPECT_EQ(c.reason, "NoImages");
  EXPECT_EQ(c.message, "0/0 images");

  std::vector<ImageRecord> rs{record("a", PullState::kPresent), record("b", PullState::kPulling),
                              record("asked", PullState::kQueued, false)};
  c = imagesReadyCondition(rs, "", true);
  EXPECT_EQ(c.type, "ImagesReady");
  EXPECT_FALSE(c.status);
  EXPECT_EQ(c.reason, "Pulling");
  EXPECT_EQ(c.message, "1/2 images, missing: b") << "on-demand pulls are not counted";
  EXPECT_EQ(imagesReadyCondition(rs, "", false).reason, "WaitingForStartSlot");
  EXPECT_EQ(imagesReadyCondition(rs, "connection refused", true).reason, "RuntimeUnavailable");

  rs.push_back(record("gc", PullState::kRemoved));
  EXPECT_EQ(imagesReadyCondition(rs, "", true).reason, "ImagesRemoved");
  rs.pop_back();
  for (auto n : {"c", "d", "e"}) rs.push_back(record(n, PullState::kFailed));
  c = imagesReadyCondition(rs, "", true);
  EXPECT_EQ(c.reason, "PullFailed");
  EXPECT_EQ(c.message, "1/5 images, missing: b, c, d (+1 more)");
  rs = {record("a", PullState::kPresent)};
  c = imagesReadyCondition(rs, "", true);
  EXPECT_TRUE(c.status);
  EXPECT_EQ(c.reason, "AllPresent");
  EXPECT_EQ(c.message, "1/1 images");
}

struct NullOutput final : core::CallOutput {
  void progress(const Json&) override {}
  bool cancelled() const override { return false; }
};

std::vector<std::string> trackedRequests(ImagePullModule& m) {
  NullOutput out;
  auto st = m.call({.command = "status"}, out);
  EXPECT_TRUE(st);
  std::vector<std::string> images;
  for (const auto& i : st->get("images").asArray())
    if (i.get("source").asString() == "request") images.push_back(i.get("image").asString() + "=" + i.get("tier").asString());
  return images;
}

TEST(ImagePullModule, RemembersRequestedImagesAcrossARestart) {
  char tmpl[] = "/tmp/nodeagent-requests-XXXXXX";
  ASSERT_TRUE(::mkdtemp(tmpl));
  std::string dir = std::string(tmpl) + "/imagepull";  // the module's own state dir
  core::StateStore store;
  Config c;
  c.authFile = "";
  NullOutput out;
  {
    ImagePullModule m(core::ModuleContext{.store = &store, .stateDir = dir}, c, "n1", std::make_unique<FakeService>());
    ASSERT_TRUE(m.reconcile({.initial = true}));
    ASSERT_TRUE(m.call({.command = "pull", .args = {"app/api:1"}}, out));
    ASSERT_TRUE(m.call({.command = "pull", .args = {"app/web:2"}}, out));
    ASSERT_TRUE(m.call({.command = "pull", .args = {"app/tmp:3"}}, out));
    ASSERT_TRUE(m.call({.command = "forget", .args = {"app/tmp:3"}}, out));
    m.stop();
  }
  auto saved = readFile(dir + "/requests.json");
  ASSERT_TRUE(saved);
  EXPECT_NE(saved->find("docker.io/app/api:1"), std::string::npos) << *saved;
  EXPECT_EQ(saved->find("app/tmp"), std::string::npos) << "forgotten: " << *saved;

  auto svc = std::make_unique<FakeService>();
  FakeService* runtime = svc.get();
  ImagePullModule m(core::ModuleContext{.store = &store, .stateDir = dir}, c, "n1", std::move(svc));
  ASSERT_TRUE(m.reconcile({.initial = true}));
  EXPECT_EQ(trackedRequests(m),
            (std::vector<std::string>{"docker.io/app/api:1=business", "docker.io/app/web:2=business"}));
  // Restored requests are pulled again (this runtime is new and empty).
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  auto pulled = [&] {
    std::lock_guard l(runtime->mu);
    return runtime->present;
  };
  while (std::chrono::steady_clock::now() < deadline && pulled().size() < 2)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(pulled(), (std::set<std::string>{"docker.io/app/api:1", "docker.io/app/web:2"}));
  m.stop();
  std::filesystem::remove_all(tmpl);
}

TEST(ImagePullModule, IgnoresACorruptRequestsFile) {
  char tmpl[] = "/tmp/nodeagent-requests-XXXXXX";
  ASSERT_TRUE(::mkdtemp(tmpl));
  ASSERT_TRUE(writeFileAtomic(std::string(tmpl) + "/requests.json", "{not json", 0640));
  core::StateStore store;
  Config c;
  c.authFile = "";
  ImagePullModule m(core::ModuleContext{.store = &store, .stateDir = tmpl}, c, "n1", std::make_unique<FakeService>());
  ASSERT_TRUE(m.reconcile({.initial = true}));
  EXPECT_TRUE(trackedRequests(m).empty());
  m.stop();
  std::filesystem::remove_all(tmpl);
}

}  // namespace
}  // namespace nodeagent::imagepull
