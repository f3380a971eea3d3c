// Planner: pure diff of desired against last-applied IPVS state. One changed endpoint
// yields one operation, whatever the table size. Endpoints that go away drain (weight 0)
// unless their service is UDP, where they are deleted at once and their flows flushed.
#pragma once

#include <chrono>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "ipvs/service_table.h"
#include "ipvs/types.h"

namespace nodeagent::ipvs {

struct DesiredService {
  Service service;
  bool masquerade = false;  // SNAT traffic to this service (nftables mark + masquerade)
  std::map<DestKey, Destination> dests;
  bool operator==(const DesiredService&) const = default;
};
using DesiredState = std::map<ServiceKey, DesiredService>;

// What the agent believes is in the kernel for the services it owns.
struct AppliedService {
  Service service;
  std::map<DestKey, Destination> dests;
};
using AppliedState = std::map<ServiceKey, AppliedService>;

using DestRef = std::pair<ServiceKey, DestKey>;

struct Plan {
  std::vector<Op> ops;
  std::vector<DestRef> startDrain;   // set to weight 0 now (or found at 0): delete when idle
  std::vector<DestRef> stopDrain;    // desired again: no longer draining
  std::vector<DestRef> flushBackend; // UDP: flush conntrack entries NAT-ed to this backend
  std::vector<ServiceKey> flushService;  // UDP service removed: flush flows to its VIP:port
  bool empty() const { return ops.empty() && startDrain.empty() && stopDrain.empty(); }
};

// Diffs `desired` against `applied`. `draining` holds destinations already draining (they
// are at weight 0 and are not re-planned).
Plan planChanges(const DesiredState& desired, const AppliedState& applied, const std::set<DestRef>& draining);

// Drains that are over: the destination has no active or inactive connections left, or
// its deadline passed. `conns` maps each draining destination to its active+inactive
// connections as the kernel reports them (absent: it is gone already).
struct DrainEntry {
  std::chrono::steady_clock::time_point deadline;
};
std::vector<Op> finishDrains(const std::map<DestRef, DrainEntry>& draining,
                             const std::map<DestRef, uint64_t>& conns,
                             std::chrono::steady_clock::time_point now,
                             std::vector<DestRef>& finished);

}  // namespace nodeagent::ipvs
