// VipManager: binds service VIPs as /32 (/128) addresses on a dummy interface the agent
// creates (default nodeagent-ipvs0), over rtnetlink through NetlinkSocket (builders and
// checked parsers in ipvs/rtnl_messages.h). The interface's
// creation is recorded in the state directory; an interface of that name that the agent
// did not create is never touched.
#pragma once

#include <memory>
#include <set>
#include <span>
#include <string>
#include <utility>

#include "common/netlink_socket.h"
#include "common/result.h"
#include "ipvs/types.h"
#include "ipvs/vip_binder.h"

namespace nodeagent::ipvs {

class VipManager final : public VipBinder {
 public:
  VipManager(std::string ifname, std::string stateFile) : ifname_(std::move(ifname)), stateFile_(std::move(stateFile)) {}
  VipManager(const VipManager&) = delete;
  VipManager& operator=(const VipManager&) = delete;

  // Makes the interface hold exactly `vips`. Reads the kernel's addresses when `fullRead`
  // (start, resync); otherwise sends only the difference from the last sync.
  [[nodiscard]] Result<void> sync(const std::set<Address>& vips, bool fullRead) override;
  // Binds (true) or unbinds (false) just these addresses: cost follows the changes.
  [[nodiscard]] Result<void> update(std::span<const std::pair<Address, bool>> changes) override;
  // Removes the interface when the agent created it (module disabled, all services gone).
  [[nodiscard]] Result<void> remove() override;
  const std::set<Address>& bound() const { return bound_; }
  int ifindex() const { return ifindex_; }

 private:
  [[nodiscard]] Result<void> ensureSocket();
  [[nodiscard]] Result<void> ensureInterface();
  [[nodiscard]] Result<void> readAddresses();
  [[nodiscard]] Result<void> changeAddress(const Address& a, bool add);
  // The link called ifname_, or ENODEV.
  struct Link {
    int ifindex = 0;
    std::string kind;
  };
  [[nodiscard]] Result<Link> findLink();
  // One request and its ACK; the kernel's errno is kept.
  [[nodiscard]] Result<void> request(std::vector<uint8_t> msg, const std::string& what);

  std::string ifname_;
  std::string stateFile_;
  std::unique_ptr<NetlinkSocket> sock_;
  int ifindex_ = 0;  // cached; 0 = look up again
  std::set<Address> bound_;
};

}  // namespace nodeagent::ipvs
