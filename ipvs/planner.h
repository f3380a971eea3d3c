// Planner: pure diff of desired against last-applied IPVS state. One changed endpoint
// yields one operation, whatever the table size. Endpoints that go away drain (weight 0)
// unless their service is UDP, where they are deleted at once and their flows flushed.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ipvs/flat_map.h"
#include "ipvs/service_table.h"
#include "ipvs/types.h"

namespace nodeagent::ipvs {

// The destinations of one service: a vector kept sorted by key. About 36 bytes per
// endpoint where a std::map node takes about 96, so 10,000 services x 10 endpoints hold in
// a few MB. Iterators may change a destination's fields but never its key.
class Dests {
 public:
  using iterator = std::vector<Destination>::iterator;
  using const_iterator = std::vector<Destination>::const_iterator;
  Dests() = default;
  // Sorts `v` by key; of destinations with the same key the first is kept.
  explicit Dests(std::vector<Destination> v);
  const Destination* find(const DestKey& k) const;
  Destination* find(const DestKey& k);
  bool contains(const DestKey& k) const { return find(k) != nullptr; }
  // Adds `d`; false (and nothing changed) when its key is there already.
  bool insert(const Destination& d);
  void put(const Destination& d);  // adds or replaces
  bool erase(const DestKey& k);
  size_t size() const { return v_.size(); }
  bool empty() const { return v_.empty(); }
  iterator begin() { return v_.begin(); }
  iterator end() { return v_.end(); }
  const_iterator begin() const { return v_.begin(); }
  const_iterator end() const { return v_.end(); }
  bool operator==(const Dests&) const = default;

 private:
  std::vector<Destination> v_;
};

struct DesiredService {
  Service service;
  bool masquerade = false;  // SNAT traffic to this service (nftables mark + masquerade)
  Dests dests;
  // Set by the Kubernetes source (a services file leaves the defaults):
  // SNAT only traffic from outside the cluster CIDR (kube-proxy's --cluster-cidr); a
  // `masquerade` service SNATs everything whatever this says.
  bool masqueradeOutside = false;
  // False for a NodePort on one of the node's own addresses: that address is neither bound
  // on the VIP interface nor closed to other ports (the node's ssh is on it).
  bool bindVip = true;
  // loadBalancerSourceRanges: non-empty, only sources in those of the service's family
  // reach it (nftables drops the others).
  std::vector<Cidr> sourceRanges;
  // Its endpoints on this node (sorted): one reaching itself through the service is
  // masqueraded (hairpin), else it would see a packet from its own address.
  std::vector<DestKey> hairpin;
  std::string name;                // namespace/name:port of the Kubernetes service
  bool operator==(const DesiredService&) const = default;
};

// Services are immutable once built and shared: the desired state, the reconciler's record
// of what it applied, and a reloaded file's unchanged entries point to the same object, so
// a large table is held once. Change a service by building a new one.
using ServicePtr = std::shared_ptr<const DesiredService>;
// Sorted by key: merge walks, ranges by address; lookups are binary searches (FlatMap).
using DesiredState = FlatMap<ServiceKey, ServicePtr>;

struct ServiceKeyHash {
  size_t operator()(const ServiceKey& k) const;
};
// What the agent believes is in the kernel for the services it owns (masquerade unused).
// Hashed: one changed service is found in O(1), and services come and go in O(1).
using AppliedState = std::unordered_map<ServiceKey, ServicePtr, ServiceKeyHash>;

// Same IPVS programming (service and destinations); masquerade is nftables' business.
bool sameIpvs(const DesiredService& a, const DesiredService& b);

using DestRef = std::pair<ServiceKey, DestKey>;

struct Plan {
  std::vector<Op> ops;
  std::vector<DestRef> startDrain;   // set to weight 0 now (or found at 0): delete when idle
  std::vector<DestRef> stopDrain;    // desired again: no longer draining
  std::vector<DestRef> flushBackend; // UDP: flush conntrack entries NAT-ed to this backend
  std::vector<ServiceKey> flushService;  // UDP service removed: flush flows to its VIP:port
  bool empty() const { return ops.empty() && startDrain.empty() && stopDrain.empty(); }
};

using IsDraining = std::function<bool(const DestRef&)>;

// Appends to `plan` what turns `have` into `want` for one service: `want` null means not
// desired, `have` null means not applied. Draining destinations are at weight 0 and are
// not re-planned.
void planService(const ServiceKey& key, const DesiredService* want, const DesiredService* have,
                 const IsDraining& draining, Plan& plan);

// Diffs `desired` against `applied`, service by service in key order.
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
