#include "ipvs/reconciler.h"

#include <sstream>

#include "common/files.h"
#include "common/log.h"

namespace nodeagent::ipvs {

Result<void> Ownership::load() {
  keys_.clear();
  if (!pathExists(path_)) return {};
  auto text = readFile(path_);
  if (!text) return fail(text.error());
  std::istringstream in(*text);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty() || line.front() == '#') continue;
    auto k = parseServiceKey(line);
    if (!k) return failInvalid(path_ + ":" + std::to_string(n) + ": " + k.error().message());
    keys_.insert(*k);
  }
  return {};
}

Result<void> Ownership::save() const {
  std::string out = "# IPVS services created by nodeagent; others are never touched.\n";
  for (const auto& k : keys_) out += k.toString() + "\n";
  return writeFileAtomic(path_, out, 0644);
}

Reconciler::Reconciler(ServiceTable& table, Ownership& ownership, const Clock& clock,
                       ReconcilerOptions options, FlowFlusher* flusher)
    : table_(table), ownership_(ownership), clock_(clock), options_(std::move(options)), flusher_(flusher) {}

bool Reconciler::owns(const ServiceKey& k) const {
  if (ownership_.contains(k)) return true;
  if (k.fwmark != 0) return false;
  for (const auto& c : options_.ownedCidrs)
    if (c.contains(k.address)) return true;
  return false;
}

void Reconciler::readKernel(const std::vector<ServiceState>& kernel) {
  applied_.clear();
  foreign_.clear();
  for (const auto& s : kernel) {
    if (!owns(s.service.key)) {
      foreign_.insert(s.service.key);
      continue;
    }
    AppliedService a{s.service, {}};
    for (const auto& d : s.dests) a.dests.emplace(d.dest.key, d.dest);
    applied_.emplace(s.service.key, std::move(a));
  }
  // Drains of destinations that vanished are over; weight-0 leftovers are picked up by
  // the planner (not desired, found at weight 0: drained, then deleted).
  std::erase_if(draining_, [&](const auto& e) {
    auto it = applied_.find(e.first.first);
    return it == applied_.end() || !it->second.dests.contains(e.first.second);
  });
}

void Reconciler::record(const Op& op) {
  using T = Op::Type;
  const ServiceKey& k = op.service.key;
  switch (op.type) {
    case T::kAddService:
    case T::kEditService: applied_[k].service = op.service; break;
    case T::kDelService: applied_.erase(k); break;
    case T::kAddDest:
    case T::kEditDest: applied_[k].dests[op.dest.key] = op.dest; break;
    case T::kDelDest:
      if (auto it = applied_.find(k); it != applied_.end()) it->second.dests.erase(op.dest.key);
      break;
  }
}

Result<SyncReport> Reconciler::sync(const DesiredState& desired, const SyncRequest& req) {
  return syncImpl(desired, req, nullptr);
}

Result<SyncReport> Reconciler::syncChanged(const DesiredState& desired, const std::vector<ServiceKey>& changed,
                                           bool dryRun) {
  if (needFullRead_) return syncImpl(desired, SyncRequest{true, dryRun}, nullptr);
  return syncImpl(desired, SyncRequest{false, dryRun}, &changed);
}

