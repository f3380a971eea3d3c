// ServiceSource: where desired services come from. FileServiceSource reads a strictly
// validated YAML file (standalone nodes) and watches it with inotify; the Kubernetes
// source (Services + EndpointSlices) will implement the same interface.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <thread>

#include "common/fd.h"
#include "common/result.h"
#include "ipvs/planner.h"

namespace nodeagent::ipvs {

class ServiceSource {
 public:
  virtual ~ServiceSource() = default;
  // The whole desired state; an invalid source is rejected whole (nothing applied).
  [[nodiscard]] virtual Result<DesiredState> load() = 0;
  // Calls `onChange` (from another thread) whenever the source may have changed.
  virtual void watch(std::function<void()> onChange) = 0;
  virtual void stop() {}
  virtual std::string describe() const = 0;
};

// Parses the services file. Every error names file:line:col and the key.
//
//   services:
//     - address: 10.96.0.10        # or fwmark: 7 (with family: inet|inet6)
//       port: 80
//       protocol: tcp              # tcp | udp | sctp
//       scheduler: rr              # rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh
//       scheduler_flags: [sh-port] # sh-fallback sh-port mh-fallback mh-port
//       persistence: 3h            # client-IP affinity (0: none)
//       masquerade: true           # SNAT traffic to this service
//       forward: masq              # masq | tunnel | route
//       endpoints:
//         - {address: 10.244.1.5, port: 8080, weight: 1}
[[nodiscard]] Result<DesiredState> parseServiceFile(const std::string& text, const std::string& source);

class FileServiceSource final : public ServiceSource {
 public:
  explicit FileServiceSource(std::string path) : path_(std::move(path)) {}
  ~FileServiceSource() override { stop(); }
  Result<DesiredState> load() override;
  void watch(std::function<void()> onChange) override;
  void stop() override;
  std::string describe() const override { return "file " + path_; }

 private:
  void run(std::function<void()> onChange);
  std::string path_;
  Fd inotify_;
  Fd wake_;
  std::thread thread_;
};

}  // namespace nodeagent::ipvs
