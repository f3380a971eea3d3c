// Cluster prefetch sets against a real kube-apiserver (tests/k8s/control-plane.sh) with the
// agent's ServiceAccount (deploy/rbac.yaml): a set created with kubectl for a label the Node
// has is picked and pulled, a bad set is rejected with a log line and an Event naming it
// and the field, and removing the label drops the set (the image stays in the runtime,
// untracked). The runtime is the imagepull tests' fake, except in the last test, which runs
// the module against the cri tier's real containerd and registry too.
#include <gtest/gtest.h>

#include <spdlog/sinks/ostream_sink.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "common/log.h"
#include "core/state_store.h"
#include "imagepull/module.h"
#include "tests/imagepull/cri_env.h"
#include "tests/imagepull/fakes.h"
#include "tests/kube/control_plane.h"

namespace nodeagent::imagepull {
namespace {

using namespace std::chrono_literals;
using kube::testing::ControlPlane;
using kube::testing::eventually;

struct NullOutput final : core::CallOutput {
  void progress(const Json&) override {}
  bool cancelled() const override { return false; }
};

Json status(ImagePullModule& m) {
  NullOutput out;
  auto r = m.call({.command = "status"}, out);
  EXPECT_TRUE(r) << r.error().message();
  return r ? *r : Json();
}

const Json* findSet(const Json& st, const std::string& name) {
  for (const auto& s : st.get("cluster_sets").get("sets").asArray())
    if (s.get("name").asString() == name) return &s;
  return nullptr;
}

// The ImagesReady condition as the reporter would put it on the Node.
core::Condition imagesReady(core::StateStore& store) {
  auto snap = store.get("imagepull");
  if (snap)
    for (const auto& c : snap->state.conditions)
      if (c.type == "ImagesReady") return c;
  return {};
}

bool tracked(const Json& st, const std::string& image) {
  for (const auto& i : st.get("images").asArray())
    if (i.get("image").asString() == image) return true;
  return false;
}

void kubectl(ControlPlane& cp, const std::vector<std::string>& args) {
  auto r = cp.kubectl(args);
  ASSERT_EQ(r.rc, 0) << r.out;
}

// Writes the prefetch sets' ConfigMap with `data` (the lines under data:) and applies it.
void applySets(ControlPlane& cp, const std::string& data) {
  std::string manifest = cp.dir() + "/prefetch-sets.yaml";
  std::ofstream(manifest) << "apiVersion: v1\nkind: ConfigMap\n"
                          << "metadata: {name: nodeagent-prefetch, namespace: kube-system}\ndata:\n"
                          << data;
  kubectl(cp, {"apply", "-f", manifest});
}

// The module on a fake runtime, talking to the control plane with the agent's ServiceAccount.
struct Agent {
  core::StateStore store;
  FakeService* runtime;
  ImagePullModule module;
  Agent(ControlPlane& cp, const std::string& node, Config c)
      : runtime(nullptr), module(core::ModuleContext{.store = &store}, withoutSpread(c), node, fake(), agentKube(cp)) {}
  // One reconcile pass; then whether the runtime holds every one of `images`.
  bool passAndHolds(const std::vector<std::string>& images) {
    EXPECT_TRUE(module.reconcile({}));
    std::lock_guard l(runtime->mu);
    return std::all_of(images.begin(), images.end(), [&](const auto& i) { return runtime->present.contains(i); });
  }

