// The contract every nodeagent module implements, and the state it publishes.
// Core knows no module and no module's config: the daemon (the composition root) builds
// each module with its own config section and hands it a new section on reload, through
// the module's own `reload(const <module>::Config&)`.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/json.h"
#include "common/event_loop.h"
#include "common/result.h"

namespace nodeagent::core {

class StateStore;

enum class Health { kStarting, kHealthy, kDegraded, kFailed, kDisabled };
std::string_view healthName(Health h);

// A Node condition the module wants reported. `type` is without the agent's prefix; the
// reporter adds it. `status` true means the condition holds ("SysctlTuned" true is good,
// "ConntrackPressure" true is bad): each type documents which.
struct Condition {
  std::string type;
  bool status = false;
  std::string reason;   // CamelCase, machine-readable
  std::string message;  // one line for people
  friend bool operator==(const Condition&, const Condition&) = default;
};

// One Prometheus sample. Names follow Prometheus conventions (`_total`, `_seconds`).
struct Metric {
  enum class Type { kGauge, kCounter };
  std::string name;
  std::string help;
  Type type = Type::kGauge;
  std::vector<std::pair<std::string, std::string>> labels;
  double value = 0;
};

// What a module publishes after each reconcile (or whenever it has news).
struct ModuleState {
  std::string name;
  Health health = Health::kStarting;
  std::string summary;  // one line, e.g. "42/42 keys in sync"
  std::vector<Condition> conditions;
  Json details;  // module-specific, shown by `nodeagentctl status -o json`
  std::vector<Metric> metrics;
};

// Filled in by the runner, not by the module.
struct RunnerStats {
  uint64_t reconciles = 0;
  uint64_t failures = 0;
  std::string lastError;
  std::chrono::milliseconds lastDuration{0};
  std::chrono::system_clock::time_point lastReconcile{};
  bool firstPassDone = false;
};

struct ReconcileContext {
  bool dryRun = false;   // compute and publish the plan; change nothing
  bool initial = false;  // first pass since start
  bool resync = false;   // periodic pass (max interval reached), not a trigger
  // A periodic pass may give way to a change. While `changeWaiting()` is true a triggered
  // pass waits behind this one; a module whose periodic pass is long (a full read of a
  // large kernel table) may stop early, changing nothing, and set `gaveWay`. The runner then
  // runs the triggered pass at once and the periodic one right after it. Empty when the
  // pass may not give way: the first pass, a triggered one, and a periodic pass that has
  // given way for longer than twice its interval (so changes cannot put it off forever).
  std::function<bool()> changeWaiting;
  mutable bool gaveWay = false;
};

// A control-API call routed to a module: `nodeagentctl MODULE COMMAND ARGS... [--opt=v]`.
struct CallRequest {
  std::string command;
  std::vector<std::string> args;
  std::map<std::string, std::string> options;
  bool dryRun = false;
};

// A command the module answers through call(), as users type it:
// `nodeagentctl GROUP COMMAND ARGS... [--OPTION=V]`. The control API lists them, so the
// CLI defines none itself.
struct CommandOption {
  std::string name;  // "--tier" is "tier"
  std::string help;
  bool flag = false;  // takes no value
};
struct CommandSpec {
  std::string command;  // "pull"
  std::string group;    // the CLI word when it is not the module's name ("images")
  std::string help;
  std::vector<std::string> args;  // positional argument names; a trailing "..." takes many
  std::vector<CommandOption> options;
  bool mutating = false;     // changes something: accepts --dry-run
  bool longRunning = false;  // may take minutes: no deadline unless the user sets one
};

// Lets a long-running call stream progress to the client (one JSON object per event).
class CallOutput {
 public:
  virtual ~CallOutput() = default;
  virtual void progress(const Json& event) = 0;
  // True when the client went away; long calls should stop early.
  virtual bool cancelled() const = 0;
};

// Everything a module gets from the agent. Dependencies are passed in, never global.
struct ModuleContext {
  StateStore* store = nullptr;
  bool dryRun = false;
  std::string stateDir;  // the module owns stateDir/<name>/
  // Asks the runner for an immediate reconcile (coalesced, rate-limited by min_interval).
  std::function<void()> trigger;
  // The daemon's main loop, for what only waits on a descriptor (a file watch): no thread
  // of its own. Not valid in `nodeagentd --once` and in tests without a loop.
  EventLoop::Poster mainLoop;
};

class Module {
 public:
  virtual ~Module() = default;
  virtual std::string name() const = 0;
  // Brings the world closer to the desired state and publishes the module's state. Called
  // from the module's own thread only. An error degrades the module; it is retried.
  [[nodiscard]] virtual Result<void> reconcile(const ReconcileContext& ctx) = 0;
  // How often a periodic pass runs when nothing triggers one (0 = the agent's max_interval).
  virtual std::chrono::milliseconds resyncInterval() const { return std::chrono::milliseconds(0); }
  // The commands call() answers, in the order users should see them.
  virtual std::vector<CommandSpec> commands() const { return {}; }
  // Control API. Called from server threads, concurrently with reconcile.
  [[nodiscard]] virtual Result<Json> call(const CallRequest& req, CallOutput& out) {
    (void)out;
    return failInvalid("module " + name() + " has no command \"" + req.command + "\"");
  }
  // Called once at shutdown, after the last reconcile returned.
  virtual void stop() {}
};

}  // namespace nodeagent::core
