// Reconciler: keeps the kernel's IPVS table equal to the desired services for the services
// the agent owns. Reads the kernel in full only at start and on resync; otherwise sends
// the planner's difference against what it last applied. Never touches services it does
// not own (ownership: recorded in the state directory, or inside a configured CIDR).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "ipvs/planner.h"
#include "ipvs/service_table.h"

namespace nodeagent::ipvs {

// Removes conntrack entries of UDP flows that would otherwise keep going to a dead
// backend. Implemented over netfilter::Conntrack in the module; a fake in unit tests.
// Called once per pass with everything the pass removed: one read of the conntrack table
// serves all of them, however many backends went.
class FlowFlusher {
 public:
  virtual ~FlowFlusher() = default;
  // conntrack -D -p udp --reply-src ADDR --reply-port-src PORT   (each backend)
  // conntrack -D -p udp --orig-dst VIP --orig-port-dst PORT      (each service)
  virtual Result<size_t> flush(std::span<const DestKey> backends, std::span<const ServiceKey> services) = 0;
};

// The set of services the agent created, persisted as one key per line.
class Ownership {
 public:
  explicit Ownership(std::string path) : path_(std::move(path)) {}
  [[nodiscard]] Result<void> load();  // absent file: owns nothing yet
  [[nodiscard]] Result<void> save() const;
  bool contains(const ServiceKey& k) const { return keys_.contains(k); }
  bool insert(const ServiceKey& k) { return keys_.insert(k).second; }
  bool erase(const ServiceKey& k) { return keys_.erase(k) > 0; }
  const std::set<ServiceKey>& keys() const { return keys_; }

 private:
  std::string path_;
  std::set<ServiceKey> keys_;
};

struct ReconcilerOptions {
  std::vector<Cidr> ownedCidrs;
  std::chrono::milliseconds drainTimeout{std::chrono::minutes(10)};
};

// Ops go to the kernel in batches of about this many (a batch ends at a service boundary).
inline constexpr size_t kApplyBatch = 1024;
// A report keeps the first ops it planned, for logs and `ipvs plan`; the rest are counted.
inline constexpr size_t kPlannedKept = 1000;

struct SyncRequest {
  bool fullRead = false;  // read the whole kernel table first (start, resync, `ipvs sync`)
  bool dryRun = false;    // plan only
  // Asked between services during the full read: true stops the pass there, changing
  // nothing (a change is waiting; the periodic pass runs again after it).
  std::function<bool()> stopEarly;
};

struct SyncReport {
  std::vector<Op> planned;  // the first kPlannedKept ops planned
  size_t plannedTotal = 0;
  size_t applied = 0;
  std::vector<std::string> failures;   // one per failed op
  std::vector<std::string> conflicts;  // desired services that exist but are not ours
  size_t drainsFinished = 0;
  size_t flowsFlushed = 0;
  bool fullRead = false;
  bool gaveWay = false;  // the full read stopped early (SyncRequest::stopEarly): nothing planned
};

class Reconciler {
 public:
  Reconciler(ServiceTable& table, Ownership& ownership, const Clock& clock, ReconcilerOptions options,
             FlowFlusher* flusher = nullptr);

  [[nodiscard]] Result<SyncReport> sync(const DesiredState& desired, const SyncRequest& req);
  // Like sync, but plans only the services in `changed` (a source that knows what changed:
  // a file diff, a watch event). Cost follows the number of changes, not the table size.
  // Falls back to a full sync when the kernel must be read first.
  [[nodiscard]] Result<SyncReport> syncChanged(const DesiredState& desired, const std::vector<ServiceKey>& changed,
                                               bool dryRun);

  bool owns(const ServiceKey& k) const;
  const AppliedState& applied() const { return applied_; }
  size_t appliedEndpoints() const { return endpoints_; }  // destinations in applied()
  const std::map<DestRef, DrainEntry>& draining() const { return draining_; }
  // Services seen in the kernel at the last full read that the agent does not own.
  const std::set<ServiceKey>& foreign() const { return foreign_; }
  void setOptions(ReconcilerOptions o) { options_ = std::move(o); }
  bool needsFullRead() const { return needFullRead_; }

 private:
  [[nodiscard]] Result<SyncReport> syncImpl(const DesiredState& desired, const SyncRequest& req,
                                            const std::vector<ServiceKey>* changed);
  // Reads the kernel table one service at a time; entries equal to the desired ones share
  // them, so a full read does not hold a second copy of the table.
  // False when `stopEarly` stopped it: applied_ then holds what was read so far and is
  // otherwise as it was (nothing removed for not having been seen).
  [[nodiscard]] Result<bool> readKernel(const DesiredState& desired, const std::function<bool()>& stopEarly);
  // Records the ops that succeeded in applied_ (one copy per touched service; a service
  // that ends equal to its desired entry shares it) and their failures in `report`.
  void record(std::span<const Op> ops, std::span<const OpResult> results, const DesiredState* desired,
              SyncReport& report);
  // The ops of one planned service: ops[firstOp, lastOp).
  struct PlannedService {
    size_t firstOp = 0, lastOp = 0;
    ServicePtr want;                  // null: the service goes
    AppliedState::iterator applied;   // its entry in applied_, or end()
    bool drainStarted = false;        // some destinations stay at weight 0
  };
  // Like record, but a service whose planned ops all succeeded becomes its desired entry
  // (shared, no copy made).
  // (Services in `existed` were not applied: skipped.)
  void recordPlanned(std::span<const Op> ops, const std::vector<OpResult>& results,
                     std::span<const PlannedService> services, const DesiredState& desired,
                     const std::set<ServiceKey>& existed, SyncReport& report);
  // Sends the batch's service adds first, then the rest without the ops of any service
  // whose add met EEXIST (`existed`): someone else made it since the last full read, and
  // no destination of theirs may be touched. One result per op of `ops`.
  [[nodiscard]] Result<std::vector<OpResult>> applyNewServicesFirst(std::span<const Op> ops,
                                                                    std::set<ServiceKey>& existed);
  // A service in `existed` is a conflict (ownership record removed, reported, foreign),
  // unless owned_cidrs make it ours: then it is read and converged at the next pass.
  [[nodiscard]] Result<void> settleExisting(const std::set<ServiceKey>& existed, SyncReport& report);
  bool ownedByCidr(const ServiceKey& k) const;
  bool anyDraining(const ServiceKey& k) const;
  [[nodiscard]] Result<void> finishDrains(SyncReport& report, bool dryRun, const DesiredState& desired);

  ServiceTable& table_;
  Ownership& ownership_;
  const Clock& clock_;
  ReconcilerOptions options_;
  FlowFlusher* flusher_;
  AppliedState applied_;
  std::set<ServiceKey> foreign_;
  std::map<DestRef, DrainEntry> draining_;
  bool needFullRead_ = true;
  size_t endpoints_ = 0;
};

}  // namespace nodeagent::ipvs
