// NetlinkServiceTable: ServiceTable over one persistent IPVS generic netlink socket.
#pragma once

#include <memory>

#include "common/netlink_socket.h"
#include "ipvs/service_table.h"

namespace nodeagent::ipvs {

class NetlinkServiceTable final : public ServiceTable {
 public:
  // Resolves the "IPVS" generic netlink family (fails with a clear error when the kernel
  // has no IPVS) and opens the socket.
  [[nodiscard]] static Result<std::unique_ptr<NetlinkServiceTable>> open(size_t maxBatch = 256);

  Result<std::vector<ServiceState>> list(bool withDests) override;
  // Dumps the services (without destinations), then each service's destinations in turn.
  Result<void> forEach(bool withDests, const std::function<Result<void>(ServiceState&&)>& fn) override;
  Result<std::vector<DestinationState>> listDests(const ServiceKey& key) override;
  Result<std::vector<OpResult>> apply(std::span<const Op> ops) override;
  Result<Timeouts> timeouts() override;
  Result<void> setTimeouts(const Timeouts& t) override;
  uint16_t familyId() const { return family_; }

 private:
  NetlinkServiceTable(NetlinkSocket sock, uint16_t family) : sock_(std::move(sock)), family_(family) {}
  NetlinkSocket sock_;
  uint16_t family_;
};

// Maps a kernel errno for an op to the op's result: EEXIST on a destination add and
// ENOENT/ESRCH on delete are success; others (EEXIST on a service add too: the service may
// be someone else's) become a message naming the op.
OpResult opResultFor(const Op& op, int error, const std::string& kernelMessage);

}  // namespace nodeagent::ipvs
