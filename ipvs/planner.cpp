#include "ipvs/planner.h"

#include <algorithm>
#include <cstring>

namespace nodeagent::ipvs {

namespace {
bool byKey(const Destination& a, const Destination& b) { return a.key < b.key; }
}  // namespace

Dests::Dests(std::vector<Destination> v) : v_(std::move(v)) {
  std::stable_sort(v_.begin(), v_.end(), byKey);
  v_.erase(std::unique(v_.begin(), v_.end(), [](const Destination& a, const Destination& b) { return a.key == b.key; }),
           v_.end());
  v_.shrink_to_fit();
}

const Destination* Dests::find(const DestKey& k) const {
  auto it = std::lower_bound(v_.begin(), v_.end(), k, [](const Destination& d, const DestKey& key) { return d.key < key; });
  return it != v_.end() && it->key == k ? &*it : nullptr;
}

Destination* Dests::find(const DestKey& k) { return const_cast<Destination*>(std::as_const(*this).find(k)); }

bool Dests::insert(const Destination& d) {
  auto it = std::lower_bound(v_.begin(), v_.end(), d, byKey);
  if (it != v_.end() && it->key == d.key) return false;
  v_.insert(it, d);
  return true;
}

void Dests::put(const Destination& d) {
  if (auto* have = find(d.key)) *have = d;
  else insert(d);
}

bool Dests::erase(const DestKey& k) {
  auto* d = find(k);
  if (!d) return false;
  v_.erase(v_.begin() + (d - v_.data()));
  return true;
}

bool sameIpvs(const DesiredService& a, const DesiredService& b) {
  return &a == &b || (a.service == b.service && a.dests == b.dests);
}

void planService(const ServiceKey& key, const DesiredService* want, const DesiredService* have,
                 const IsDraining& draining, Plan& p) {
  using T = Op::Type;
  if (!have) {
    if (!want) return;
    p.ops.push_back({T::kAddService, want->service, {}});
    for (const auto& d : want->dests) p.ops.push_back({T::kAddDest, want->service, d});
    return;
  }
  if (!want) {
    p.ops.push_back({T::kDelService, have->service, {}});
    for (const auto& d : have->dests)
      if (draining({key, d.key})) p.stopDrain.push_back({key, d.key});
    if (key.fwmark == 0 && key.protocol == Protocol::kUdp) p.flushService.push_back(key);
    return;
  }
  if (!(have->service == want->service)) p.ops.push_back({T::kEditService, want->service, {}});
  for (const auto& d : want->dests) {
    const Destination* hd = have->dests.find(d.key);
    if (!hd) {
      p.ops.push_back({T::kAddDest, want->service, d});
    } else if (!(*hd == d)) {
      p.ops.push_back({T::kEditDest, want->service, d});
    }
    DestRef ref{key, d.key};
    if (draining(ref)) p.stopDrain.push_back(ref);
  }
  for (const auto& d : have->dests) {
    if (want->dests.contains(d.key)) continue;
    DestRef ref{key, d.key};
    if (key.fwmark == 0 && key.protocol == Protocol::kUdp) {
      // UDP has no connection end to wait for: delete now and flush its flows.
      p.ops.push_back({T::kDelDest, want->service, d});
      p.flushBackend.push_back(ref);
      if (draining(ref)) p.stopDrain.push_back(ref);
      continue;
    }
    if (draining(ref)) continue;
    if (d.weight != 0) {
      Destination zero = d;
      zero.weight = 0;
      p.ops.push_back({T::kEditDest, want->service, zero});
    }
    p.startDrain.push_back(ref);
  }
}

size_t ServiceKeyHash::operator()(const ServiceKey& k) const {
  uint64_t a, b;
  std::memcpy(&a, k.address.bytes.data(), 8);
  std::memcpy(&b, k.address.bytes.data() + 8, 8);
  uint64_t h = (uint64_t(k.family) << 48) ^ (uint64_t(k.protocol) << 32) ^ (uint64_t(k.port) << 16) ^ k.fwmark;
  for (uint64_t w : {a, b}) {  // multiply-xorshift mixing
    h = (h ^ w) * 0x9e3779b97f4a7c15ull;
    h ^= h >> 29;
  }
  return static_cast<size_t>(h);
}

Plan planChanges(const DesiredState& desired, const AppliedState& applied, const std::set<DestRef>& draining) {
  Plan p;
  IsDraining isDraining = [&](const DestRef& r) { return !draining.empty() && draining.contains(r); };
  for (const auto& [k, want] : desired) {
    auto have = applied.find(k);
    planService(k, want.get(), have != applied.end() ? have->second.get() : nullptr, isDraining, p);
  }
  std::vector<ServiceKey> gone;
  for (const auto& [k, have] : applied)
    if (!desired.contains(k)) gone.push_back(k);
  std::sort(gone.begin(), gone.end());
  for (const auto& k : gone) planService(k, nullptr, applied.at(k).get(), isDraining, p);
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
