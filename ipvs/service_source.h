// ServiceSource: where desired services come from. FileServiceSource reads a strictly
// validated YAML file (standalone nodes) and watches it with inotify; the Kubernetes
// source (Services + EndpointSlices) will implement the same interface.
#pragma once

#include <atomic>
#include <functional>
#include <istream>
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
  // Entries equal to those of `reuse` (the state loaded before) are shared with it.
  [[nodiscard]] virtual Result<DesiredState> load(const DesiredState* reuse) = 0;
  [[nodiscard]] Result<DesiredState> load() { return load(nullptr); }
  // Calls `onChange` (from another thread) whenever the source may have changed.
  virtual void watch(std::function<void()> onChange) = 0;
  virtual void stop() {}
  virtual std::string describe() const = 0;
  // False while the source has not seen its whole input yet (the Kubernetes source before
  // its first lists): the module then programs nothing rather than a partial set.
  virtual bool ready() const { return true; }
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
// The file is parsed as a stream: one service's YAML nodes at a time. Services equal to
// those in `reuse` share its entries.
[[nodiscard]] Result<DesiredState> parseServices(std::istream& in, const std::string& source,
                                                 const DesiredState* reuse = nullptr);
[[nodiscard]] Result<DesiredState> parseServiceFile(const std::string& text, const std::string& source,
                                                    const DesiredState* reuse = nullptr);

class FileServiceSource final : public ServiceSource {
 public:
  explicit FileServiceSource(std::string path) : path_(std::move(path)) {}
  ~FileServiceSource() override { stop(); }
  using ServiceSource::load;
  Result<DesiredState> load(const DesiredState* reuse) override;
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
