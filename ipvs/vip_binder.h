// VipBinder: the service VIPs bound on the node, as the IPVS module sees them. VipManager
// (rtnetlink, addresses on a dummy interface) is the real one; tests use a fake.
#pragma once

#include <set>
#include <span>
#include <utility>

#include "common/result.h"
#include "ipvs/types.h"

namespace nodeagent::ipvs {

class VipBinder {
 public:
  virtual ~VipBinder() = default;
  // Makes the node hold exactly `vips`. Reads what is bound when `fullRead` (start,
  // resync); otherwise sends only the difference from the last sync.
  [[nodiscard]] virtual Result<void> sync(const std::set<Address>& vips, bool fullRead) = 0;
  // Binds (true) or unbinds (false) just these addresses: cost follows the changes.
  [[nodiscard]] virtual Result<void> update(std::span<const std::pair<Address, bool>> changes) = 0;
  // Removes every VIP and what holds them, when the agent made it (the proxy is switched off).
  [[nodiscard]] virtual Result<void> remove() = 0;
};

}  // namespace nodeagent::ipvs
