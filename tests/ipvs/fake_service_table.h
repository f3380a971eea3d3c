// FakeServiceTable: an in-memory IPVS table with the kernel's add/delete semantics, and
// counters of what was asked of it.
#pragma once

#include <cerrno>
#include <map>

#include "ipvs/netlink_service_table.h"
#include "ipvs/service_table.h"

namespace nodeagent::ipvs {

class FakeServiceTable final : public ServiceTable {
 public:
  struct Entry {
    Service service;
    std::map<DestKey, DestinationState> dests;
  };
  std::map<ServiceKey, Entry> table;
  std::vector<Op> log;  // every op applied, in order
  size_t lists = 0, destLists = 0, applies = 0;

  Result<std::vector<ServiceState>> list(bool withDests) override {
    ++lists;
    std::vector<ServiceState> out;
    for (const auto& [k, e] : table) {
      ServiceState s{e.service, {}, {}};
      if (withDests)
        for (const auto& [dk, d] : e.dests) s.dests.push_back(d);
      out.push_back(std::move(s));
    }
    return out;
  }
  Result<std::vector<DestinationState>> listDests(const ServiceKey& key) override {
    ++destLists;
    auto it = table.find(key);
    if (it == table.end()) return failErrno(ESRCH, "no service");
    std::vector<DestinationState> out;
    for (const auto& [dk, d] : it->second.dests) out.push_back(d);
    return out;
  }
  Result<std::vector<OpResult>> apply(std::span<const Op> ops) override {
    ++applies;
    std::vector<OpResult> out;
    for (const auto& op : ops) {
      log.push_back(op);
      out.push_back(opResultFor(op, applyOne(op), ""));
    }
    return out;
  }
  Result<Timeouts> timeouts() override { return timeouts_; }
  Result<void> setTimeouts(const Timeouts& t) override {
    timeouts_ = t;
    return {};
  }
  size_t count(Op::Type t) const {
    size_t n = 0;
    for (const auto& op : log) n += op.type == t;
    return n;
  }

 private:
  int applyOne(const Op& op) {
    using T = Op::Type;
    auto it = table.find(op.service.key);
    switch (op.type) {
      case T::kAddService:
        if (it != table.end()) return EEXIST;
        table[op.service.key] = Entry{op.service, {}};
        return 0;
      case T::kEditService:
        if (it == table.end()) return ESRCH;
        it->second.service = op.service;
        return 0;
      case T::kDelService:
        if (it == table.end()) return ESRCH;
        table.erase(it);
        return 0;
      default: break;
    }
    if (it == table.end()) return ESRCH;
    auto& dests = it->second.dests;
    auto d = dests.find(op.dest.key);
    switch (op.type) {
      case T::kAddDest:
        if (d != dests.end()) return EEXIST;
        dests[op.dest.key] = DestinationState{op.dest};
        return 0;
      case T::kEditDest:
        if (d == dests.end()) return ENOENT;
        d->second.dest = op.dest;
        return 0;
      case T::kDelDest:
        if (d == dests.end()) return ENOENT;
        dests.erase(d);
        return 0;
      default: return EINVAL;
    }
  }
  Timeouts timeouts_;
};

}  // namespace nodeagent::ipvs
