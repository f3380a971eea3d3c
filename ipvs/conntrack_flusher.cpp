#include "ipvs/conntrack_flusher.h"

#include <netinet/in.h>

#include <vector>

namespace nodeagent::ipvs {

Result<size_t> ConntrackFlusher::flush(std::span<const DestKey> backends, std::span<const ServiceKey> services) {
  if (!ct_) {
    auto c = netfilter::Conntrack::open();
    if (!c) return fail(c.error());
    ct_.emplace(std::move(*c));
  }
  std::vector<netfilter::FlowMatch> natDst, origDst;
  for (const auto& d : backends) natDst.push_back({IPPROTO_UDP, d.address.toString(), d.port});
  for (const auto& k : services) origDst.push_back({IPPROTO_UDP, k.address.toString(), k.port});
  return ct_->deleteMatching(natDst, origDst);
}

}  // namespace nodeagent::ipvs
