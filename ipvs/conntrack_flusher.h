// ConntrackFlusher: the FlowFlusher of the running agent, over ctnetlink
// (netfilter::Conntrack, opened on first use in the calling thread's network namespace).
#pragma once

#include <optional>

#include "ipvs/reconciler.h"
#include "netfilter/conntrack.h"

namespace nodeagent::ipvs {

class ConntrackFlusher final : public FlowFlusher {
 public:
  // conntrack -D -p udp --reply-src ADDR --reply-port-src PORT   (each backend)
  // conntrack -D -p udp --orig-dst VIP --orig-port-dst PORT      (each service)
  Result<size_t> flush(std::span<const DestKey> backends, std::span<const ServiceKey> services) override;

 private:
  std::optional<netfilter::Conntrack> ct_;
};

}  // namespace nodeagent::ipvs
