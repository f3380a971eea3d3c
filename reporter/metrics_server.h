// Prometheus text exposition (format 0.0.4) and the /metrics endpoint.
//
// The HTTP side is a deliberately tiny HTTP/1.1 responder rather than a library such as
// libmicrohttpd: one endpoint, GET only, loopback by default, one connection at a time
// with a 2 s read deadline, "Connection: close" after every answer. That is ~150 lines
// the project owns, with no extra package, no thread pool and no idle CPU (it blocks in
// poll() on the listening socket and a wake-up eventfd).
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "core/module.h"
#include "core/state_store.h"
#include "common/fd.h"
#include "common/result.h"

namespace nodeagent::reporter {

// Renders samples as Prometheus text: one HELP/TYPE per metric name (first wins), samples
// grouped under it, label values escaped; invalid names and duplicate series are dropped.
std::string renderPrometheus(const std::vector<core::Metric>& metrics);

// The agent's own samples from the store: module health, reconcile counts and durations,
// then every module's published metrics.
std::vector<core::Metric> storeMetrics(const std::vector<core::ModuleSnapshot>& modules);

class MetricsServer {
 public:
  using Render = std::function<std::string()>;
  explicit MetricsServer(Render render) : render_(std::move(render)) {}
  ~MetricsServer() { stop(); }
  // Binds HOST:PORT ("127.0.0.1:9464", "[::1]:0"); port 0 picks a free one (see port()).
  [[nodiscard]] Result<void> start(const std::string& address);
  void stop();
  int port() const { return port_; }
  uint64_t requests() const { return requests_; }

 private:
  void serve();
  void handle(int fd);
  Render render_;
  Fd listen_, wake_;
  std::thread thread_;
  int port_ = 0;
  std::atomic<uint64_t> requests_{0};
};

}  // namespace nodeagent::reporter
