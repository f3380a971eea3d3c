// NetlinkSocket: the one way the agent talks netlink, for every family (generic/IPVS,
// netfilter/conntrack and nftables, route). Messages are built elsewhere (pure functions);
// this class stamps sequence numbers, sends, and checks every reply before a parser sees
// it:
//   - a receive timeout: no call blocks forever on a kernel that never answers;
//   - a datagram larger than the receive buffer (MSG_TRUNC) is an error, not a cut reply;
//   - each message's length is checked against the datagram;
//   - replies are matched to requests by sequence number; a reply to an older request
//     (left over after a timeout) is dropped, any other unexpected number is an error;
//   - ACKs and extended ACKs (NLMSGERR_ATTR_MSG) are decoded into readable errors;
//   - an interrupted dump (NLM_F_DUMP_INTR) is reported, not taken as complete.
#pragma once

#include <linux/netlink.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "common/fd.h"
#include "common/netlink_attr.h"
#include "common/result.h"

namespace nodeagent {

// The kernel's answer to one request of a batch: 0 or a positive errno, plus the extended
// ACK message when the kernel gave one.
struct NetlinkAck {
  int error = 0;
  std::string message;
  bool ok() const { return error == 0; }
};

struct NetlinkOptions {
  size_t maxBatch = 256;  // requests per sendmsg in transact(); sizes the receive buffer
  // How long one receive may wait. The kernel answers synchronously, so a reply that takes
  // this long means a stuck kernel path; the caller gets ETIMEDOUT instead of a hung thread.
  std::chrono::milliseconds receiveTimeout{10'000};
};

// One message handed to a reply parser: exactly nlmsg_len bytes, length already checked.
using NetlinkHandler = std::function<Result<void>(Bytes message)>;

class NetlinkSocket {
 public:
  // Opens and binds a socket of `protocol` (NETLINK_GENERIC, NETLINK_ROUTE, ...) with
  // extended and capped ACKs.
  [[nodiscard]] static Result<NetlinkSocket> open(int protocol, NetlinkOptions options = {});

  // Wraps an already connected datagram socket that stands in for the kernel (a unix
  // SOCK_SEQPACKET pair in the socket's own tests); the same checks apply.
  [[nodiscard]] static Result<NetlinkSocket> adopt(Fd fd, NetlinkOptions options = {});

  NetlinkSocket(NetlinkSocket&&) = default;
  NetlinkSocket& operator=(NetlinkSocket&&) = default;

  // Sends every message (each a complete nlmsghdr; its seq and pid fields are overwritten
  // and NLM_F_ACK is set) and returns one ack per message, in order. Messages go out
  // `maxBatch` at a time in one sendmsg each; the call fails only on socket errors, never
  // because the kernel rejected a request (see the acks).
  [[nodiscard]] Result<std::vector<NetlinkAck>> transact(std::span<const std::vector<uint8_t>> msgs);

  // For callers that build a whole datagram themselves (an nftables batch through
  // libnftnl): reserves `n` consecutive sequence numbers and returns the first.
  uint32_t reserveSequence(uint32_t n);
  // Sends one datagram made of `parts` whose messages carry sequence numbers in
  // [firstSeq, firstSeq + count) (reserved above), then reads every reply the kernel
  // queued for it. The kernel handles a netlink datagram inside sendmsg, so all replies are
  // queued when it returns; they are read without waiting. Returns the acks by sequence
  // number (index 0 = firstSeq; a message without an ack keeps error -1).
  [[nodiscard]] Result<std::vector<NetlinkAck>> sendDatagram(std::span<const iovec> parts, uint32_t firstSeq,
                                                             uint32_t count);

  // Sends one dump request (NLM_F_DUMP is set) and calls `onMessage` for every reply until
  // NLMSG_DONE. An error from onMessage stops the dump (the rest is drained) and is returned.
  [[nodiscard]] Result<void> dump(std::vector<uint8_t> request, const NetlinkHandler& onMessage);

  // Sends one request with NLM_F_ACK (a "doit" with a reply, e.g. a GET) and calls
  // `onMessage` for every reply before the ACK.
  [[nodiscard]] Result<void> query(std::vector<uint8_t> request, const NetlinkHandler& onMessage);

  int fd() const { return fd_.get(); }

 private:
  NetlinkSocket(Fd fd, NetlinkOptions options) : fd_(std::move(fd)), options_(options) {}
  // One datagram into rx_; `wait` false returns 0 bytes when nothing is queued.
  [[nodiscard]] Result<size_t> receive(bool wait = true);
  [[nodiscard]] Result<void> ensureSendBuffer(size_t bytes);
  [[nodiscard]] Result<void> sendMessage(const msghdr& mh, const std::string& what);
  // Splits the datagram in rx_ into checked messages, drops replies to older requests,
  // fails on a sequence number outside [first, first + count), else calls `fn` with the
  // message, its header and its index in the range.
  using ReplyHandler = std::function<Result<void>(Bytes, const nlmsghdr&, uint32_t)>;
  [[nodiscard]] Result<void> forEachReply(size_t bytes, uint32_t first, uint32_t count, const ReplyHandler& fn);
  [[nodiscard]] Result<void> exchange(std::vector<uint8_t> request, uint16_t flags, const NetlinkHandler& onMessage);
  Fd fd_;
  NetlinkOptions options_;
  uint32_t seq_ = 1;
  size_t sndbuf_ = 0;
  std::vector<uint8_t> rx_;
};

// Decodes an NLMSG_ERROR message (exactly nlmsg_len bytes) into an ack (error is positive;
// 0 means success). A message too short for struct nlmsgerr is EBADMSG.
NetlinkAck decodeNetlinkError(Bytes message);

// Splits one received datagram into messages, checking each length; calls `fn` for each.
// A length that runs past the datagram (or trailing bytes) is an error.
[[nodiscard]] Result<void> forEachNetlinkMessage(Bytes datagram, const std::function<Result<void>(Bytes)>& fn);

}  // namespace nodeagent
