#include "ipvs/reconciler.h"

#include <algorithm>
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

bool Reconciler::owns(const ServiceKey& k) const { return ownership_.contains(k) || ownedByCidr(k); }

bool Reconciler::ownedByCidr(const ServiceKey& k) const {
  if (k.fwmark != 0) return false;
  for (const auto& c : options_.ownedCidrs)
    if (c.contains(k.address)) return true;
  return false;
}

Result<bool> Reconciler::readKernel(const DesiredState& desired, const std::function<bool()>& stopEarly) {
  // Merged into applied_ in place: entries that match the kernel stay as they are, so a
  // periodic resync of a large table allocates (and scatters in the heap) nothing.
  std::set<ServiceKey> foreign;
  std::vector<ServiceKey> seen;
  std::vector<Destination> dests;
  bool stopped = false;
  auto r = table_.forEach(true, [&](ServiceState&& s) -> Result<void> {
    if (stopEarly && stopEarly()) {
      stopped = true;
      return failErrno(ECANCELED, "full read stopped for a waiting change");
    }
    const ServiceKey& k = s.service.key;
    if (!owns(k)) {
      foreign.insert(k);
      return {};
    }
    seen.push_back(k);
    dests.clear();
    for (const auto& d : s.dests) dests.push_back(d.dest);
    std::sort(dests.begin(), dests.end(), [](const Destination& a, const Destination& b) { return a.key < b.key; });
    auto matches = [&](const DesiredService& e) {
      return e.service == s.service && std::equal(dests.begin(), dests.end(), e.dests.begin(), e.dests.end());
    };
    auto have = applied_.find(k);
    if (have != applied_.end() && matches(*have->second)) return {};
    ServicePtr entry;
    if (auto want = desired.find(k); want != desired.end() && matches(*want->second)) {
      entry = want->second;
    } else {
      auto a = std::make_shared<DesiredService>();
      a->service = s.service;
      a->dests = Dests(dests);
      entry = std::move(a);
    }
    if (have != applied_.end()) {
      endpoints_ += entry->dests.size() - have->second->dests.size();
      have->second = std::move(entry);
    } else {
      endpoints_ += entry->dests.size();
      applied_.emplace(k, std::move(entry));
    }
    return {};
  });
  if (stopped) return false;
  if (!r) return fail(r.error());
  std::sort(seen.begin(), seen.end());
  std::erase_if(applied_, [&](const auto& e) {
    if (std::binary_search(seen.begin(), seen.end(), e.first)) return false;
    endpoints_ -= e.second->dests.size();
    return true;
  });
  foreign_ = std::move(foreign);
  // Drains of destinations that vanished are over; weight-0 leftovers are picked up by
  // the planner (not desired, found at weight 0: drained, then deleted).
  std::erase_if(draining_, [&](const auto& e) {
    auto it = applied_.find(e.first.first);
    return it == applied_.end() || !it->second->dests.contains(e.first.second);
  });
  return true;
}

bool Reconciler::anyDraining(const ServiceKey& k) const {
  auto it = draining_.lower_bound(DestRef{k, DestKey{}});
  return it != draining_.end() && it->first.first == k;
}

Result<std::vector<OpResult>> Reconciler::applyNewServicesFirst(std::span<const Op> ops,
                                                                std::set<ServiceKey>& existed) {
  std::vector<Op> adds;
  for (const auto& op : ops)
    if (op.type == Op::Type::kAddService) adds.push_back(op);
  if (adds.empty()) return table_.apply(ops);
  auto added = table_.apply(adds);
  if (!added) return added;
  for (size_t i = 0; i < adds.size(); ++i)
    if ((*added)[i].error == EEXIST) existed.insert(adds[i].service.key);
  std::vector<Op> rest;
  for (const auto& op : ops)
    if (op.type != Op::Type::kAddService && !existed.contains(op.service.key)) rest.push_back(op);
  Result<std::vector<OpResult>> restResults = std::vector<OpResult>{};
  if (!rest.empty()) restResults = table_.apply(rest);
  if (!restResults) return restResults;
  std::vector<OpResult> out;
  out.reserve(ops.size());
  size_t a = 0, r = 0;
  for (const auto& op : ops) {
    if (op.type == Op::Type::kAddService)
      out.push_back((*added)[a++]);
    else if (existed.contains(op.service.key))
      out.push_back(OpResult{EEXIST, op.toString() + ": not sent, the service was not created by nodeagent"});
    else
      out.push_back((*restResults)[r++]);
  }
  return out;
}

