// NodeStatusReporter: turns what modules publish into the agent's own Node conditions and sends
// them to the API server without adding load: changes are coalesced in a window and go
// out in one strategic merge patch of nodes/NAME/status (merged on `type`, so kubelet's
// and other writers' conditions are untouched); nothing is sent when the result equals
// what the server last acknowledged; a jittered resync every resync interval compares the
// server's copy (the watched Node, or a GET) with what the agent wants and patches only
// when ours are missing or differ, so writes follow changes;
// failed patches are retried with backoff (honouring Retry-After) and always carry the
// newest state. Condition transitions become Events, deduplicated and rate-limited.
// It watches its own Node, learns its addresses and capacity, and re-patches when someone
// removed or changed the agent's conditions.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "kube/client.h"
#include "kube/config.h"
#include "kube/list_watch.h"
#include "reporter/node_status.h"
#include "kube/rate.h"
#include "core/state_store.h"
#include "common/clock.h"

namespace nodeagent::reporter {

struct NodeStatusReporterOptions {
  std::string nodeName;
  kube::StatusSection status;
  kube::EventsSection events;
  std::chrono::milliseconds retryBase{1000};
  std::chrono::milliseconds retryMax{60'000};
  // Before the first patch, wait this long for the Node to be read, so a restart that
  // finds its conditions already in place sends nothing.
  std::chrono::milliseconds firstObservationTimeout{10'000};
  // Figures are published under this agent-info key ("" for none).
  std::string infoKey = "reporter";
};

// A condition the agent wants on the Node, with the module it came from.
struct DesiredCondition {
  NodeCondition condition;  // without times
  std::string module;
  core::Health health = core::Health::kHealthy;
};
using DesiredMap = std::map<std::string, DesiredCondition>;

// The agent's conditions from the modules' published states: each module condition with
// the prefix added ("SysctlTuned" -> "NodeAgentSysctlTuned"). Pure.
DesiredMap desiredConditions(const std::vector<core::ModuleSnapshot>& modules, const std::string& prefix);

class NodeStatusReporter {
 public:
  NodeStatusReporter(core::StateStore& store, kube::Client& client, NodeStatusReporterOptions options,
           const Clock& clock = SystemClock::instance());
  ~NodeStatusReporter();
  NodeStatusReporter(const NodeStatusReporter&) = delete;
  NodeStatusReporter& operator=(const NodeStatusReporter&) = delete;

  void start();
  void stop();

  Json figures() const;
  std::vector<core::Metric> metrics() const;

 private:
  struct Observation {
    uint64_t seq = 0;
    int64_t rv = -1;
    ConditionMap owned;
  };

  void runLoop();
  void onNode(const Json& node);
  bool send(bool resync);
  bool serverMatches(const ConditionMap& want);
  void emitEvents(const ConditionMap& before, const ConditionMap& after, const DesiredMap& desired);
  void emitEvent(const std::string& condType, const DesiredCondition& d, const std::string& status);
  void processObservation();
  bool allModulesSettled(const std::vector<core::ModuleSnapshot>& mods) const;
  std::chrono::steady_clock::time_point nextResyncFrom(std::chrono::steady_clock::time_point t);
  void publishFigures(const std::string& state);

  core::StateStore& store_;
  kube::Client& client_;
  NodeStatusReporterOptions opts_;
  const Clock& clock_;
  std::unique_ptr<kube::ListWatch> watch_;
  std::thread loopThread_, watchThread_;
  // Wakes runLoop when the store changes (no thread in between).
  core::StateStore::Subscription storeChanges_;

  // Shared between threads.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool started_ = false;
  uint64_t storeVersion_ = 0;
  Observation observed_;
  bool nodeSeen_ = false;
  Json nodeInfo_ = Json::object();

  // Figures (under mu_).
  uint64_t changes_ = 0, coalesced_ = 0, patchesSent_ = 0, patchesFailed_ = 0, resyncs_ = 0, skipped_ = 0;
  uint64_t resyncChecks_ = 0;
  uint64_t repatchesAfterRemoval_ = 0, eventsCreated_ = 0, eventsUpdated_ = 0, eventsDropped_ = 0, eventsFailed_ = 0;
  std::string lastPatchTime_, lastError_;
  std::chrono::milliseconds pendingRetryAfter_{0};
  double lastPatchUnix_ = 0;
  size_t conditionCount_ = 0;

  // Loop-thread state.
  std::optional<ConditionMap> acked_;  // what the server acknowledged (content)
  int64_t ackedRv_ = -1;
  std::set<std::string> serverOwned_;         // our-prefix types known to be on the server
  std::map<std::string, std::pair<std::string, std::string>> transitions_;  // type -> (status, time)
  uint64_t processedObservation_ = 0;
  bool seeded_ = false;
  std::mt19937_64 rng_{std::random_device{}()};
  kube::TokenBucket eventBucket_;
  struct SentEvent {
    std::string name;
    int count = 0;
    std::chrono::steady_clock::time_point at;
  };
  std::map<std::string, SentEvent> recentEvents_;
  std::string nodeUid_;
};

}  // namespace nodeagent::reporter