Result<SyncReport> Reconciler::syncImpl(const DesiredState& desiredIn, const SyncRequest& req,
                                        const std::vector<ServiceKey>* changed) {
  SyncReport report;
  auto log = log::get("ipvs");
  if (req.fullRead || needFullRead_) {
    changed = nullptr;
    auto kernel = table_.list(true);
    if (!kernel) return fail(kernel.error());
    readKernel(*kernel);
    needFullRead_ = false;
    report.fullRead = true;
  }
  // Never take over a service someone else made: drop it from the desired set.
  DesiredState desired;
  AppliedState appliedSubset;
  auto take = [&](const ServiceKey& k, const DesiredService& s) {
    if (foreign_.contains(k) && !owns(k))
      report.conflicts.push_back(k.toString() + " exists and was not created by nodeagent: left alone");
    else
      desired.emplace(k, s);
  };
  if (changed) {
    for (const auto& k : *changed) {
      if (auto it = desiredIn.find(k); it != desiredIn.end()) take(k, it->second);
      if (auto it = applied_.find(k); it != applied_.end()) appliedSubset.emplace(k, it->second);
    }
  } else {
    for (const auto& [k, s] : desiredIn) take(k, s);
  }
  std::set<DestRef> drainingSet;
  for (const auto& [ref, e] : draining_) drainingSet.insert(ref);
  Plan plan = planChanges(desired, changed ? appliedSubset : applied_, drainingSet);
  report.planned = plan.ops;
  if (req.dryRun) return report;

  // Record intent before creating, so a crash right after cannot leave an unowned service.
  bool ownershipChanged = false;
  for (const auto& op : plan.ops)
    if (op.type == Op::Type::kAddService) ownershipChanged |= ownership_.insert(op.service.key);
  if (ownershipChanged) {
    if (auto r = ownership_.save(); !r) return fail(r.error().wrap("record IPVS ownership"));
  }
  if (!plan.ops.empty()) {
    auto results = table_.apply(plan.ops);
    if (!results) {
      needFullRead_ = true;
      return fail(results.error());
    }
    for (size_t i = 0; i < plan.ops.size(); ++i) {
      const auto& r = (*results)[i];
      if (r.ok()) {
        record(plan.ops[i]);
        ++report.applied;
        log->debug("{}", plan.ops[i].toString());
      } else {
        report.failures.push_back(r.message);
        needFullRead_ = true;  // the kernel differs from what we think: look again next pass
      }
    }
  }
  auto now = clock_.now();
  for (const auto& ref : plan.stopDrain) draining_.erase(ref);
  for (const auto& ref : plan.startDrain)
    draining_.emplace(ref, DrainEntry{now + options_.drainTimeout});
  ownershipChanged = false;
  for (const auto& op : plan.ops) {
    if (op.type == Op::Type::kDelService && !applied_.contains(op.service.key))
      ownershipChanged |= ownership_.erase(op.service.key);
  }
  if (ownershipChanged) {
    if (auto r = ownership_.save(); !r) return fail(r.error().wrap("record IPVS ownership"));
  }
  if (flusher_) {
    for (const auto& ref : plan.flushBackend) {
      if (auto n = flusher_->flushBackend(ref.second))
        report.flowsFlushed += *n;
      else
        report.failures.push_back("flush UDP flows to " + ref.second.toString() + ": " + n.error().message());
    }
    for (const auto& k : plan.flushService) {
      if (auto n = flusher_->flushService(k))
        report.flowsFlushed += *n;
      else
        report.failures.push_back("flush UDP flows to " + k.toString() + ": " + n.error().message());
    }
  }
  if (auto r = finishDrains(report, req.dryRun); !r) return fail(r.error());
  return report;
}

Result<void> Reconciler::finishDrains(SyncReport& report, bool dryRun) {
  if (draining_.empty() || dryRun) return {};
  // Only the services with draining destinations are read: cost follows the drains.
  std::map<DestRef, uint64_t> conns;
  std::set<ServiceKey> services;
  for (const auto& [ref, e] : draining_) services.insert(ref.first);
  for (const auto& k : services) {
    auto dests = table_.listDests(k);
    if (!dests) {
      int e = dests.error().errnoValue();
      if (e == ESRCH || e == ENOENT) continue;  // service gone: its drains are over
      return fail(dests.error());
    }
    for (const auto& d : *dests) conns[{k, d.dest.key}] = uint64_t(d.activeConns) + d.inactiveConns;
  }
  std::vector<DestRef> finished;
  auto ops = ipvs::finishDrains(draining_, conns, clock_.now(), finished);
  if (!ops.empty()) {
    auto results = table_.apply(ops);
    if (!results) return fail(results.error());
    for (size_t i = 0; i < ops.size(); ++i) {
      if ((*results)[i].ok()) {
        log::get("ipvs")->info("drain of {} {} over: {}", ops[i].service.key.toString(), ops[i].dest.key.toString(),
                               ops[i].toString());
        record(ops[i]);
        report.planned.push_back(ops[i]);
        ++report.applied;
      } else {
        report.failures.push_back((*results)[i].message);
      }
    }
  }
  for (const auto& ref : finished) draining_.erase(ref);
  report.drainsFinished += finished.size();
  return {};
}

}  // namespace nodeagent::ipvs
