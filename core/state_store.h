// StateStore: the one place every module publishes its state; the reporter, metrics,
// status file and control server read from it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
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

  // Calls `onChange` after each change a reader would see and once at close(), on the
  // thread that made it (a module's runner, the main thread), so a loop that also waits on
  // something else (the reporter's, the daemon's sd-event loop) needs no thread that only
  // waits on the store. `onChange` must be quick; it may read the store but must not
  // change it or subscribe (it runs under the subscribers' lock). Ends
  // when the Subscription is destroyed; no call is in progress after that.
  class Subscription {
   public:
    Subscription() = default;
    Subscription(Subscription&& o) noexcept : store_(std::exchange(o.store_, nullptr)), id_(o.id_) {}
    Subscription& operator=(Subscription&& o) noexcept {
      if (this != &o) {
        reset();
        store_ = std::exchange(o.store_, nullptr);
        id_ = o.id_;
      }
      return *this;
    }
    ~Subscription() { reset(); }
    void reset();

   private:
    friend class StateStore;
    Subscription(const StateStore* store, uint64_t id) : store_(store), id_(id) {}
    const StateStore* store_ = nullptr;
    uint64_t id_ = 0;
  };
  [[nodiscard]] Subscription subscribe(std::function<void()> onChange) const;

 private:
  void bumpLocked();
  // Runs the subscribers (after mu_ is released).
  void notifySubscribers() const;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::map<std::string, ModuleSnapshot> modules_;
  Json agentInfo_ = Json::object();
  uint64_t version_ = 0;
  bool closed_ = false;
  // Held while subscribers run, so unsubscribing waits for a call in progress.
  mutable std::mutex subscribersMu_;
  mutable std::map<uint64_t, std::function<void()>> subscribers_;
  mutable uint64_t nextSubscriber_ = 1;
};

// Overall health: the worst module health (disabled modules do not count).
Health overallHealth(const std::vector<ModuleSnapshot>& modules);

// One line for STATUS= and `nodeagentctl status`: "healthy: sysctl 42/42 in sync; ...".
std::string summarize(const std::vector<ModuleSnapshot>& modules);

}  // namespace nodeagent::core
