// StateStore: the one place every module publishes its state; the reporter, metrics,
// status file and control server read from it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/module.h"

namespace nodeagent::core {

struct ModuleSnapshot {
  ModuleState state;
  RunnerStats runner;
};

class StateStore {
 public:
  // Replaces the module's state. Bumps the version when anything a reader sees changed.
  void publish(ModuleState state);
  void recordReconcile(const std::string& module, bool ok, const std::string& error,
                       std::chrono::milliseconds duration);
  // Reporter figures and other agent-wide facts, shown by `nodeagentctl status`.
  void publishAgentInfo(const std::string& key, Json value);

  std::optional<ModuleSnapshot> get(const std::string& module) const;
  std::vector<ModuleSnapshot> snapshot() const;
  Json agentInfo() const;
  uint64_t version() const;

  // What a wait saw: the version, and whether the store is closed (the daemon is stopping;
  // readers stop waiting). Said outright, so no reader guesses it from the clock.
  struct Change {
    uint64_t version = 0;
    bool closed = false;
  };
  // Waits until the version passes `since`, the deadline passes, or close() is called.
  Change waitForChange(uint64_t since, std::chrono::steady_clock::time_point deadline) const;
  void close();
  bool closed() const;

 private:
  void bumpLocked();
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::map<std::string, ModuleSnapshot> modules_;
  Json agentInfo_ = Json::object();
  uint64_t version_ = 0;
  bool closed_ = false;
};

// Overall health: the worst module health (disabled modules do not count).
Health overallHealth(const std::vector<ModuleSnapshot>& modules);

// One line for STATUS= and `nodeagentctl status`: "healthy: sysctl 42/42 in sync; ...".
std::string summarize(const std::vector<ModuleSnapshot>& modules);

}  // namespace nodeagent::core
