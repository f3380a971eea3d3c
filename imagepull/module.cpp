#include "imagepull/module.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "core/state_store.h"
#include "common/clock.h"
#include "common/files.h"
#include "common/log.h"
#include "imagepull/cri_image_service.h"
#include "imagepull/image_ref.h"
#include "imagepull/policy.h"
#include "imagepull/progress.h"
#include "kube/cluster.h"
#include "kube/event.h"

namespace nodeagent::imagepull {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

namespace {

std::string progressLine(const ImageRecord& r, SteadyTime now, const ByteProgress& bytes) {
  double elapsed = r.state == PullState::kPulling ? std::chrono::duration<double>(now - r.startedAt).count()
                                                  : std::chrono::duration<double>(r.lastDuration).count();
  char buf[512];
  std::snprintf(buf, sizeof buf, "%-50s %-17s %6.1fs  attempt %u%s%s", r.image.c_str(),
                std::string(stateName(r.state)).c_str(), elapsed, r.attempts,
                r.size ? ("  " + humanBytes(r.size)).c_str() : "",
                !r.waitReason.empty() ? ("  " + r.waitReason).c_str()
                : !r.lastError.empty() && r.state != PullState::kPresent ? ("  " + r.lastCode).c_str()
                                                                          : "");
  if (r.state == PullState::kPulling && bytes.downloads) return buf + ("  " + formatProgress(bytes));
  return buf;
}

}  // namespace

ImagePullModule::ImagePullModule(core::ModuleContext ctx, Config config, std::string nodeName,
                                 std::unique_ptr<ImageService> service, std::optional<kube::Config> kube)
    : ctx_(std::move(ctx)),
      nodeName_(std::move(nodeName)),
      service_(std::move(service)),
      kube_(std::move(kube)),
      config_(std::move(config)) {
  if (!service_)
    service_ = std::make_unique<CriImageService>(
        CriOptions{.endpoint = config_.runtimeEndpoint, .maxReceiveBytes = config_.maxReceiveBytes});
  disk_ = std::make_unique<CriDiskProbe>(*service_);
  prefetcher_ = std::make_unique<Prefetcher>(*service_, *disk_, optionsFor(config_, ctx_.dryRun));
  started_ = steady_clock::now();
  prefetcher_->setOnChange([trigger = ctx_.trigger] {
    if (trigger) trigger();
  });
}

ImagePullModule::~ImagePullModule() { stop(); }

void ImagePullModule::stop() {
  if (kubeClient_) kubeClient_->interrupt();
  if (sets_) sets_->stop();
  if (prefetcher_) prefetcher_->stop();
}

void ImagePullModule::ensureClusterSets(const Config& c) {
  auto logger = log::get("imagepull");
  if (c.clusterSets.enabled == "false") {
    if (sets_) {
      sets_->stop();
      sets_.reset();
      logger->info("cluster prefetch sets off (imagepull.cluster_sets.enabled: false)");
    }
    std::lock_guard lock(mu_);
    setsError_.clear();
    return;
  }
  if (sets_ && sets_->where() == c.clusterSets.namespace_ + "/" + c.clusterSets.configMap) return;
  if (sets_) {  // reload named another ConfigMap
    sets_->stop();
    sets_.reset();
  }
  std::string error;
  if (!kubeClient_) {
    auto cluster = kube_ ? kube::resolveCluster(*kube_) : Result<std::optional<kube::ClusterConfig>>(std::nullopt);
    if (!cluster) {
      error = cluster.error().message();
    } else if (!*cluster) {
      if (c.clusterSets.enabled == "true") error = "cluster_sets.enabled is true but no Kubernetes API is configured (kube.mode)";
    } else {
      kube::ClientOptions co;
      co.userAgent = "nodeagent/imagepull";
      if (kube_) {
        co.qps = kube_->qps, co.burst = kube_->burst, co.maxAttempts = kube_->maxAttempts;
        co.connectTimeout = kube_->connectTimeout, co.requestTimeout = kube_->requestTimeout;
      }
      auto client = kube::Client::create(**cluster, co);
      if (!client) error = client.error().message();
      else kubeClient_ = std::move(*client);
    }
  }
  if (kubeClient_) {
    sets_ = std::make_unique<ClusterSetSource>(
        *kubeClient_, ClusterSetsOptions{.ns = c.clusterSets.namespace_, .configMap = c.clusterSets.configMap, .nodeName = nodeName_});
    sets_->start([trigger = ctx_.trigger] {
      if (trigger) trigger();
    });
    logger->info("watching prefetch sets in configmap {} for node {}", sets_->where(), nodeName_);
  }
  std::lock_guard lock(mu_);
  if (!error.empty() && error != setsError_) logger->warn("cluster prefetch sets: {}", error);
  setsError_ = error;
}

void ImagePullModule::applyCredentials() {
  CredentialStore merged;
  {
    std::lock_guard lock(mu_);
    if (fileCredentials_) merged = *fileCredentials_;
    // A host in both: the Secret's credential (the cluster's newer word) wins.
    for (const auto& [name, secret] : pullSecrets_) merged.merge(secret.store);
  }
  prefetcher_->setCredentials(std::make_shared<const CredentialStore>(std::move(merged)));
}

void ImagePullModule::refreshPullSecrets(const Config& c) {
  constexpr auto kReread = std::chrono::minutes(5);  // picks up a rotated Secret
  std::set<std::string> names;
  {
    std::lock_guard lock(mu_);
    if (setsView_)
      for (const auto& set : setsView_->parsed.sets)
        if (std::find(setsView_->selected.begin(), setsView_->selected.end(), set.name) != setsView_->selected.end())
          names.insert(set.imagePullSecrets.begin(), set.imagePullSecrets.end());
    bool same = names.size() == pullSecrets_.size() &&
                std::all_of(names.begin(), names.end(), [&](const auto& n) { return pullSecrets_.contains(n); });
    if (same && steady_clock::now() < nextSecretsRead_) return;
  }
  if (names.empty()) {
    bool had;
    {
      std::lock_guard lock(mu_);
      had = !pullSecrets_.empty();
      pullSecrets_.clear();
    }
    if (had) applyCredentials();
    return;
  }
  auto logger = log::get("imagepull");
  std::map<std::string, PullSecret> read;
  for (const auto& name : names) {
    std::string where = "secret " + c.clusterSets.namespace_ + "/" + name;
    PullSecret ps;
    if (!kubeClient_) {
      ps.error = "no Kubernetes API to read it from";
    } else if (auto resp = kubeClient_->get("/api/v1/namespaces/" + c.clusterSets.namespace_ + "/secrets/" + name); !resp) {
      ps.error = resp.error().message();  // the API's Status: names the Secret, holds none of it
    } else if (auto store = CredentialStore::fromSecret(resp->body, where); !store) {
      ps.error = store.error().message();
    } else {
      ps.store = std::move(*store);
    }
    std::string before;
    {
      std::lock_guard lock(mu_);
      auto it = pullSecrets_.find(name);
      before = it == pullSecrets_.end() ? "(new)" : it->second.error;
    }
    if (!ps.error.empty() && ps.error != before) logger->warn("pull {} not used: {}", where, ps.error);
    else if (ps.error.empty() && !before.empty())
      logger->info("pull {}: credentials for {} registry host(s)", where, ps.store.size());
    read[name] = std::move(ps);
  }
  {
    std::lock_guard lock(mu_);
    pullSecrets_ = std::move(read);
    nextSecretsRead_ = steady_clock::now() + kReread;
  }
  applyCredentials();
}

void ImagePullModule::restoreRequests() {
  auto logger = log::get("imagepull");
  if (ctx_.stateDir.empty()) return;
  std::string path = ctx_.stateDir + "/requests.json";
  auto text = readFile(path);
  if (!text) {
    if (text.error().code() != std::errc::no_such_file_or_directory)
      logger->warn("requested images not restored: {}", text.error().message());
    return;
  }
  auto j = Json::parse(*text);
  if (!j || !j->get("images").isArray()) {
    logger->warn("requested images not restored: {} is not a requests file{}", path,
                 j ? "" : ": " + j.error().message());
    return;
  }
  size_t restored = 0;
  for (const auto& item : j->get("images").asArray()) {
    auto tier = parseTier(item.get("tier").asString());
    const auto& image = item.get("image").asString();
    auto key = tier ? prefetcher_->request(image, *tier) : Result<std::string>(failInvalid("unknown tier"));
    if (!key) {
      logger->warn("requested image {} in {} not restored: {}", image, path, key.error().message());
      continue;
    }
    std::lock_guard lock(mu_);
    requested_[*key] = *tier;
    ++restored;
  }
  if (restored) logger->info("restored {} requested image(s) from {}", restored, path);
}

void ImagePullModule::saveRequests() {
  if (ctx_.stateDir.empty() || ctx_.dryRun) return;
  Json images = Json::array();
  {
    std::lock_guard lock(mu_);
    for (const auto& [image, tier] : requested_)
      images.push(Json::object().set("image", image).set("tier", std::string(tierName(tier))));
  }
  // nodeagentctl images pull IMAGE (kept until `images forget IMAGE`)
  std::string path = ctx_.stateDir + "/requests.json";
  auto r = makeDirs(ctx_.stateDir, 0750);
  if (r) r = writeFileAtomic(path, Json::object().set("version", 1).set("images", images).dump(2) + "\n", 0640);
  std::lock_guard lock(mu_);
  if (!r) {
    if (requestsError_ != r.error().message())
      log::get("imagepull")->warn("requested images not saved (lost on restart): {}", r.error().message());
    requestsError_ = r.error().message();
  } else {
    requestsError_.clear();
  }
}

std::vector<ConfiguredImage> ImagePullModule::wantedImages(const Config& c) {
  auto logger = log::get("imagepull");
  std::vector<ConfiguredImage> out;
  for (const auto& image : c.base) out.push_back({image, Tier::kBase, "config"});
  for (const auto& image : c.environment) out.push_back({image, Tier::kEnvironment, "config"});
  std::optional<ClusterSetsView> view;
  if (sets_) {
    view = sets_->view();
    reportRejected(sets_->takeNewRejected());
  }
  std::optional<ClusterSetsView> before;
  {
    std::lock_guard lock(mu_);
    before = setsView_;
    setsView_ = view;
  }
  if (!view) return out;
  // Selection changes, once each: the Node's labels or the ConfigMap changed.
  std::vector<std::string> was = before ? before->selected : std::vector<std::string>{};
  for (const auto& name : view->selected)
    if (std::find(was.begin(), was.end(), name) == was.end())
      logger->info("prefetch set {} selected (node {} matches its nodeSelector)", name, nodeName_);
  for (const auto& name : was)
    if (std::find(view->selected.begin(), view->selected.end(), name) == view->selected.end())
      logger->info("prefetch set {} no longer selected; its images stay in the runtime, untracked", name);
  {
    std::lock_guard lock(mu_);  // a set no longer selected gets a new slot if it comes back
    std::erase_if(setStarts_, [&](const auto& kv) {
      return std::find(view->selected.begin(), view->selected.end(), kv.first) == view->selected.end();
    });
  }
  for (const auto& set : view->parsed.sets) {
    if (std::find(view->selected.begin(), view->selected.end(), set.name) == view->selected.end()) continue;
    auto start = setStart(set.name, c);
    for (const auto& image : set.images) out.push_back({image, set.tier, "set " + set.name, start});
  }
  return out;
}

SteadyTime ImagePullModule::setStart(const std::string& set, const Config& c) {
  std::lock_guard lock(mu_);
  if (auto it = setStarts_.find(set); it != setStarts_.end()) return it->second;
  // From when this node first selected the set (its start, for sets it finds at start):
  // 5,000 nodes that see a new set in the same second start it over the whole window.
  auto from = std::max(steady_clock::now(), started_);
  std::vector<SteadyTime> taken{started_ + startDelay(nodeName_, c.startSpread)};
  for (const auto& [name, at] : setStarts_) taken.push_back(at);
  // No window, no spread: a set starts when it is seen.
  auto at = c.startSpread.count() <= 0
                ? from
                : separateStart(from + startDelay(nodeName_, set, c.startSpread), taken, std::chrono::seconds(1));
  setStarts_[set] = at;
  if (at > steady_clock::now())
    log::get("imagepull")->info("prefetch set {} starts in {} (node's slot for it in the {} window)", set,
                                formatDuration(std::chrono::duration_cast<milliseconds>(at - steady_clock::now())),
                                formatDuration(c.startSpread));
  return at;
}

void ImagePullModule::postEvent(kube::ObjectEvent e) {
  if (ctx_.dryRun || !kubeClient_) return;
  auto now = std::chrono::system_clock::now();
  char suffix[32];
  std::snprintf(suffix, sizeof suffix, ".%llx",
                static_cast<unsigned long long>(
                    std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count()));
  e.eventName = e.name + suffix;
  e.host = nodeName_;
  e.timestamp = formatRfc3339(now);
  auto res = kubeClient_->request("POST", "/api/v1/namespaces/" + e.eventNamespace + "/events", kube::buildObjectEvent(e));
  std::lock_guard lock(mu_);
  if (res) ++eventsSent_;
  else ++eventsFailed_, log::get("imagepull")->debug("event {} on {} {}: {}", e.reason, e.kind, e.name, res.error().message());
}

void ImagePullModule::reportRejected(const std::vector<RejectedSet>& rejected) {
  auto logger = log::get("imagepull");
  for (const auto& r : rejected) {
    logger->warn("prefetch set {} rejected: {}", r.name, r.problem);
    if (!sets_) continue;
    Config c;
    {
      std::lock_guard lock(mu_);
      c = config_;
    }
    postEvent({.kind = "ConfigMap",
               .ns = c.clusterSets.namespace_,
               .name = c.clusterSets.configMap,
               .eventNamespace = c.clusterSets.namespace_,
               .reason = "PrefetchSetRejected",
               .message = "nodeagent on " + nodeName_ + " rejected prefetch set " + r.name + ": " + r.problem});
  }
}

void ImagePullModule::reportRemoved(const Removal& removal) {
  // Node events live in the default namespace, as the kubelet's do.
  postEvent({.kind = "Node",
             .name = nodeName_,
             .eventNamespace = "default",
             .reason = "PrefetchedImageRemoved",
             .message = "image " + removal.image + " (" + std::string(tierName(removal.tier)) + ", " + removal.source +
                        ") was removed from the container runtime (image garbage collection?), removal " +
                        std::to_string(removal.removals) + "; nodeagent pulls it again in " +
                        formatDuration(removal.retryIn) + " if the image disk is below its high-water mark"});
}

PrefetchOptions ImagePullModule::optionsFor(const Config& c, bool dryRun) const {
  return PrefetchOptions{.concurrency = c.concurrency,
                         .perRegistry = c.perRegistry,
                         .attemptTimeout = c.attemptTimeout,
                         .backoffInitial = c.backoffInitial,
                         .backoffMax = c.backoffMax,
                         .maxAttempts = c.maxAttempts,
                         .maxPermanentAttempts = c.maxPermanentAttempts,
                         .diskHighWaterPercent = c.diskHighWaterPercent,
                         .diskRecheck = c.diskRecheck,
                         .dryRun = dryRun,
                         .removalBackoffInitial = c.removalBackoffInitial,
                         .removalBackoffMax = c.removalBackoffMax,
                         .pinBase = c.pinBase};
}

void ImagePullModule::reload(const Config& config) {
  std::lock_guard lock(mu_);
  if (config.runtimeEndpoint != config_.runtimeEndpoint)
    log::get("imagepull")->warn("runtime_endpoint change to {} takes effect at the next restart",
                                config.runtimeEndpoint);
  config_ = config;
  configChanged_ = true;
}

std::chrono::milliseconds ImagePullModule::resyncInterval() const {
  std::lock_guard lock(mu_);
  return std::min<milliseconds>({config_.refreshInterval, config_.presenceCheck, std::chrono::minutes(1)});
}

Result<void> ImagePullModule::reconcile(const core::ReconcileContext& rctx) {
  auto logger = log::get("imagepull");
  Config c;
  bool changed = false;
  {
    std::lock_guard lock(mu_);
    c = config_;
    changed = configChanged_;
    configChanged_ = false;
  }
  bool dryRun = rctx.dryRun || ctx_.dryRun;
  if (changed) {
    prefetcher_->setOptions(optionsFor(c, dryRun));
    auto creds = c.authFile.empty() ? Result<CredentialStore>(CredentialStore{}) : CredentialStore::load(c.authFile);
    std::lock_guard lock(mu_);
    if (!creds) {
      credentialsError_ = creds.error().message();
      logger->warn("registry credentials not loaded: {}", credentialsError_);
    } else {
      credentialsError_.clear();
      credentialHosts_ = creds->size();
      if (creds->size() > 0) logger->info("loaded registry credentials for {} host(s) from {}", creds->size(), c.authFile);
      fileCredentials_ = std::make_shared<const CredentialStore>(std::move(*creds));
    }
  }
  if (changed) applyCredentials();
  if (!requestsRestored_) {
    requestsRestored_ = true;
    restoreRequests();
  }
  ensureClusterSets(c);
  auto wanted = wantedImages(c);
  refreshPullSecrets(c);
  bool active = c.enabled == "true" || (c.enabled == "auto" && !wanted.empty());
  bool wantedChanged;
  {
    std::lock_guard lock(mu_);
    active_ = active;
    wantedChanged = changed || wanted != applied_;
    applied_ = wanted;
  }
  // The start slot is set at the first pass even while nothing is wanted yet: cluster sets
  // arrive after the first pass, and must not wait for a slot that was never set.
  if (changed) prefetcher_->releaseAt(started_ + startDelay(nodeName_, c.startSpread));
  if (!active) {
    if (wantedChanged) (void)prefetcher_->setConfigured(std::vector<ConfiguredImage>{});
    publish();
    return {};
  }
  // The runtime must serve CRI v1; ask until it answers, and again while the prefetcher
  // finds it down (its answer re-queues what failed meanwhile).
  bool haveRuntime;
  {
    std::lock_guard lock(mu_);
    haveRuntime = runtime_.has_value();
  }
  bool runtimeDown = prefetcher_->stats().runtimeDown;
  if (!haveRuntime || runtimeDown) {
    auto v = service_->version();
    std::lock_guard lock(mu_);
    if (!v) {
      runtimeError_ = v.error().message();  // returned by this pass: the runner logs it
    } else {
      if (!haveRuntime)
        logger->info("container runtime {} {} (CRI {}) at {}", v->runtimeName, v->runtimeVersion, v->apiVersion,
                     c.runtimeEndpoint);
      runtime_ = *v;
      runtimeError_.clear();
      if (runtimeDown) prefetcher_->runtimeAnswered();
    }
  }
  if (wantedChanged)
    if (auto r = prefetcher_->setConfigured(wanted); !r) return fail(r.error());
  if (changed) {
    auto delay = startDelay(nodeName_, c.startSpread);
    if (rctx.initial && delay.count() > 0)
      logger->info("prefetch starts in {} (node's slot in the {} fleet-wide start window)", formatDuration(delay),
                   formatDuration(c.startSpread));
  }
  auto now = steady_clock::now();
  {
    std::lock_guard lock(mu_);
    if (nextRefresh_ == SteadyTime{}) nextRefresh_ = started_ + startDelay(nodeName_, c.startSpread) + c.refreshInterval;
    if (now >= nextRefresh_) {
      nextRefresh_ = now + c.refreshInterval;
      prefetcher_->refreshEnvironment();
    }
  }
  if (now >= nextPresenceCheck_ && !ctx_.dryRun) {
    nextPresenceCheck_ = now + c.presenceCheck;
    auto listedAt = steady_clock::now();
    // A failed list is the runtime down: the prefetcher's own calls notice and report that.
    if (auto listed = service_->list(); listed)
      for (const auto& removal : prefetcher_->checkPresence(*listed, listedAt)) reportRemoved(removal);
  }
  publish();
  std::lock_guard lock(mu_);
  if (!runtimeError_.empty()) return failInvalid(runtimeError_);
  return {};
}

Json ImagePullModule::statusJson() {
  auto now = steady_clock::now();
  auto records = prefetcher_->snapshot();
  auto stats = prefetcher_->stats();
  Config c;
  Json runtime = Json::object();
  Json creds = Json::object();
  bool active;
  {
    std::lock_guard lock(mu_);
    c = config_;
    active = active_;
    runtime.set("endpoint", c.runtimeEndpoint);
    if (runtime_)
      runtime.set("name", runtime_->runtimeName).set("version", runtime_->runtimeVersion).set("api", runtime_->apiVersion);
    if (!runtimeError_.empty()) runtime.set("error", runtimeError_);
    creds.set("file", c.authFile).set("hosts", credentialHosts_);  // how many, never what
    if (!credentialsError_.empty()) creds.set("error", credentialsError_);
    Json secrets = Json::array();
    for (const auto& [name, ps] : pullSecrets_) {
      Json o = Json::object().set("name", name).set("hosts", ps.store.size());  // never the content
      if (!ps.error.empty()) o.set("error", ps.error);
      secrets.push(o);
    }
    creds.set("pull_secrets", secrets);
  }
  Json counts = Json::object();
  for (auto s : {PullState::kQueued, PullState::kPulling, PullState::kPresent, PullState::kRetrying,
                 PullState::kWaitingForDisk, PullState::kFailed, PullState::kWouldPull, PullState::kRemoved}) {
    auto n = std::count_if(records.begin(), records.end(), [&](const auto& r) { return r.state == s; });
    if (n) counts.set(std::string(stateName(s)), n);
  }
  Json disk = Json::object().set("high_water_percent", c.diskHighWaterPercent).set("holding", stats.diskHigh);
  if (stats.disk)
    disk.set("mountpoint", stats.disk->mountpoint)
        .set("used_percent", std::round(stats.disk->usedPercent * 10) / 10)
        .set("image_bytes", stats.disk->imageBytes)
        .set("capacity_bytes", stats.disk->capacityBytes);
  if (!stats.diskError.empty()) disk.set("error", stats.diskError);
  Json images = Json::array();
  ByteProgress bytes = byteProgress();
  for (const auto& r : records) {
    Json j = toJson(r, now);
    if (r.state == PullState::kPulling) j.set("bytes", toJson(bytes));
    images.push(j);
  }
  auto delay = startDelay(nodeName_, c.startSpread);
  return Json::object()
      .set("active", active)
      .set("runtime", runtime)
      .set("concurrency", c.concurrency)
      .set("per_registry", c.perRegistry)
      .set("in_flight", stats.active)
      .set("max_in_flight", stats.maxActive)
      .set("started", prefetcher_->released())
      .set("start_delay", formatDuration(delay))
      .set("counts", counts)
      .set("disk", disk)
      .set("credentials", creds)
      .set("attempts", stats.attempts)
      .set("pulled", stats.pulled)
      .set("failed_attempts", stats.failedAttempts)
      .set("already_present", stats.skippedPresent)
      .set("removed_by_runtime", stats.removals)
      .set("requests", requestsJson())
      .set("cluster_sets", clusterSetsJson(records))
      .set("images", images);
}

ByteProgress ImagePullModule::byteProgress() {
  size_t pulls = prefetcher_->stats().active;
  if (pulls == 0) return {};
  auto ingests = service_->ingests();
  if (!ingests) {
    std::lock_guard lock(mu_);
    if (progressError_ != ingests.error().message())
      log::get("imagepull")->debug("no byte progress: {}", ingests.error().message());
    progressError_ = ingests.error().message();
    return {};
  }
  return sumIngests(*ingests, pulls);
}

Json ImagePullModule::requestsJson() {
  std::lock_guard lock(mu_);
  Json j = Json::object().set("remembered", requested_.size());
  if (!ctx_.stateDir.empty()) j.set("file", ctx_.stateDir + "/requests.json");
  if (!requestsError_.empty()) j.set("error", requestsError_);
  return j;
}

core::Condition imagesReadyCondition(const std::vector<ImageRecord>& records, const std::string& runtimeError,
                                     bool released) {
  // Every image the node should hold (local lists and selected sets), not on-demand pulls.
  size_t total = 0, present = 0, failed = 0, removed = 0;
  std::vector<std::string> missing;
  for (const auto& r : records) {
    if (!r.configured) continue;
    ++total;
    if (r.state == PullState::kPresent) ++present;
    else missing.push_back(r.image), failed += r.state == PullState::kFailed, removed += r.state == PullState::kRemoved;
  }
  core::Condition c{.type = "ImagesReady", .status = present == total};
  c.message = std::to_string(present) + "/" + std::to_string(total) + " images";
  if (!missing.empty()) {
    constexpr size_t kNamed = 3;  // one line on `kubectl describe node`
    c.message += ", missing: ";
    for (size_t i = 0; i < std::min(kNamed, missing.size()); ++i) c.message += (i ? ", " : "") + missing[i];
    if (missing.size() > kNamed) c.message += " (+" + std::to_string(missing.size() - kNamed) + " more)";
  }
  if (total == 0) c.reason = "NoImages";
  else if (present == total) c.reason = "AllPresent";
  else if (!runtimeError.empty()) c.reason = "RuntimeUnavailable";
  else if (failed) c.reason = "PullFailed";
  else if (removed) c.reason = "ImagesRemoved";
  else if (!released) c.reason = "WaitingForStartSlot";
  else c.reason = "Pulling";
  return c;
}

std::vector<SetCount> ImagePullModule::setCounts(const std::vector<ImageRecord>& records) {
  std::optional<ClusterSetsView> view;
  {
    std::lock_guard lock(mu_);
    view = setsView_;
  }
  std::vector<SetCount> out;
  if (!view) return out;
  std::map<std::string, PullState> state;
  for (const auto& r : records) state[r.image] = r.state;
  for (const auto& set : view->parsed.sets) {
    if (std::find(view->selected.begin(), view->selected.end(), set.name) == view->selected.end()) continue;
    SetCount c{.name = set.name, .tier = set.tier, .images = set.images.size()};
    for (const auto& image : set.images) {
      auto it = state.find(image);
      if (it != state.end() && it->second == PullState::kPresent) ++c.present;
      else c.missing.push_back(image);
    }
    c.overdue = set.deadline && !c.missing.empty() && std::chrono::system_clock::now() > *set.deadline;
    out.push_back(std::move(c));
  }
  return out;
}

Json ImagePullModule::clusterSetsJson(const std::vector<ImageRecord>& records) {
  Config c;
  std::optional<ClusterSetsView> view;
  std::string error;
  Json j = Json::object();
  {
    std::lock_guard lock(mu_);
    c = config_;
    view = setsView_;
    error = setsError_;
    j.set("events_sent", eventsSent_).set("events_failed", eventsFailed_);
  }
  j.set("enabled", c.clusterSets.enabled).set("configmap", c.clusterSets.namespace_ + "/" + c.clusterSets.configMap);
  if (!error.empty()) j.set("error", error);
  j.set("watching", view.has_value());
  if (!view) return j;
  j.set("synced", view->synced()).set("configmap_found", view->configMapFound);
  auto counts = setCounts(records);
  Json sets = Json::array();
  for (const auto& set : view->parsed.sets) {
    auto count = std::find_if(counts.begin(), counts.end(), [&](const SetCount& c) { return c.name == set.name; });
    Json o = Json::object()
                 .set("name", set.name)
                 .set("tier", std::string(tierName(set.tier)))
                 .set("selected", count != counts.end())
                 .set("images", set.images.size());
    if (count != counts.end()) {
      Json missing = Json::array();
      for (const auto& image : count->missing) missing.push(image);
      o.set("present", count->present).set("missing", missing);
      if (set.deadline) o.set("overdue", count->overdue);
    }
    if (set.deadline) o.set("deadline", formatRfc3339(*set.deadline));
    if (!set.imagePullSecrets.empty()) {
      Json names = Json::array();
      for (const auto& n : set.imagePullSecrets) names.push(n);
      o.set("image_pull_secrets", names);
    }
    {
      std::lock_guard lock(mu_);
      if (auto it = setStarts_.find(set.name); it != setStarts_.end()) {
        double in = std::chrono::duration<double>(it->second - steady_clock::now()).count();
        o.set("starts_in_s", std::round(std::max(0.0, in) * 10) / 10);
      }
    }
    sets.push(o);
  }
  j.set("sets", sets);
  Json rejected = Json::array();
  for (const auto& r : view->parsed.rejected) rejected.push(Json::object().set("name", r.name).set("problem", r.problem));
  j.set("rejected", rejected);
  return j;
}

void ImagePullModule::publish() {
  auto records = prefetcher_->snapshot();
  auto stats = prefetcher_->stats();
  core::ModuleState s;
  s.name = name();
  s.details = statusJson();
  size_t base = 0, basePresent = 0, baseFailed = 0, basePinned = 0, present = 0, failed = 0;
  for (const auto& r : records) {
    present += r.state == PullState::kPresent;
    failed += r.state == PullState::kFailed;
    if (r.tier == Tier::kBase) {
      ++base;
      basePresent += r.state == PullState::kPresent;
      baseFailed += r.state == PullState::kFailed;
      basePinned += r.state == PullState::kPresent && r.pinned;
    }
  }
  std::string runtimeError;
  bool active;
  {
    std::lock_guard lock(mu_);
    runtimeError = runtimeError_;
    active = active_;
  }
  // Down since the first answer: an outage, not a start (degraded, not "starting").
  if (runtimeError.empty() && stats.runtimeDown) runtimeError = stats.runtimeError;
  core::Condition cond{.type = "BaseImagesPresent"};
  if (!active) {
    s.health = core::Health::kDisabled;
    s.summary = "no images configured; prefetch idle (pulls on request only)";
  } else if (!runtimeError.empty()) {
    s.health = core::Health::kDegraded;
    s.summary = "container runtime unavailable: " + runtimeError;
    cond.reason = "RuntimeUnavailable";
    cond.message = runtimeError;
  } else {
    s.health = baseFailed ? core::Health::kDegraded : basePresent < base ? core::Health::kStarting : core::Health::kHealthy;
    s.summary = std::to_string(present) + "/" + std::to_string(records.size()) + " images present, " +
                std::to_string(stats.active) + " pulling" + (failed ? ", " + std::to_string(failed) + " failed" : "") +
                (stats.diskHigh ? ", holding pulls: image disk above high-water mark" : "");
  }
  if (active) {
    cond.status = basePresent == base;
    if (cond.reason.empty()) {
      if (base == 0) cond.reason = "NoBaseImages", cond.message = "no base images configured";
      else if (basePresent == base) cond.reason = "AllPresent";
      else if (baseFailed) cond.reason = "PullFailed";
      else if (!prefetcher_->released()) cond.reason = "WaitingForStartSlot";
      else cond.reason = "Pulling";
      if (cond.message.empty())
        cond.message = std::to_string(basePresent) + "/" + std::to_string(base) + " base images present" +
                       (baseFailed ? ", " + std::to_string(baseFailed) + " failed" : "") +
                       (basePresent ? ", " + std::to_string(basePinned) + " pinned by the runtime against image GC" : "");
    }
    s.conditions.push_back(cond);
    s.conditions.push_back(imagesReadyCondition(records, runtimeError, !prefetcher_->waitingForStartSlot()));
  }
  using core::Metric;
  for (auto st : {PullState::kQueued, PullState::kPulling, PullState::kPresent, PullState::kRetrying,
                  PullState::kWaitingForDisk, PullState::kFailed, PullState::kRemoved})
    for (auto t : {Tier::kBase, Tier::kBusiness, Tier::kEnvironment}) {
      auto n = std::count_if(records.begin(), records.end(), [&](const auto& r) { return r.state == st && r.tier == t; });
      s.metrics.push_back({"nodeagent_imagepull_images", "Tracked images by tier and state", Metric::Type::kGauge,
                           {{"tier", std::string(tierName(t))}, {"state", std::string(stateName(st))}}, double(n)});
    }
  s.metrics.push_back({"nodeagent_imagepull_attempts_total", "Pull attempts", Metric::Type::kCounter, {}, double(stats.attempts)});
  s.metrics.push_back({"nodeagent_imagepull_failed_attempts_total", "Failed pull attempts", Metric::Type::kCounter, {}, double(stats.failedAttempts)});
  s.metrics.push_back({"nodeagent_imagepull_pulled_total", "Successful pulls", Metric::Type::kCounter, {}, double(stats.pulled)});
  s.metrics.push_back({"nodeagent_imagepull_removed_total", "Present images the runtime removed (image GC)",
                       Metric::Type::kCounter, {}, double(stats.removals)});
  s.metrics.push_back({"nodeagent_imagepull_in_flight", "Pulls in flight", Metric::Type::kGauge, {}, double(stats.active)});
  if (stats.disk)
    s.metrics.push_back({"nodeagent_imagepull_disk_used_percent", "Image file system usage", Metric::Type::kGauge, {}, stats.disk->usedPercent});
  for (const auto& set : setCounts(records)) {
    s.metrics.push_back({"nodeagent_imagepull_set_images", "Images of each selected prefetch set", Metric::Type::kGauge,
                         {{"set", set.name}, {"tier", std::string(tierName(set.tier))}}, double(set.images)});
    s.metrics.push_back({"nodeagent_imagepull_set_images_present", "Images of each selected prefetch set present in the runtime",
                         Metric::Type::kGauge, {{"set", set.name}, {"tier", std::string(tierName(set.tier))}}, double(set.present)});
  }
  ctx_.store->publish(std::move(s));
}

std::vector<core::CommandSpec> ImagePullModule::commands() const {
  return {
      {.command = "list", .group = "images", .help = "images the agent prefetches, per tier and state"},
      {.command = "status", .group = "images", .help = "prefetch status: runtime, disk guard, counts, every image"},
      {.command = "pull",
       .group = "images",
       .help = "pull an image now, ahead of queued lower tiers (live progress on a terminal; exit 1 if it fails)",
       .args = {"IMAGE"},
       .options = {{.name = "tier", .help = "base, business (default) or environment"}},
       .mutating = true,
       .longRunning = true},
      {.command = "forget", .group = "images", .help = "stop tracking a requested image (the runtime keeps it)",
       .args = {"IMAGE"}, .mutating = true},
  };
}

Result<Json> ImagePullModule::call(const core::CallRequest& req, core::CallOutput& out) {
  auto now = steady_clock::now();
  if (req.command == "list") {
    Json items = Json::array();
    for (const auto& r : prefetcher_->snapshot()) {
      double d = r.state == PullState::kPulling ? std::chrono::duration<double>(now - r.startedAt).count()
                                                : std::chrono::duration<double>(r.lastDuration).count();
      char dur[32];
      std::snprintf(dur, sizeof dur, "%.1fs", d);
      items.push(Json::object()
                     .set("image", r.image)
                     .set("tier", std::string(tierName(r.tier)))
                     .set("state", std::string(stateName(r.state)))
                     .set("attempts", r.attempts)
                     .set("duration", std::string(dur))
                     .set("size", r.size ? humanBytes(r.size) : std::string())
                     .set("image_ref", r.imageId)
                     .set("last_error", r.waitReason.empty() ? r.lastError : r.waitReason));
    }
    return Json::object().set("items", items);
  }
  if (req.command == "status") return statusJson();
  if (req.command == "pull") return callPull(req, out);
  if (req.command == "forget") {
    if (req.args.size() != 1) return failInvalid("usage: images forget IMAGE");
    if (req.dryRun) {
      auto ref = parseImageRef(req.args[0]);
      if (!ref) return fail(ref.error());
      bool tracked = prefetcher_->find(ref->canonical()).has_value();
      return Json::object().set("image", ref->canonical()).set("dry_run", true).set("would_forget", tracked);
    }
    if (auto r = prefetcher_->forget(req.args[0]); !r) return fail(r.error());
    if (auto ref = parseImageRef(req.args[0]); ref) {
      bool erased;
      {
        std::lock_guard lock(mu_);
        erased = requested_.erase(ref->canonical()) > 0;
      }
      if (erased) saveRequests();
    }
    log::get("imagepull")->info("forgot {} (on request); the runtime keeps the image", req.args[0]);
    if (ctx_.trigger) ctx_.trigger();
    return Json::object().set("image", req.args[0]).set("forgotten", true);
  }
  return Module::call(req, out);
}

Result<Json> ImagePullModule::callPull(const core::CallRequest& req, core::CallOutput& out) {
  if (req.args.size() != 1) return failInvalid("usage: images pull IMAGE [--tier base|business|environment]");
  Tier tier = Tier::kBusiness;
  if (auto it = req.options.find("tier"); it != req.options.end()) {
    auto t = parseTier(it->second);
    if (!t) return failInvalid("--tier must be base, business or environment, got \"" + it->second + "\"");
    tier = *t;
  }
  auto ref = parseImageRef(req.args[0]);
  if (!ref) return fail(ref.error());
  if (req.dryRun || ctx_.dryRun) {
    auto st = service_->status(ref->canonical());
    if (!st) return fail(st.error());
    return Json::object()
        .set("image", ref->canonical())
        .set("tier", std::string(tierName(tier)))
        .set("dry_run", true)
        .set("present", st->has_value())
        .set("would_pull", !st->has_value());
  }
  auto key = prefetcher_->request(req.args[0], tier);
  if (!key) return fail(key.error());
  bool save;
  {
    std::lock_guard lock(mu_);
    auto [it, fresh] = requested_.try_emplace(*key, tier);
    save = fresh || tier < it->second;
    if (tier < it->second) it->second = tier;
  }
  if (save) saveRequests();
  log::get("imagepull")->info("pull of {} ({}) requested", *key, tierName(tier));
  uint64_t seen = 0;
  while (true) {
    auto rec = prefetcher_->find(*key);
    if (!rec) return failInvalid("image " + *key + " was forgotten while waiting for it");
    auto now = steady_clock::now();
    out.progress(Json::object().set("lines", Json::array().push(progressLine(*rec, now, byteProgress()))));
    if (isTerminal(rec->state)) {
      Json result = toJson(*rec, now);
      if (rec->state == PullState::kFailed) result.set("exit_code", 1);
      return result;
    }
    if (out.cancelled()) return failInvalid("client went away");
    seen = prefetcher_->waitForChange(seen, now + milliseconds(250));
  }
}

}  // namespace nodeagent::imagepull
