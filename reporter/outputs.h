// Outputs: everything that reports the agent's state outward, started by the daemon
// after the modules: the Node status reporter (when a Kubernetes API is configured or
// found), the Prometheus /metrics endpoint and the atomic status file. A standalone node
// (kube.mode off, or auto without any Kubernetes environment) runs only the local outputs
// and stays healthy.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "common/event_loop.h"
#include "kube/client.h"
#include "kube/config.h"
#include "reporter/config.h"
#include "reporter/metrics_server.h"
#include "reporter/node_status_reporter.h"
#include "core/state_store.h"

namespace nodeagent::reporter {

struct OutputsOptions {
  std::string nodeName;
  kube::Config kube;
  OutputsConfig outputs;
  bool dryRun = false;  // no API writes, no status file
  std::string serviceAccountDir = kube::kServiceAccountDir;
};

// Writes the status file atomically whenever what it shows changes (at most once a second),
// on an event loop's thread: a store change wakes it, a timer ends a burst.
class StatusFileWriter {
 public:
  StatusFileWriter(core::StateStore& store, std::string path, std::string nodeName)
      : store_(store), path_(std::move(path)), nodeName_(std::move(nodeName)) {}
  ~StatusFileWriter() { stop(); }
  // Writes the current state, then follows the store on `loop`. The loop must not run
  // its handlers after stop().
  [[nodiscard]] Result<void> start(EventLoop& loop);
  void stop();
  // The file's content for the current store (pure apart from reading the store).
  static Json render(const core::StateStore& store, const std::string& nodeName);
  uint64_t writes() const { return writes_; }

 private:
  void changed();  // loop thread
  void write();    // loop thread
  core::StateStore& store_;
  std::string path_, nodeName_;
  core::StateStore::Subscription storeChanges_;
  EventLoop::Timer* burstEnd_ = nullptr;
  std::string last_;
  std::chrono::steady_clock::time_point lastWrite_{};
  bool warned_ = false;
  bool started_ = false;
  std::atomic<uint64_t> writes_{0};
};

class Outputs {
 public:
  Outputs(core::StateStore& store, OutputsOptions options);
  ~Outputs();
  // Never fails the daemon: problems are logged and shown in `nodeagentctl status`,
  // except a metrics address that cannot be bound (a config error the user must fix).
  // The status file is written on `loop` (the daemon's main loop); without one, on a loop
  // of its own thread. Outputs stop before `loop` runs again.
  [[nodiscard]] Result<void> start(EventLoop* loop = nullptr);
  void stop();
  int metricsPort() const { return metrics_ ? metrics_->port() : 0; }
  std::string renderMetrics() const;

 private:
  [[nodiscard]] Result<void> startStatusFile(EventLoop* loop);
  core::StateStore& store_;
  OutputsOptions opts_;
  std::unique_ptr<kube::Client> client_;
  std::unique_ptr<NodeStatusReporter> reporter_;
  std::unique_ptr<MetricsServer> metrics_;
  std::unique_ptr<StatusFileWriter> statusFile_;
  std::unique_ptr<EventLoop> ownLoop_;  // when start() was given none
  std::optional<EventLoop::Waker> ownLoopStop_;
  std::thread ownLoopThread_;
};

}  // namespace nodeagent::reporter