Result<void> Reconciler::settleExisting(const std::set<ServiceKey>& existed, SyncReport& report) {
  bool ownershipChanged = false;
  for (const auto& k : existed) {
    if (ownedByCidr(k)) {
      // Ours by configuration whoever made it: read it at the next pass and converge.
      log::get("ipvs")->info("{} already exists inside owned_cidrs: adopted at the next full read", k.toString());
      needFullRead_ = true;
      continue;
    }
    ownershipChanged |= ownership_.erase(k);
    foreign_.insert(k);
    report.conflicts.push_back(k.toString() + " appeared in the kernel before nodeagent added it: not created by "
                               "nodeagent, left alone");
  }
  if (ownershipChanged)
    if (auto r = ownership_.save(); !r) return fail(r.error().wrap("record IPVS ownership"));
  return {};
}

void Reconciler::recordPlanned(std::span<const Op> ops, const std::vector<OpResult>& results,
                               std::span<const PlannedService> services, const DesiredState& desired,
                               const std::set<ServiceKey>& existed, SyncReport& report) {
  auto log = log::get("ipvs");
  bool debug = log->should_log(spdlog::level::debug);
  for (const auto& ps : services) {
    size_t n = ps.lastOp - ps.firstOp;
    if (!existed.empty() && existed.contains(ops[ps.firstOp].service.key)) continue;  // not ours: nothing applied
    bool allOk = true;
    for (size_t i = ps.firstOp; i < ps.lastOp && allOk; ++i) allOk = results[i].ok();
    if (!allOk || ps.drainStarted) {
      // Partly applied, or drained destinations stay at weight 0: record op by op.
      record(ops.subspan(ps.firstOp, n), std::span(results).subspan(ps.firstOp, n), &desired, report);
      continue;
    }
    // Everything planned for the service went through: it now is the desired entry.
    report.applied += n;
    if (debug)
      for (size_t i = ps.firstOp; i < ps.lastOp; ++i) log->debug("{}", ops[i].toString());
    const ServiceKey& k = ops[ps.firstOp].service.key;
    if (ps.applied != applied_.end()) endpoints_ -= ps.applied->second->dests.size();
    if (ps.want) endpoints_ += ps.want->dests.size();
    if (ps.applied != applied_.end() && ps.want)
      ps.applied->second = ps.want;
    else if (ps.applied != applied_.end())
      applied_.erase(ps.applied);
    else if (ps.want)
      applied_.emplace(k, ps.want);
  }
}

void Reconciler::record(std::span<const Op> ops, std::span<const OpResult> results, const DesiredState* desired,
                        SyncReport& report) {
  using T = Op::Type;
  // Ops of one service are contiguous in a plan: copy its entry once, apply them all, then
  // store it (or the desired entry, when they now agree).
  auto log = log::get("ipvs");
  bool debug = log->should_log(spdlog::level::debug);
  std::shared_ptr<DesiredService> work;
  const ServiceKey* cur = nullptr;
  bool touched = false;
  auto flush = [&] {
    if (!cur || !touched) return;
    if (!work) {
      if (auto it = applied_.find(*cur); it != applied_.end()) {
        endpoints_ -= it->second->dests.size();
        applied_.erase(it);
      }
    } else {
      ServicePtr keep = work;
      if (desired)
        if (auto it = desired->find(*cur); it != desired->end() && sameIpvs(*it->second, *work)) keep = it->second;
      endpoints_ += keep->dests.size();
      auto [it, inserted] = applied_.try_emplace(*cur, keep);
      if (!inserted) {
        endpoints_ -= it->second->dests.size();
        it->second = std::move(keep);
      }
    }
    work.reset();
    touched = false;
  };
  for (size_t i = 0; i < ops.size(); ++i) {
    const Op& op = ops[i];
    const ServiceKey& k = op.service.key;
    if (!cur || !(*cur == k)) {
      flush();
      cur = &k;
      auto it = applied_.find(k);
      if (it != applied_.end()) work = std::make_shared<DesiredService>(*it->second);
    }
    if (!results[i].ok()) {
      report.failures.push_back(results[i].message);
      needFullRead_ = true;  // the kernel differs from what we think: look again next pass
      continue;
    }
    ++report.applied;
    if (debug) log->debug("{}", op.toString());
    touched = true;
    if (!work && op.type != T::kDelService) work = std::make_shared<DesiredService>();
    switch (op.type) {
      case T::kAddService:
      case T::kEditService: work->service = op.service; break;
      case T::kDelService: work.reset(); break;
      case T::kAddDest:
      case T::kEditDest: work->dests.put(op.dest); break;
      case T::kDelDest: work->dests.erase(op.dest.key); break;
    }
  }
  flush();
}

