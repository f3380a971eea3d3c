// Cluster prefetch sets against a real kube-apiserver (tests/k8s/control-plane.sh) with the
// agent's ServiceAccount (deploy/rbac.yaml): a set created with kubectl for a label the Node
// has is picked and pulled, a bad set is rejected with a log line and an Event naming it
// and the field, and removing the label drops the set (the image stays in the runtime,
// untracked). The runtime is the imagepull tests' fake; the real one is the cri tier's.
#include <gtest/gtest.h>

#include <fstream>

#include "core/state_store.h"
#include "imagepull/module.h"
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

TEST(ClusterSets, PicksTheSetsItsLabelsSelectRejectsBadOnesAndDropsOnLabelRemoval) {
  auto& cp = ControlPlane::shared();
  const std::string nodeName = "prefetch-node";
  cp.createNode(nodeName);
  kubectl(cp, {"label", "node", nodeName, "gpu=true"});
  std::string manifest = cp.dir() + "/prefetch-sets.yaml";
  std::ofstream(manifest) << R"(apiVersion: v1
kind: ConfigMap
metadata: {name: nodeagent-prefetch, namespace: kube-system}
data:
  gpu: |
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
)";
  kubectl(cp, {"apply", "-f", manifest});

  core::StateStore store;
  auto svc = std::make_unique<FakeService>();
  FakeService* runtime = svc.get();
  runtime->pullTime = 5ms;
  Config c;
  c.startSpread = 0ms;
  c.authFile = "";
  kube::Config kc;
  kc.mode = "kubeconfig";
  kc.kubeconfig = cp.env("KUBECONFIG_AGENT");
  size_t mark = cp.auditMark();
  ImagePullModule m(core::ModuleContext{.store = &store}, c, nodeName, std::move(svc), kc);
  auto pass = [&] { EXPECT_TRUE(m.reconcile({})); };

  const std::string cuda = "registry.example.com/ml/cuda:12.4", base = "registry.example.com/os/base:1";
  ASSERT_TRUE(eventually([&] {
    pass();
    std::lock_guard l(runtime->mu);
    return runtime->present.contains(cuda) && runtime->present.contains(base);
  }, 30s)) << status(m).dump(2);
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

}  // namespace
}  // namespace nodeagent::imagepull
