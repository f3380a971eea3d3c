// HealthCheckServer: the healthCheckNodePort listeners of LoadBalancer services with
// externalTrafficPolicy Local. A cloud load balancer probes every node on that port and
// sends traffic only to nodes that answer 200, i.e. that have a local ready endpoint;
// the answer is kube-proxy's, so load balancers configured for it need no change.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <optional>
#include <mutex>
#include <string>
#include <thread>

#include "common/fd.h"
#include "common/result.h"

namespace nodeagent::ipvs {

struct HealthTarget {
  std::string ns, name;
  size_t localEndpoints = 0;
  bool operator==(const HealthTarget&) const = default;
};

// The whole HTTP response kube-proxy gives: 200 with the count when there are local
// endpoints, 503 when there are none.
//   curl -i http://NODE:PORT/
std::string healthResponse(const HealthTarget& t, bool proxyHealthy = true);

class HealthCheckServer {
 public:
  // `bindAddress` "" listens on all addresses (IPv4 and IPv6), as kube-proxy does by default.
  explicit HealthCheckServer(std::string bindAddress = "") : bindAddress_(std::move(bindAddress)) {}
  ~HealthCheckServer() { stop(); }
  // Makes the listeners exactly `targets` (port -> service). A port that cannot be bound
  // is reported (the others still serve) and retried on the next call.
  [[nodiscard]] Result<void> update(const std::map<uint16_t, HealthTarget>& targets);
  void stop();
  size_t listeners() const;

 private:
  void run();
  std::string bindAddress_;
  mutable std::mutex mu_;
  std::map<uint16_t, HealthTarget> targets_;
  std::map<uint16_t, Fd> sockets_;
  Fd wake_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
};

}  // namespace nodeagent::ipvs
