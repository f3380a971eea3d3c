// ServiceSource: where desired services come from. FileServiceSource reads a strictly
// validated YAML file (standalone nodes) and watches it with inotify; the Kubernetes
// source (Services + EndpointSlices) will implement the same interface.
#pragma once

#include <atomic>
#include <functional>
#include <istream>
#include <string>

#include "common/event_loop.h"
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
// The file is parsed as a stream: one service's YAML nodes at a time. It must be one YAML
// document. An endpoint's address is of the service's family (except with forward: tunnel);
// with forward: route or tunnel its port is the service's; lower_threshold needs an
// upper_threshold at least as high. Services equal to
// those in `reuse` share its entries.
[[nodiscard]] Result<DesiredState> parseServices(std::istream& in, const std::string& source,
                                                 const DesiredState* reuse = nullptr);
[[nodiscard]] Result<DesiredState> parseServiceFile(const std::string& text, const std::string& source,
                                                    const DesiredState* reuse = nullptr);

// Largest services file read (checked before parsing): 10,000 services with 10 endpoints
// each in block style are about 8 MB.
inline constexpr size_t kMaxServicesFileBytes = 64 << 20;

// Watches its file with inotify on an event loop (the daemon's main loop, given as its
// Poster): no thread of its own. Without a loop (nodeagentd --once, tools that only load)
// watch() does nothing.
class FileServiceSource final : public ServiceSource {
 public:
  explicit FileServiceSource(std::string path, EventLoop::Poster loop = {})
      : path_(std::move(path)), loop_(std::move(loop)) {}
  ~FileServiceSource() override { stop(); }
  using ServiceSource::load;
  Result<DesiredState> load(const DesiredState* reuse) override;
  void watch(std::function<void()> onChange) override;
  void stop() override;
  std::string describe() const override { return "file " + path_; }

 private:
  struct Watch;
  std::string path_;
  EventLoop::Poster loop_;
  std::shared_ptr<Watch> watch_;
};

}  // namespace nodeagent::ipvs
