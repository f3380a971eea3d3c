// NetlinkSocket: one persistent netlink socket for request/ACK batches and dumps. Messages
// are built elsewhere (pure functions); this class only stamps sequence numbers, sends in
// chunks the receive buffer can acknowledge, matches each reply to its request by sequence
// number and decodes extended ACKs (NLMSGERR_ATTR_MSG) into readable errors.
#pragma once

#include <linux/netlink.h>

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "common/fd.h"
#include "common/result.h"

namespace nodeagent {

// The kernel's answer to one request of a batch: 0 or a positive errno, plus the extended
// ACK message when the kernel gave one.
struct NetlinkAck {
  int error = 0;
  std::string message;
};

class NetlinkSocket {
 public:
  // Opens and binds a socket of `protocol` (NETLINK_GENERIC, NETLINK_ROUTE, ...) with
  // extended and capped ACKs and a receive buffer large enough for `maxBatch` ACKs.
  [[nodiscard]] static Result<NetlinkSocket> open(int protocol, size_t maxBatch = 256);

  NetlinkSocket(NetlinkSocket&&) = default;
  NetlinkSocket& operator=(NetlinkSocket&&) = default;

  // Sends every message (each a complete nlmsghdr; its seq and pid fields are overwritten
  // and NLM_F_ACK is set) and returns one ack per message, in order. Messages go out
  // `maxBatch` at a time in one sendmsg each; the call fails only on socket errors, never
  // because the kernel rejected a request (see the acks).
  [[nodiscard]] Result<std::vector<NetlinkAck>> transact(std::span<const std::vector<uint8_t>> msgs);

  // Sends one dump request (NLM_F_DUMP is set) and calls `onMessage` for every reply until
  // NLMSG_DONE. An error from onMessage stops the dump (the rest is drained) and is returned.
  [[nodiscard]] Result<void> dump(std::vector<uint8_t> request,
                                  const std::function<Result<void>(const nlmsghdr*)>& onMessage);

  // Sends one request with NLM_F_ACK (a "doit" with a reply, e.g. a GET) and calls
  // `onMessage` for every reply before the ACK.
  [[nodiscard]] Result<void> query(std::vector<uint8_t> request,
                                   const std::function<Result<void>(const nlmsghdr*)>& onMessage);

  int fd() const { return fd_.get(); }

 private:
  NetlinkSocket(Fd fd, size_t maxBatch) : fd_(std::move(fd)), maxBatch_(maxBatch) {}
  [[nodiscard]] Result<size_t> receive();
  [[nodiscard]] Result<void> exchange(std::vector<uint8_t> request, uint16_t flags,
                                      const std::function<Result<void>(const nlmsghdr*)>& onMessage);
  Fd fd_;
  size_t maxBatch_;
  uint32_t seq_ = 1;
  std::vector<uint8_t> rx_;
};

// Decodes an NLMSG_ERROR payload into an ack (error is positive; 0 means success).
NetlinkAck decodeNetlinkError(const nlmsghdr* h);

}  // namespace nodeagent