 private:
  static Config withoutSpread(Config c) {
    c.startSpread = 0ms;
    return c;
  }
  std::unique_ptr<ImageService> fake() {
    auto svc = std::make_unique<FakeService>();
    svc->pullTime = 5ms;
    runtime = svc.get();
    return svc;
  }
  static kube::Config agentKube(ControlPlane& cp) {
    kube::Config kc;
    kc.mode = "kubeconfig";
    kc.kubeconfig = cp.env("KUBECONFIG_AGENT");
    return kc;
  }
};

TEST(ClusterSets, PicksTheSetsItsLabelsSelectRejectsBadOnesAndDropsOnLabelRemoval) {
  auto& cp = ControlPlane::shared();
  const std::string nodeName = "prefetch-node";
  cp.createNode(nodeName);
  kubectl(cp, {"label", "node", nodeName, "gpu=true"});
  applySets(cp, R"(  gpu: |
    tier: environment
    images: [registry.example.com/ml/cuda:12.4]
    nodeSelector: {gpu: "true"}
  everyone: |
    tier: base
    images: [registry.example.com/os/base:1]
  web: |
    tier: business
    images: [registry.example.com/web/nginx:1.27]
    nodeSelector: {role: web}
  bad-tier: |
    tier: gold
    images: [registry.example.com/x:1]
)");

  Config c;
  c.authFile = "";
  size_t mark = cp.auditMark();
  Agent agent(cp, nodeName, c);
  auto& store = agent.store;
  FakeService* runtime = agent.runtime;
  auto& m = agent.module;
  auto pass = [&] { EXPECT_TRUE(m.reconcile({})); };

  const std::string cuda = "registry.example.com/ml/cuda:12.4", base = "registry.example.com/os/base:1";
  ASSERT_TRUE(eventually([&] { return agent.passAndHolds({cuda, base}); }, 30s)) << status(m).dump(2);
  ASSERT_TRUE(eventually([&] {
    pass();
    return imagesReady(store).status;
  })) << imagesReady(store).message;
  EXPECT_EQ(imagesReady(store).reason, "AllPresent");
  EXPECT_EQ(imagesReady(store).message, "2/2 images");
  auto st = status(m);
  EXPECT_TRUE(st.get("active").asBool());
  EXPECT_TRUE(st.get("cluster_sets").get("synced").asBool());
  ASSERT_TRUE(findSet(st, "gpu"));
  EXPECT_TRUE(findSet(st, "gpu")->get("selected").asBool());
  EXPECT_TRUE(findSet(st, "everyone")->get("selected").asBool());
  EXPECT_FALSE(findSet(st, "web")->get("selected").asBool());
  EXPECT_FALSE(tracked(st, "registry.example.com/web/nginx:1.27"));
  const auto& rejected = st.get("cluster_sets").get("rejected").asArray();
  ASSERT_EQ(rejected.size(), 1u);
  EXPECT_EQ(rejected[0].get("name").asString(), "bad-tier");
  EXPECT_NE(rejected[0].get("problem").asString().find("tier: "), std::string::npos) << rejected[0].dump();

  // The rejection is an Event on the ConfigMap, naming the set and the field.
  EXPECT_TRUE(eventually([&] {
    auto r = cp.kubectl({"-n", "kube-system", "get", "events", "--field-selector",
                         "involvedObject.kind=ConfigMap,involvedObject.name=nodeagent-prefetch", "-o",
                         "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}"});
    return r.out.find("PrefetchSetRejected: nodeagent on prefetch-node rejected prefetch set bad-tier") !=
               std::string::npos &&
           r.out.find("tier: ") != std::string::npos;
  }));

  // Label removed: the gpu set is dropped, its image untracked but not deleted.
  kubectl(cp, {"label", "node", nodeName, "gpu-"});
  ASSERT_TRUE(eventually([&] {
    pass();
    return !tracked(status(m), cuda);
  }, 20s)) << status(m).dump(2);
  st = status(m);
  EXPECT_FALSE(findSet(st, "gpu")->get("selected").asBool());
  EXPECT_TRUE(tracked(st, base));
  {
    std::lock_guard l(runtime->mu);
    EXPECT_TRUE(runtime->present.contains(cuda)) << "dropping a set never deletes its images";
  }

  EXPECT_EQ(imagesReady(store).message, "1/1 images");

  // A label added selects the web set (business tier) without a restart; until it is
  // pulled the condition says what is missing.
  {
    std::lock_guard l(runtime->mu);
    runtime->pullTime = 1500ms;
  }
  kubectl(cp, {"label", "node", nodeName, "role=web"});
  ASSERT_TRUE(eventually([&] {
    pass();
    return !imagesReady(store).status;
  })) << imagesReady(store).message;
  EXPECT_EQ(imagesReady(store).message, "1/2 images, missing: registry.example.com/web/nginx:1.27");
  EXPECT_EQ(imagesReady(store).reason, "Pulling");
  ASSERT_TRUE(eventually([&] {
    pass();
    std::lock_guard l(runtime->mu);
    return runtime->present.contains("registry.example.com/web/nginx:1.27");
  }, 20s)) << status(m).dump(2);
  EXPECT_TRUE(eventually([&] {
    pass();
    return imagesReady(store).status;
  }));
  st = status(m);
  EXPECT_EQ(findSet(st, "web")->get("present").asInt(), 1);

  // Every request of the agent for the ConfigMap was allowed, and named it.
  using kube::testing::AuditQuery;
  EXPECT_GE(cp.countAudit({.verb = "list", .resource = "configmaps", .user = cp.agentUser()}, mark), 1);
  for (const auto& e : cp.audit(mark)) {
    if (e.get("user").get("username").asString() != cp.agentUser()) continue;
    if (e.get("objectRef").get("resource").asString() != "configmaps") continue;
    EXPECT_EQ(e.get("responseStatus").get("code").asInt(), 200) << e.dump();
  }
  m.stop();
}

// Pull secrets from the cluster, and no fight with the image GC, against the real API with
// the agent's ServiceAccount. A set names two Secrets: the one deploy/rbac.yaml grants by
// name is read (GET, never list) and its credential reaches the runtime with the set's pull;
// the other is refused by RBAC and reported by name; the node's auth file still serves its
// own host; the password appears in no log line and no status output. Then an image the
// runtime drops (as the kubelet's image GC would) gets a Warning Event on the Node and is
// pulled again once after the backoff.
TEST(ClusterSets, PullSecretsByNameAndAnImageRemovedByTheGc) {
  auto& cp = ControlPlane::shared();
  const std::string nodeName = "secret-node", password = "hunter2-nodeagent-16";
  cp.createNode(nodeName);
  auto logger = log::get("imagepull");
  std::ostringstream captured;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(captured);
  logger->sinks().push_back(sink);
  kubectl(cp, {"-n", "kube-system", "delete", "secret", "nodeagent-pull-secret", "--ignore-not-found"});
  kubectl(cp, {"-n", "kube-system", "create", "secret", "docker-registry", "nodeagent-pull-secret",
               "--docker-server=private.example.com", "--docker-username=svc", "--docker-password=" + password});
  kubectl(cp, {"-n", "kube-system", "delete", "configmap", "nodeagent-prefetch", "--ignore-not-found"});
  applySets(cp, R"(  private: |
    tier: environment
    images: [private.example.com/team/app:1]
    imagePullSecrets: [nodeagent-pull-secret, not-granted]
  public: |
    tier: environment
    images: [public.example.com/tools/tool:1]
)");
  std::string authFile = cp.dir() + "/node-auth.json";
  std::ofstream(authFile) << R"({"auths":{"public.example.com":{"auth":"bm9kZTpmaWxlcHc="}}})";  // node:filepw

  size_t mark = cp.auditMark();
  Config c;
  c.authFile = authFile;
  c.presenceCheck = 200ms;
  c.removalBackoffInitial = c.removalBackoffMax = 1500ms;
  Agent agent(cp, nodeName, c);
  FakeService& runtime = *agent.runtime;
  const std::string priv = "private.example.com/team/app:1", pub = "public.example.com/tools/tool:1";
  ASSERT_TRUE(eventually([&] { return agent.passAndHolds({priv, pub}); }, 30s)) << status(agent.module).dump(2);
  {
    std::lock_guard l(runtime.mu);
    ASSERT_TRUE(runtime.credentials[priv]);
    EXPECT_EQ(runtime.credentials[priv]->username, "svc");
    EXPECT_EQ(runtime.credentials[priv]->password, password);
    ASSERT_TRUE(runtime.credentials[pub]) << "the node's auth file keeps working";
    EXPECT_EQ(runtime.credentials[pub]->username, "node");
  }
  auto st = status(agent.module);
  const auto& secrets = st.get("credentials").get("pull_secrets").asArray();
  ASSERT_EQ(secrets.size(), 2u) << st.dump(2);
  EXPECT_EQ(secrets[0].get("name").asString(), "nodeagent-pull-secret");
  EXPECT_EQ(secrets[0].get("hosts").asInt(), 1);
  EXPECT_EQ(secrets[1].get("name").asString(), "not-granted");
  EXPECT_NE(secrets[1].get("error").asString().find("forbidden"), std::string::npos) << secrets[1].dump();

  // The GC removes the private image: reported on the Node, pulled again once after the backoff.
  ASSERT_TRUE(runtime.remove(priv));
  auto removedAt = std::chrono::steady_clock::now();
  ASSERT_TRUE(eventually([&] {
    agent.passAndHolds({});
    return imagesReady(agent.store).reason == "ImagesRemoved";
  }, 10s)) << imagesReady(agent.store).message;
  EXPECT_TRUE(eventually([&] {
    auto r = cp.kubectl({"-n", "default", "get", "events", "--field-selector",
                         "involvedObject.kind=Node,involvedObject.name=" + nodeName, "-o",
                         "jsonpath={range .items[*]}{.type} {.reason}: {.message}{\"\\n\"}{end}"});
    return r.out.find("Warning PrefetchedImageRemoved: image " + priv + " (environment, set private) was removed") !=
           std::string::npos;
  })) << "no PrefetchedImageRemoved Event on the Node";
  ASSERT_TRUE(eventually([&] { return agent.passAndHolds({priv}); }, 20s)) << status(agent.module).dump(2);
  EXPECT_GE(std::chrono::steady_clock::now() - removedAt, 700ms);
  for (auto until = std::chrono::steady_clock::now() + 3s; std::chrono::steady_clock::now() < until;)
    agent.passAndHolds({}), std::this_thread::sleep_for(100ms);
  {
    std::lock_guard l(runtime.mu);
    EXPECT_EQ(runtime.pulls[priv], 2) << "pulled again once, not in a loop";
    EXPECT_EQ(runtime.credentials[priv]->password, password) << "the re-pull uses the Secret too";
  }
  st = status(agent.module);
  EXPECT_EQ(st.get("removed_by_runtime").asInt(), 1);
  agent.module.stop();
  logger->sinks().pop_back();

  // Exactly the named Secrets were asked for, by GET; the content is nowhere.
  for (const auto& e : cp.audit(mark)) {
    if (e.get("user").get("username").asString() != cp.agentUser()) continue;
    if (e.get("objectRef").get("resource").asString() != "secrets") continue;
    EXPECT_EQ(e.get("verb").asString(), "get") << e.dump();
    auto name = e.get("objectRef").get("name").asString();
    EXPECT_TRUE(name == "nodeagent-pull-secret" || name == "not-granted") << e.dump();
  }
  EXPECT_GE(cp.countAudit({.verb = "get", .resource = "secrets", .user = cp.agentUser()}, mark), 2);
  auto text = captured.str();
  EXPECT_NE(text.find("pull secret kube-system/not-granted not used"), std::string::npos) << text;
  for (const auto& where : {text, st.dump(2)}) {
    EXPECT_EQ(where.find(password), std::string::npos) << where;
    EXPECT_EQ(where.find("filepw"), std::string::npos) << where;
  }
  kubectl(cp, {"-n", "kube-system", "delete", "secret", "nodeagent-pull-secret"});
}

// All real: kube-apiserver with the agent's ServiceAccount, Debian's containerd and a
// docker-registry that wants a login. A set names a pull secret: both its images are pulled
// with the Secret's credential, each blob fetched once (the registry's log), the Node
// condition goes True. A business request is made. One image is removed as the GC would
// (`ctr -n k8s.io images rm`): reported, pulled again once after the backoff. The agent
// restarts: the business request is still there. The password is in no log and no status.
TEST(PrefetchAllReal, SetWithPullSecretGcRemovalAndRestart) {
  auto& cp = ControlPlane::shared();
  const std::string nodeName = "all-real-node", password = "all-real-s3cret-16";
  Env env("--auth svc:" + password);
  env.push("ra:v1=rbase/1024+128 rb:v1=rbase/1024+96 rc:v1=rc/256+64");
  const std::string a = env.image("ra:v1"), b = env.image("rb:v1"), biz = env.image("rc:v1");
  cp.createNode(nodeName);
  kubectl(cp, {"label", "node", nodeName, "pool=all-real"});
  kubectl(cp, {"-n", "kube-system", "delete", "secret", "nodeagent-pull-secret", "--ignore-not-found"});
  kubectl(cp, {"-n", "kube-system", "create", "secret", "docker-registry", "nodeagent-pull-secret",
               "--docker-server=" + env["REGISTRY"], "--docker-username=svc", "--docker-password=" + password});
  kubectl(cp, {"-n", "kube-system", "delete", "configmap", "nodeagent-prefetch", "--ignore-not-found"});
  applySets(cp, "  real: |\n    tier: environment\n    images: [" + a + ", " + b +
                    "]\n    nodeSelector: {pool: all-real}\n    imagePullSecrets: [nodeagent-pull-secret]\n");
  auto logger = log::get("imagepull");
  std::ostringstream captured;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(captured);
  logger->sinks().push_back(sink);

  core::StateStore store;
  Config c;
  c.startSpread = 0ms;
  c.authFile = "";
  c.runtimeEndpoint = "unix://" + env["CRI_SOCKET"];
  c.diskHighWaterPercent = 100;
  c.presenceCheck = 300ms;
  c.removalBackoffInitial = c.removalBackoffMax = 2s;
  kube::Config kc;
  kc.mode = "kubeconfig";
  kc.kubeconfig = cp.env("KUBECONFIG_AGENT");
  const std::string stateDir = env.dir() + "/state/imagepull";
  auto start = [&] {
    return std::make_unique<ImagePullModule>(core::ModuleContext{.store = &store, .stateDir = stateDir}, c, nodeName,
                                             nullptr, kc);
  };
  auto m = start();
  std::string dumps;
  auto ready = [&] {
    EXPECT_TRUE(m->reconcile({}));
    return imagesReady(store).status && imagesReady(store).message == "2/2 images";
  };
  ASSERT_TRUE(eventually(ready, 90s)) << imagesReady(store).message << status(*m).dump(2);
  auto blobs = env.blobGets();
  for (const auto& d : env.blobsOf({a, b})) EXPECT_EQ(blobs[d], 1) << d << " fetched " << blobs[d] << " times";
  NullOutput out;
  auto pulled = m->call({.command = "pull", .args = {biz}}, out);
  ASSERT_TRUE(pulled) << pulled.error().message();
  dumps += pulled->dump(2);
  EXPECT_EQ(pulled->get("state").asString(), "present") << pulled->dump(2);

  ASSERT_EQ(env.pullsOf(a), 1);
  run("ctr --address " + env["CRI_SOCKET"] + " -n k8s.io images rm " + a);
  ASSERT_TRUE(eventually([&] {
    EXPECT_TRUE(m->reconcile({}));
    return imagesReady(store).reason == "ImagesRemoved";
  }, 20s)) << imagesReady(store).message;
  EXPECT_EQ(env.pullsOf(a), 1) << "not before the backoff";
  ASSERT_TRUE(eventually(ready, 30s)) << status(*m).dump(2);
  for (auto until = std::chrono::steady_clock::now() + 4s; std::chrono::steady_clock::now() < until;)
    EXPECT_TRUE(m->reconcile({})), std::this_thread::sleep_for(200ms);
  EXPECT_EQ(env.pullsOf(a), 2) << "pulled again once, not in a loop";
  EXPECT_TRUE(eventually([&] {
    auto r = cp.kubectl({"-n", "default", "get", "events", "--field-selector",
                         "involvedObject.kind=Node,involvedObject.name=" + nodeName, "-o",
                         "jsonpath={range .items[*]}{.reason} {.message}{\"\\n\"}{end}"});
    return r.out.find("PrefetchedImageRemoved image " + a) != std::string::npos;
  }));
  dumps += status(*m).dump(2);

  // Restart: the business request comes back from the state dir.
  m->stop();
  m = start();
  ASSERT_TRUE(eventually(ready, 60s)) << status(*m).dump(2);
  auto st = status(*m);
  dumps += st.dump(2);
  EXPECT_EQ(st.get("requests").get("remembered").asInt(), 1);
  bool kept = false;
  for (const auto& i : st.get("images").asArray())
    kept = kept || (i.get("image").asString() == biz && i.get("source").asString() == "request");
  EXPECT_TRUE(kept) << st.dump(2);
  m->stop();
  logger->sinks().pop_back();
  for (const auto& where : {captured.str(), dumps}) EXPECT_EQ(where.find(password), std::string::npos) << where;
  kubectl(cp, {"-n", "kube-system", "delete", "secret", "nodeagent-pull-secret"});
}

}  // namespace
}  // namespace nodeagent::imagepull
