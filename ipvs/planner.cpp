#include "ipvs/planner.h"

namespace nodeagent::ipvs {

Plan planChanges(const DesiredState& desired, const AppliedState& applied, const std::set<DestRef>& draining) {
  Plan p;
  using T = Op::Type;
  for (const auto& [key, want] : desired) {
    auto it = applied.find(key);
    if (it == applied.end()) {
      p.ops.push_back({T::kAddService, want.service, {}});
      for (const auto& [dk, d] : want.dests) p.ops.push_back({T::kAddDest, want.service, d});
      continue;
    }
    const AppliedService& have = it->second;
    if (!(have.service == want.service)) p.ops.push_back({T::kEditService, want.service, {}});
    for (const auto& [dk, d] : want.dests) {
      auto hd = have.dests.find(dk);
      DestRef ref{key, dk};
      bool wasDraining = draining.contains(ref);
      if (hd == have.dests.end()) {
        p.ops.push_back({T::kAddDest, want.service, d});
      } else if (!(hd->second == d)) {
        p.ops.push_back({T::kEditDest, want.service, d});
      }
      if (wasDraining) p.stopDrain.push_back(ref);
    }
    for (const auto& [dk, d] : have.dests) {
      if (want.dests.contains(dk)) continue;
      DestRef ref{key, dk};
      if (key.fwmark == 0 && key.protocol == Protocol::kUdp) {
        // UDP has no connection end to wait for: delete now and flush its flows.
        p.ops.push_back({T::kDelDest, want.service, d});
        p.flushBackend.push_back(ref);
        if (draining.contains(ref)) p.stopDrain.push_back(ref);
        continue;
      }
      if (draining.contains(ref)) continue;
      if (d.weight != 0) {
        Destination zero = d;
        zero.weight = 0;
        p.ops.push_back({T::kEditDest, want.service, zero});
      }
      p.startDrain.push_back(ref);
    }
  }
  for (const auto& [key, have] : applied) {
    if (desired.contains(key)) continue;
    p.ops.push_back({T::kDelService, have.service, {}});
    for (const auto& [dk, d] : have.dests)
      if (draining.contains({key, dk})) p.stopDrain.push_back({key, dk});
    if (key.fwmark == 0 && key.protocol == Protocol::kUdp) p.flushService.push_back(key);
  }
  return p;
}

std::vector<Op> finishDrains(const std::map<DestRef, DrainEntry>& draining,
                             const std::map<DestRef, uint64_t>& conns,
                             std::chrono::steady_clock::time_point now,
                             std::vector<DestRef>& finished) {
  std::vector<Op> ops;
  for (const auto& [ref, entry] : draining) {
    auto c = conns.find(ref);
    if (c == conns.end()) {  // gone already (deleted by hand, or its service went)
      finished.push_back(ref);
      continue;
    }
    if (c->second == 0 || now >= entry.deadline) {
      Op op;
      op.type = Op::Type::kDelDest;
      op.service.key = ref.first;
      op.dest.key = ref.second;
      ops.push_back(op);
      finished.push_back(ref);
    }
  }
  return ops;
}

}  // namespace nodeagent::ipvs
