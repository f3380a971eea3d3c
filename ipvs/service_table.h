// ServiceTable: the IPVS table as the reconciler sees it. NetlinkServiceTable talks to the
// kernel; FakeServiceTable (tests) keeps a map. Operations go out as one batch.
#pragma once

#include <functional>
#include <span>
#include <string>
#include <vector>

#include "common/netlink_socket.h"
#include "common/result.h"
#include "ipvs/types.h"

namespace nodeagent::ipvs {

struct Op {
  enum class Type { kAddService, kEditService, kDelService, kAddDest, kEditDest, kDelDest };
  Type type = Type::kAddService;
  Service service;   // for dest ops only service.key is used
  Destination dest;  // dest ops; kDelDest uses dest.key only
  // The equivalent ipvsadm command line, for logs and `ipvs plan`.
  std::string toString() const;
  bool operator==(const Op&) const = default;
};

// The kernel's verdict on one op: its netlink ACK. "Already there" on a destination add
// and "already gone" on delete are reported as success: the table is as asked. A service
// add that finds the service there reports EEXIST (the reconciler decides whose it is).
using OpResult = NetlinkAck;

class ServiceTable {
 public:
  virtual ~ServiceTable() = default;
  // Every service in the kernel, with destinations when `withDests`.
  [[nodiscard]] virtual Result<std::vector<ServiceState>> list(bool withDests) = 0;
  // Every service in the kernel, one at a time (with destinations when `withDests`), so a
  // reader of a large table never holds all of it. An error from `fn` stops the walk.
  [[nodiscard]] virtual Result<void> forEach(bool withDests, const std::function<Result<void>(ServiceState&&)>& fn) {
    auto all = list(withDests);
    if (!all) return fail(all.error());
    for (auto& s : *all)
      if (auto r = fn(std::move(s)); !r) return r;
    return {};
  }
  [[nodiscard]] virtual Result<std::vector<DestinationState>> listDests(const ServiceKey& key) = 0;
  // Applies `ops` in order as one batch; one result per op.
  [[nodiscard]] virtual Result<std::vector<OpResult>> apply(std::span<const Op> ops) = 0;
  [[nodiscard]] virtual Result<Timeouts> timeouts() = 0;
  [[nodiscard]] virtual Result<void> setTimeouts(const Timeouts& t) = 0;
};

}  // namespace nodeagent::ipvs
