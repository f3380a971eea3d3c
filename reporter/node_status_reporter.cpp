#include "reporter/node_status_reporter.h"

#include <cinttypes>

#include "common/log.h"

namespace nodeagent::reporter {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

namespace {

constexpr const char* kPatchType = "application/strategic-merge-patch+json";

bool sameIgnoringTimes(const ConditionMap& a, const ConditionMap& b) {
  if (a.size() != b.size()) return false;
  for (auto ia = a.begin(), ib = b.begin(); ia != a.end(); ++ia, ++ib)
    if (ia->first != ib->first || ia->second.status != ib->second.status || ia->second.reason != ib->second.reason ||
        ia->second.message != ib->second.message)
      return false;
  return true;
}

ConditionMap contentOf(const DesiredMap& d) {
  ConditionMap out;
  for (const auto& [type, dc] : d) out[type] = dc.condition;
  return out;
}

int64_t parseRv(const Json& obj) {
  const std::string& s = obj.get("metadata").get("resourceVersion").asString();
  char* end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  return (s.empty() || *end) ? -1 : v;
}

std::shared_ptr<spdlog::logger> logger() { return log::get("reporter"); }

}  // namespace

DesiredMap desiredConditions(const std::vector<core::ModuleSnapshot>& modules, const std::string& prefix) {
  DesiredMap out;
  for (const auto& m : modules) {
    if (m.state.health == core::Health::kDisabled) continue;
    for (const auto& c : m.state.conditions) {
      if (c.type.empty()) continue;
      std::string type = prefix + c.type;
      out[type] = DesiredCondition{NodeCondition{type, c.status ? "True" : "False", c.reason, c.message, "", ""},
                                   m.state.name, m.state.health};
    }
  }
  return out;
}

NodeStatusReporter::NodeStatusReporter(core::StateStore& store, kube::Client& client, NodeStatusReporterOptions options, const Clock& clock)
    : store_(store),
      client_(client),
      opts_(std::move(options)),
      clock_(clock),
      eventBucket_(1.0 / std::max(0.001, std::chrono::duration<double>(opts_.events.refillInterval).count()),
                   opts_.events.burst) {}

NodeStatusReporter::~NodeStatusReporter() { stop(); }

void NodeStatusReporter::start() {
  std::lock_guard l(mu_);
  if (started_) return;
  started_ = true;
  if (opts_.status.watchNode) {
    kube::ListWatchOptions lw{.path = "/api/v1/nodes",
                              .fieldSelector = "metadata.name=" + opts_.nodeName,
                              .watchTimeout = opts_.status.watchTimeout};
    watch_ = std::make_unique<kube::ListWatch>(
        client_, lw,
        kube::ListWatchHandler{[this](const std::vector<Json>& items, const std::string&) {
                                 if (items.empty())
                                   logger()->warn("node {} does not exist in the API server (yet)", opts_.nodeName);
                                 else
                                   onNode(items.front());
                               },
                               [this](const std::string& type, const Json& obj) {
                                 if (type == "DELETED")
                                   logger()->warn("node {} was deleted from the API server", opts_.nodeName);
                                 else
                                   onNode(obj);
                               }});
    watchThread_ = std::thread([this] { watch_->run(); });
  }
  // Called on the publishing thread: takes mu_ only to bump the version runLoop waits for.
  storeChanges_ = store_.subscribe([this] {
    uint64_t v = store_.version();
    std::lock_guard l(mu_);
    storeVersion_ = v;
    cv_.notify_all();
  });
  storeVersion_ = store_.version();
  loopThread_ = std::thread([this] { runLoop(); });
}

void NodeStatusReporter::stop() {
  {
    std::lock_guard l(mu_);
    if (!started_ || stop_) return;
    stop_ = true;
    cv_.notify_all();
  }
  if (watch_) watch_->stop();
  if (loopThread_.joinable()) loopThread_.join();
  storeChanges_.reset();
  publishFigures("stopped");
  if (opts_.infoKey.empty()) store_.publishAgentInfo("reporter", Json("stopped"));
  if (watchThread_.joinable()) watchThread_.join();
}

void NodeStatusReporter::onNode(const Json& node) {
  Observation o;
  o.rv = parseRv(node);
  o.owned = ownedConditions(node, opts_.status.conditionPrefix);
  Json addresses = Json::array();
  for (const auto& a : node.get("status").get("addresses").asArray())
    addresses.push(a.get("type").asString() + "=" + a.get("address").asString());
  std::lock_guard l(mu_);
  nodeUid_ = node.get("metadata").get("uid").asString();
  nodeInfo_ = Json::object().set("uid", nodeUid_).set("addresses", addresses).set("capacity", node.get("status").get("capacity"));
  o.seq = observed_.seq + 1;
  observed_ = std::move(o);
  nodeSeen_ = true;
  cv_.notify_all();
}

std::chrono::steady_clock::time_point NodeStatusReporter::nextResyncFrom(steady_clock::time_point t) {
  double j = opts_.status.resyncJitter;
  std::uniform_real_distribution<double> d(1 - j / 2, 1 + j / 2);
  return t + std::chrono::duration_cast<steady_clock::duration>(
                 std::chrono::duration<double, std::milli>(static_cast<double>(opts_.status.resyncInterval.count()) * d(rng_)));
}

bool NodeStatusReporter::allModulesSettled(const std::vector<core::ModuleSnapshot>& mods) const {
  for (const auto& m : mods)
    if (m.state.health != core::Health::kDisabled && !m.runner.firstPassDone) return false;
  return true;
}

// Applies the newest Node observation (loop thread). The first one seeds what the server
// has, so a restart with unchanged conditions sends nothing; later ones that show our
// conditions removed or altered by someone else make the next pass re-patch.
void NodeStatusReporter::processObservation() {
  Observation o;
  {
    std::lock_guard l(mu_);
    if (observed_.seq == processedObservation_) return;
    o = observed_;
  }
  processedObservation_ = o.seq;
  if (!seeded_) {
    seeded_ = true;
    acked_ = o.owned;
    ackedRv_ = o.rv;
    for (const auto& [type, c] : o.owned) {
      serverOwned_.insert(type);
      transitions_[type] = {c.status, c.lastTransitionTime};
    }
    return;
  }
  if (o.rv >= 0 && ackedRv_ >= 0 && o.rv < ackedRv_) return;  // older than what we know
  for (const auto& [type, _] : o.owned) serverOwned_.insert(type);
  if (acked_ && !sameIgnoringTimes(*acked_, o.owned)) {
    logger()->info("the agent's conditions on node {} were changed by another writer; re-patching", opts_.nodeName);
    acked_ = o.owned;
    std::lock_guard l(mu_);
    repatchesAfterRemoval_++;
  }
}

void NodeStatusReporter::runLoop() {
  if (opts_.status.watchNode) {
    std::unique_lock l(mu_);
    cv_.wait_for(l, opts_.firstObservationTimeout, [&] { return stop_ || nodeSeen_; });
    if (!nodeSeen_ && !stop_)
      logger()->warn("node {} not read within {} ms; reporting without its current conditions", opts_.nodeName,
                     opts_.firstObservationTimeout.count());
  }
  publishFigures("running");
  uint64_t seenVersion = ~uint64_t(0);
  bool windowOpen = false;
  steady_clock::time_point windowDeadline{}, retryAt{};
  std::optional<steady_clock::time_point> nextResync;
  int failures = 0;
  bool resyncPending = false;
  ConditionMap lastDesired;
  bool haveLastDesired = false;
  uint64_t changesInWindow = 0;
  if (seeded_) nextResync = nextResyncFrom(steady_clock::now());

  for (;;) {
    {
      std::unique_lock l(mu_);
      auto wakeAt = steady_clock::time_point::max();
      if (windowOpen) wakeAt = std::min(wakeAt, std::max(windowDeadline, failures ? retryAt : windowDeadline));
      if (resyncPending && failures) wakeAt = std::min(wakeAt, retryAt);
      if (nextResync) wakeAt = std::min(wakeAt, *nextResync);
      auto ready = [&] { return stop_ || storeVersion_ != seenVersion || observed_.seq != processedObservation_; };
      if (wakeAt == steady_clock::time_point::max())
        cv_.wait(l, ready);
      else
        cv_.wait_until(l, wakeAt, ready);
      if (stop_) return;
      seenVersion = storeVersion_;
    }
    processObservation();
    auto mods = store_.snapshot();
    DesiredMap desired = desiredConditions(mods, opts_.status.conditionPrefix);
    ConditionMap content = contentOf(desired);
    if (!haveLastDesired || !sameIgnoringTimes(content, lastDesired)) {
      if (haveLastDesired) {
        std::lock_guard l(mu_);
        changes_++;
      }
      changesInWindow++;
      lastDesired = content;
      haveLastDesired = true;
    }
    // Types to remove: ours on the server that no module publishes any more (only once
    // every module finished its first pass, so a restart does not flap them).
    bool settled = allModulesSettled(mods);
    bool stale = false;
    if (settled)
      for (const auto& t : serverOwned_)
        if (!content.count(t)) stale = true;
    bool differs = !acked_ || !sameIgnoringTimes(*acked_, content) || stale;
    auto now = steady_clock::now();
    if (differs && !windowOpen) {
      windowOpen = true;
      windowDeadline = now + opts_.status.coalesceWindow;
    } else if (!differs && windowOpen && !resyncPending) {
      windowOpen = false;  // the change was undone before it went out
      failures = 0;
    }
    bool resyncDue = nextResync && now >= *nextResync;
    if (resyncDue) resyncPending = true;
    bool windowDue = windowOpen && now >= windowDeadline && (failures == 0 || now >= retryAt);
    bool retryResync = resyncPending && (failures == 0 || now >= retryAt);
    if (!windowDue && !retryResync) continue;

    bool isResync = resyncPending && !windowDue;
    // Writes follow changes: a resync (not a retry) first compares the server's copy with
    // what the agent wants, and writes only when they differ or ours are missing.
    if (isResync && failures == 0 && serverMatches(content)) {
      resyncPending = false;
      {
        std::lock_guard l(mu_);
        resyncChecks_++;
      }
      nextResync = nextResyncFrom(steady_clock::now());
      continue;
    }
    if (send(isResync)) {
      failures = 0;
      windowOpen = false;
      resyncPending = false;
      {
        std::lock_guard l(mu_);
        if (changesInWindow > 1) coalesced_ += changesInWindow - 1;
      }
      changesInWindow = 0;
      nextResync = nextResyncFrom(steady_clock::now());
    } else {
      failures++;
      milliseconds retryAfter{0};
      {
        std::lock_guard l(mu_);
        std::swap(retryAfter, pendingRetryAfter_);
      }
      auto delay = std::max(kube::backoffDelay(failures, opts_.retryBase, opts_.retryMax, rng_), retryAfter);
      retryAt = steady_clock::now() + delay;
      if (!windowOpen && !resyncPending) resyncPending = true;
      logger()->debug("status patch retry {} in {} ms", failures, delay.count());
    }
  }
}

// The agent's conditions as the server has them: the watched Node when the watch has seen
// our last write (or something newer), else one GET. False when it cannot tell.
bool NodeStatusReporter::serverMatches(const ConditionMap& want) {
  std::optional<ConditionMap> have;
  if (opts_.status.watchNode) {
    std::lock_guard l(mu_);
    if (nodeSeen_ && observed_.rv >= 0 && observed_.rv >= ackedRv_) have = observed_.owned;
  }
  if (!have) {
    auto r = client_.get("/api/v1/nodes/" + opts_.nodeName);
    if (!r) {
      logger()->debug("resync read of node {}: {}", opts_.nodeName, r.error().message());
      return false;
    }
    auto node = Json::parse(r->body);
    if (!node) return false;
    have = ownedConditions(*node, opts_.status.conditionPrefix);
  }
  return sameIgnoringTimes(*have, want);
}

bool NodeStatusReporter::send(bool resync) {
  auto mods = store_.snapshot();
  DesiredMap desired = desiredConditions(mods, opts_.status.conditionPrefix);
  auto wallNow = clock_.wallNow();
  std::string nowText = formatRfc3339(wallNow);
  ConditionMap target;
  for (const auto& [type, d] : desired) {
    NodeCondition c = d.condition;
    auto& tr = transitions_[type];
    if (tr.first != c.status || tr.second.empty()) tr = {c.status, nowText};
    c.lastTransitionTime = tr.second;
    c.lastHeartbeatTime = nowText;
    target[type] = c;
  }
  std::vector<std::string> deletes;
  if (allModulesSettled(mods))
    for (const auto& t : serverOwned_)
      if (!target.count(t)) deletes.push_back(t);
  if (target.empty() && deletes.empty() && (!acked_ || acked_->empty())) {
    acked_ = ConditionMap{};
    std::lock_guard l(mu_);
    skipped_++;
    return true;  // nothing of ours to report
  }
  std::string body = buildStatusPatch(target, deletes);
  milliseconds retryAfter{0};
  auto r = client_.request("PATCH", "/api/v1/nodes/" + opts_.nodeName + "/status", body, kPatchType,
                           kube::RequestOptions{.maxAttempts = 1, .retryAfter = &retryAfter});
  if (!r) {
    std::string err = r.error().message();
    bool first;
    {
      std::lock_guard l(mu_);
      first = lastError_ != err;
      patchesFailed_++;
      lastError_ = err;
      pendingRetryAfter_ = retryAfter;
    }
    if (first) logger()->warn("node status patch failed (will retry with the newest state): {}", err);
    publishFigures("retrying");
    return false;
  }
  ConditionMap before = acked_.value_or(ConditionMap{});
  auto node = Json::parse(r->body);
  int64_t rv = node ? parseRv(*node) : -1;
  acked_ = contentOf(desired);
  for (auto& [type, c] : *acked_) c.lastTransitionTime = target[type].lastTransitionTime;
  ackedRv_ = rv;
  serverOwned_.clear();
  if (node) {
    for (const auto& [type, _] : ownedConditions(*node, opts_.status.conditionPrefix)) serverOwned_.insert(type);
  } else {
    for (const auto& [type, _] : target) serverOwned_.insert(type);
  }
  {
    std::lock_guard l(mu_);
    patchesSent_++;
    if (resync) resyncs_++;
    lastPatchTime_ = nowText;
    lastPatchUnix_ = std::chrono::duration<double>(wallNow.time_since_epoch()).count();
    conditionCount_ = target.size();
    if (!lastError_.empty()) logger()->info("node status patch succeeded again");
    lastError_.clear();
  }
  if (!resync) {
    std::string summary;
    for (const auto& [type, c] : target)
      if (!before.count(type) || before[type].status != c.status || before[type].reason != c.reason)
        summary += (summary.empty() ? "" : ", ") + type + "=" + c.status + "(" + c.reason + ")";
    for (const auto& t : deletes) summary += (summary.empty() ? "" : ", ") + t + " removed";
    logger()->info("patched node {} status: {}", opts_.nodeName, summary.empty() ? "messages updated" : summary);
  }
  emitEvents(before, target, desired);
  publishFigures("running");
  return true;
}

void NodeStatusReporter::emitEvents(const ConditionMap& before, const ConditionMap& after, const DesiredMap& desired) {
  if (!opts_.events.enabled) return;
  for (const auto& [type, c] : after) {
    auto it = before.find(type);
    // Transitions only: a condition's first report is not an event (fleet restarts and
    // new nodes would otherwise write one per condition).
    if (it == before.end() || it->second.status == c.status) continue;
    emitEvent(type, desired.at(type), c.status);
  }
}

void NodeStatusReporter::emitEvent(const std::string& condType, const DesiredCondition& d, const std::string& status) {
  auto now = steady_clock::now();
  const auto& c = d.condition;
  std::string reason = c.reason.empty() ? condType + (status == "True" ? "True" : "False") : c.reason;
  std::string message = condType + " is now " + status + (c.message.empty() ? "" : ": " + c.message);
  std::string key = condType + "\x1f" + status + "\x1f" + reason + "\x1f" + c.message;
  // Expire old dedup entries.
  for (auto it = recentEvents_.begin(); it != recentEvents_.end();)
    it = now - it->second.at > opts_.events.dedupWindow ? recentEvents_.erase(it) : std::next(it);
  if (!eventBucket_.tryTake(now)) {
    std::lock_guard l(mu_);
    eventsDropped_++;
    return;
  }
  std::string ts = formatRfc3339(clock_.wallNow());
  std::string ns = opts_.events.namespace_;
  auto hit = recentEvents_.find(key);
  if (hit != recentEvents_.end()) {
    int count = hit->second.count + 1;
    auto r = client_.request("PATCH", "/api/v1/namespaces/" + ns + "/events/" + hit->second.name,
                             buildEventUpdate(count, ts, message), kPatchType, {.maxAttempts = 2});
    std::lock_guard l(mu_);
    if (r) {
      hit->second.count = count;
      hit->second.at = now;
      eventsUpdated_++;
      return;
    }
    if (kube::httpStatus(r.error()) != 404) {
      eventsFailed_++;
      return;
    }
    recentEvents_.erase(hit);  // expired on the server: create a new one
  }
  char suffix[32];
  auto ns64 = std::chrono::duration_cast<std::chrono::nanoseconds>(clock_.wallNow().time_since_epoch()).count();
  std::snprintf(suffix, sizeof suffix, ".%" PRIx64, static_cast<uint64_t>(ns64));
  std::string uid;
  {
    std::lock_guard l(mu_);
    uid = nodeUid_;
  }
  EventSpec e{.name = opts_.nodeName + suffix,
                    .namespace_ = ns,
                    .nodeName = opts_.nodeName,
                    .nodeUid = uid,
                    .type = (d.health == core::Health::kDegraded || d.health == core::Health::kFailed) ? "Warning" : "Normal",
                    .reason = reason,
                    .message = message,
                    .host = opts_.nodeName,
                    .timestamp = ts};
  auto r = client_.request("POST", "/api/v1/namespaces/" + ns + "/events", buildEvent(e), "application/json",
                           {.maxAttempts = 2});
  std::lock_guard l(mu_);
  if (!r) {
    eventsFailed_++;
    logger()->debug("event {}: {}", reason, r.error().message());
    return;
  }
  eventsCreated_++;
  recentEvents_[key] = SentEvent{e.name, 1, now};
}

void NodeStatusReporter::publishFigures(const std::string& state) {
  if (opts_.infoKey.empty()) return;
  Json f = figures();
  f.set("state", state);
  store_.publishAgentInfo(opts_.infoKey, std::move(f));
}

Json NodeStatusReporter::figures() const {
  std::lock_guard l(mu_);
  return Json::object()
      .set("node", opts_.nodeName)
      .set("server", client_.cluster().server)
      .set("conditions", conditionCount_)
      .set("last_patch", lastPatchTime_.empty() ? Json("never") : Json(lastPatchTime_))
      .set("patches_sent", patchesSent_)
      .set("resync_checks", resyncChecks_)
      .set("resync_patches", resyncs_)
      .set("patches_failed", patchesFailed_)
      .set("changes", changes_)
      .set("changes_coalesced", coalesced_)
      .set("repatches_after_removal", repatchesAfterRemoval_)
      .set("events", Json::object()
                         .set("created", eventsCreated_)
                         .set("updated", eventsUpdated_)
                         .set("dropped", eventsDropped_)
                         .set("failed", eventsFailed_))
      .set("last_error", lastError_)
      .set("node_info", nodeInfo_);
}

std::vector<core::Metric> NodeStatusReporter::metrics() const {
  using T = core::Metric::Type;
  std::vector<core::Metric> out;
  {
    std::lock_guard l(mu_);
    const char* ph = "Node status patches by result";
    out.push_back({"nodeagent_status_patches_total", ph, T::kCounter, {{"result", "sent"}}, double(patchesSent_)});
    out.push_back({"nodeagent_status_patches_total", ph, T::kCounter, {{"result", "failed"}}, double(patchesFailed_)});
    out.push_back({"nodeagent_status_resync_checks_total",
                   "Periodic resyncs that found the server's conditions as wanted (no write)", T::kCounter, {},
                   double(resyncChecks_)});
    out.push_back({"nodeagent_status_resync_patches_total",
                   "Periodic resyncs that found the server's conditions missing or different and patched (included in sent)",
                   T::kCounter, {}, double(resyncs_)});
    out.push_back({"nodeagent_status_changes_total", "Changes of the agent's desired node conditions", T::kCounter, {},
                   double(changes_)});
    out.push_back({"nodeagent_status_changes_coalesced_total",
                   "Condition changes that went out together with others instead of in their own patch", T::kCounter, {},
                   double(coalesced_)});
    out.push_back({"nodeagent_status_repatches_total",
                   "Times the agent's conditions were changed on the server by another writer", T::kCounter, {},
                   double(repatchesAfterRemoval_)});
    out.push_back({"nodeagent_status_last_patch_timestamp_seconds", "Unix time of the last successful status patch",
                   T::kGauge, {}, lastPatchUnix_});
    const char* eh = "Node events by result";
    out.push_back({"nodeagent_events_total", eh, T::kCounter, {{"result", "created"}}, double(eventsCreated_)});
    out.push_back({"nodeagent_events_total", eh, T::kCounter, {{"result", "updated"}}, double(eventsUpdated_)});
    out.push_back({"nodeagent_events_total", eh, T::kCounter, {{"result", "dropped"}}, double(eventsDropped_)});
    out.push_back({"nodeagent_events_total", eh, T::kCounter, {{"result", "failed"}}, double(eventsFailed_)});
  }
  if (watch_) {
    auto s = watch_->stats();
    out.push_back({"nodeagent_kube_watch_lists_total", "Lists of the watched Node (first and after 410 Gone)",
                   T::kCounter, {{"resource", "nodes"}}, double(s.lists)});
    out.push_back({"nodeagent_kube_watch_relists_total", "Relists after 410 Gone", T::kCounter, {{"resource", "nodes"}},
                   double(s.relists)});
    out.push_back({"nodeagent_kube_watch_restarts_total", "Watches resumed from the last version", T::kCounter,
                   {{"resource", "nodes"}}, double(s.resumes)});
  }
  for (auto& m : client_.metrics()) out.push_back(std::move(m));
  return out;
}

}  // namespace nodeagent::reporter
