// ImagePullModule: the agent module for layered image prefetch over CRI. Reconcile hands
// the configured tiers to the Prefetcher, re-checks environment images on their interval
// and publishes per-image state; call() serves `nodeagentctl images ...`.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "core/module.h"
#include "kube/client.h"
#include "kube/config.h"
#include "kube/event.h"
#include "imagepull/cluster_sets.h"
#include "imagepull/config.h"
#include "imagepull/disk_guard.h"
#include "imagepull/image_service.h"
#include "imagepull/prefetcher.h"
#include "imagepull/progress.h"

namespace nodeagent::imagepull {

// A selected prefetch set's images against what the runtime holds.
struct SetCount {
  std::string name;
  Tier tier = Tier::kEnvironment;
  size_t images = 0, present = 0;
  std::vector<std::string> missing;
  bool overdue = false;  // past its deadline with images missing
};

// NodeAgentImagesReady: True when every image the node should hold (local lists and the
// selected sets) is present; "41/42 images, missing: a, b, c (+N more)". `released`: no
// missing image waits for its start slot.
core::Condition imagesReadyCondition(const std::vector<ImageRecord>& records, const std::string& runtimeError,
                                     bool released);

class ImagePullModule final : public core::Module {
 public:
  // `service` is the runtime client (CriImageService for the configured endpoint when null).
  // `kube` is how to reach the API for cluster prefetch sets (none: local lists only).
  ImagePullModule(core::ModuleContext ctx, Config config, std::string nodeName,
                  std::unique_ptr<ImageService> service = nullptr, std::optional<kube::Config> kube = std::nullopt);
  ~ImagePullModule() override;

  std::string name() const override { return "imagepull"; }
  Result<void> reconcile(const core::ReconcileContext& ctx) override;
  // Takes a new, validated `imagepull:` section (SIGHUP). Main thread.
  void reload(const Config& config);
  std::chrono::milliseconds resyncInterval() const override;
  std::vector<core::CommandSpec> commands() const override;
  Result<Json> call(const core::CallRequest& req, core::CallOutput& out) override;
  void stop() override;

 private:
  PrefetchOptions optionsFor(const Config& c, bool dryRun) const;
  Result<Json> callPull(const core::CallRequest& req, core::CallOutput& out);
  Json statusJson();
  Json clusterSetsJson(const std::vector<ImageRecord>& records);
  std::vector<SetCount> setCounts(const std::vector<ImageRecord>& records);
  Json requestsJson();
  // The runtime's downloads in flight (none when it cannot say: containerd only).
  ByteProgress byteProgress();
  void publish();
  // Starts (or stops) the cluster set watch as the config says; errors are kept in setsError_.
  void ensureClusterSets(const Config& c);
  // The local lists first (they win), then the images of every selected cluster set.
  std::vector<ConfiguredImage> wantedImages(const Config& c);
  void reportRejected(const std::vector<RejectedSet>& rejected);
  // A present image the runtime removed: a log line (the prefetcher's) and a Warning Event
  // PrefetchedImageRemoved on the Node.
  void reportRemoved(const Removal& removal);
  // Posts an Event through the API (names it, stamps host and time), counting the outcome.
  void postEvent(kube::ObjectEvent e);
  // When a newly selected set may start on this node: its (node, set) slot in the spread
  // window from now, at least a second away from the node's other starts.
  SteadyTime setStart(const std::string& set, const Config& c);
  // Reads the pull secrets the selected sets name (when the names change, and every few
  // minutes for rotation) and hands the prefetcher the node's file merged with them.
  void refreshPullSecrets(const Config& c);
  void applyCredentials();
  // Images requested with `images pull` survive a restart: stateDir/requests.json.
  void restoreRequests();
  void saveRequests();

  core::ModuleContext ctx_;
  std::string nodeName_;
  std::unique_ptr<ImageService> service_;
  std::unique_ptr<CriDiskProbe> disk_;
  std::unique_ptr<Prefetcher> prefetcher_;
  SteadyTime started_;
  std::optional<kube::Config> kube_;
  std::unique_ptr<kube::Client> kubeClient_;
  std::unique_ptr<ClusterSetSource> sets_;  // reconcile thread only (created and stopped there)

  mutable std::mutex mu_;  // guards the fields below
  Config config_;
  bool configChanged_ = true;
  std::string runtimeError_;
  std::optional<RuntimeVersion> runtime_;
  std::string credentialsError_;
  size_t credentialHosts_ = 0;
  SteadyTime nextRefresh_{};
  bool active_ = false;
  std::string setsError_;
  std::optional<ClusterSetsView> setsView_;  // the view the applied images came from
  std::vector<ConfiguredImage> applied_;
  std::map<std::string, SteadyTime> setStarts_;  // selected set -> its start on this node
  SteadyTime nextPresenceCheck_{};
  uint64_t eventsSent_ = 0, eventsFailed_ = 0;
  bool requestsRestored_ = false;
  std::map<std::string, Tier> requested_;  // canonical image -> tier, as saved
  std::string requestsError_;
  std::string progressError_;
  // Registry credentials: the node's auth file, and each pull secret the selected sets name.
  struct PullSecret {
    CredentialStore store;
    std::string error;  // the read or parse failure (never the Secret's content)
  };
  std::shared_ptr<const CredentialStore> fileCredentials_;
  std::map<std::string, PullSecret> pullSecrets_;  // by Secret name
  SteadyTime nextSecretsRead_{};
};

}  // namespace nodeagent::imagepull