Result<SyncReport> Reconciler::sync(const DesiredState& desired, const SyncRequest& req) {
  return syncImpl(desired, req, nullptr);
}

Result<SyncReport> Reconciler::syncChanged(const DesiredState& desired, const std::vector<ServiceKey>& changed,
                                           bool dryRun) {
  if (needFullRead_) return syncImpl(desired, SyncRequest{true, dryRun}, nullptr);
  return syncImpl(desired, SyncRequest{false, dryRun}, &changed);
}

Result<SyncReport> Reconciler::syncImpl(const DesiredState& desired, const SyncRequest& req,
                                        const std::vector<ServiceKey>* changed) {
  SyncReport report;
  if (req.fullRead || needFullRead_) {
    changed = nullptr;
    auto read = readKernel(desired, needFullRead_ ? nullptr : req.stopEarly);
    if (!read) return fail(read.error());
    if (!*read) {
      report.gaveWay = true;
      return report;
    }
    needFullRead_ = false;
    report.fullRead = true;
  }
  // Entries are recorded through iterators kept from the walk: no rehash during the pass
  // (it only inserts services it visits).
  size_t need = applied_.size() + (changed ? changed->size() : desired.size());
  if (need > applied_.bucket_count() * applied_.max_load_factor()) applied_.reserve(need);
  IsDraining isDraining = [&](const DestRef& r) { return !draining_.empty() && draining_.contains(r); };
  // Walks the services to consider: only the changed ones, or all of desired and applied.
  auto walk = [&](const auto& visit) {
    if (changed) {
      for (const auto& k : *changed) {
        auto w = desired.find(k);
        auto h = applied_.find(k);
        visit(k, w != desired.end() ? &w->second : nullptr, h != applied_.end() ? &h->second : nullptr, h);
      }
      return;
    }
    // Desired services in key order, then the applied ones that are not desired (sorted).
    // Iterators move on before a visit: applying a batch may erase the visited entry.
    for (auto a = desired.begin(); a != desired.end();) {
      auto w = a++;
      auto h = applied_.find(w->first);
      visit(w->first, &w->second, h != applied_.end() ? &h->second : nullptr, h);
    }
    std::vector<ServiceKey> gone;
    for (const auto& [k, have] : applied_)
      if (!desired.contains(k)) gone.push_back(k);
    std::sort(gone.begin(), gone.end());
    for (const auto& k : gone) {
      auto h = applied_.find(k);
      visit(k, nullptr, &h->second, h);
    }
  };
  // Never take over a service someone else made: it is not planned.
  auto foreignClash = [&](const ServiceKey& k, const ServicePtr* want, const ServicePtr* have) {
    return want && !have && foreign_.contains(k) && !owns(k);
  };

  // Record intent before creating, so a crash right after cannot leave an unowned service.
  // A full walk records all its new services up front (one save, not one per batch);
  // each batch checks its own adds too.
  if (!req.dryRun && !changed) {
    bool ownershipChanged = false;
    walk([&](const ServiceKey& k, const ServicePtr* want, const ServicePtr* have, AppliedState::iterator) {
      if (want && !have && !foreignClash(k, want, have)) ownershipChanged |= ownership_.insert(k);
    });
    if (ownershipChanged) {
      if (auto r = ownership_.save(); !r) return fail(r.error().wrap("record IPVS ownership"));
    }
  }

  // Plan service by service and send the ops in batches: a large first sync never holds
  // its whole plan (110,000 ops of 10,000 x 10 would take tens of MB).
  Plan plan;
  std::vector<PlannedService> planned;  // the services in `plan`, with their ops
  std::vector<ServiceKey> deleted;
  std::vector<DestKey> flushBackends;     // collected over the pass, flushed once at its end
  std::vector<ServiceKey> flushServices;
  auto apply = [&]() -> Result<void> {
    report.plannedTotal += plan.ops.size();
    for (const auto& op : plan.ops) {
      if (report.planned.size() < kPlannedKept) report.planned.push_back(op);
      if (op.type == Op::Type::kDelService) deleted.push_back(op.service.key);
    }
    if (req.dryRun) {
      plan = Plan{};
      planned.clear();
      return {};
    }
    if (!plan.ops.empty()) {
      bool ownershipChanged = false;
      for (const auto& op : plan.ops)
        if (op.type == Op::Type::kAddService) ownershipChanged |= ownership_.insert(op.service.key);
      if (ownershipChanged) {
        if (auto r = ownership_.save(); !r) return fail(r.error().wrap("record IPVS ownership"));
      }
      std::set<ServiceKey> existed;
      auto results = applyNewServicesFirst(plan.ops, existed);
      if (!results) {
        needFullRead_ = true;
        return fail(results.error());
      }
      recordPlanned(plan.ops, *results, planned, desired, existed, report);
      if (auto r = settleExisting(existed, report); !r) return r;
    }
    auto now = clock_.now();
    for (const auto& ref : plan.stopDrain) draining_.erase(ref);
    for (const auto& ref : plan.startDrain) draining_.emplace(ref, DrainEntry{now + options_.drainTimeout});
    for (const auto& ref : plan.flushBackend) flushBackends.push_back(ref.second);
    flushServices.insert(flushServices.end(), plan.flushService.begin(), plan.flushService.end());
    plan = Plan{};
    planned.clear();
    return {};
  };
  std::optional<Error> error;
  walk([&](const ServiceKey& k, const ServicePtr* want, const ServicePtr* have, AppliedState::iterator at) {
    if (error) return;
    if (foreignClash(k, want, have)) {
      report.conflicts.push_back(k.toString() + " exists and was not created by nodeagent: left alone");
      return;
    }
    // Shared entries are equal by construction (drains aside): nothing to plan.
    if (want && have && *want == *have && !anyDraining(k)) return;
    size_t firstOp = plan.ops.size(), drains = plan.startDrain.size();
    planService(k, want ? want->get() : nullptr, have ? have->get() : nullptr, isDraining, plan);
    if (plan.ops.size() > firstOp)
      planned.push_back({firstOp, plan.ops.size(), want ? *want : nullptr, at, plan.startDrain.size() > drains});
    if (plan.ops.size() >= kApplyBatch)
      if (auto r = apply(); !r) error = r.error();
  });
  if (error) return fail(*error);
  if (auto r = apply(); !r) return fail(r.error());
  if (req.dryRun) return report;
  if (flusher_ && (!flushBackends.empty() || !flushServices.empty())) {
    if (auto n = flusher_->flush(flushBackends, flushServices))
      report.flowsFlushed += *n;
    else
      report.failures.push_back("flush UDP flows of " + std::to_string(flushBackends.size()) + " backends and " +
                                std::to_string(flushServices.size()) + " services: " + n.error().message());
  }

  bool ownershipChanged = false;
  for (const auto& k : deleted)
    if (!applied_.contains(k)) ownershipChanged |= ownership_.erase(k);
  if (ownershipChanged) {
    if (auto r = ownership_.save(); !r) return fail(r.error().wrap("record IPVS ownership"));
  }
  if (auto r = finishDrains(report, req.dryRun, desired); !r) return fail(r.error());
  return report;
}

Result<void> Reconciler::finishDrains(SyncReport& report, bool dryRun, const DesiredState& desired) {
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
        if (report.planned.size() < kPlannedKept) report.planned.push_back(ops[i]);
        ++report.plannedTotal;
      }
    }
    record(ops, *results, &desired, report);
  }
  for (const auto& ref : finished) draining_.erase(ref);
  report.drainsFinished += finished.size();
  return {};
}

}  // namespace nodeagent::ipvs
