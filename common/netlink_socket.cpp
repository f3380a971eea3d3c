#include "common/netlink_socket.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace nodeagent {

namespace {
// One recv returns one datagram; the kernel caps dump datagrams at 32 KiB.
constexpr size_t kRxBuffer = 64 << 10;
}

Result<NetlinkSocket> NetlinkSocket::open(int protocol, size_t maxBatch) {
  Fd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol));
  if (!fd) return failErrno("netlink socket(" + std::to_string(protocol) + ")");
  int one = 1;
  // Extended ACKs carry the kernel's reason; capped ACKs do not echo our request back.
  (void)::setsockopt(fd.get(), SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  (void)::setsockopt(fd.get(), SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  // Each queued ACK costs an skb (~1 KiB truesize); make room for a whole batch.
  int rcv = static_cast<int>(std::max<size_t>(maxBatch * 2048, 1 << 20));
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof rcv) != 0)
    (void)::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
  int snd = 4 << 20;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_SNDBUFFORCE, &snd, sizeof snd) != 0)
    (void)::setsockopt(fd.get(), SOL_SOCKET, SO_SNDBUF, &snd, sizeof snd);
  sockaddr_nl local{};
  local.nl_family = AF_NETLINK;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&local), sizeof local) != 0)
    return failErrno("bind netlink socket");
  NetlinkSocket s(std::move(fd), std::max<size_t>(1, maxBatch));
  s.rx_.resize(kRxBuffer);
  return s;
}

NetlinkAck decodeNetlinkError(const nlmsghdr* h) {
  NetlinkAck ack;
  if (h->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr))) {
    ack.error = EBADMSG;
    ack.message = "truncated netlink error message";
    return ack;
  }
  const auto* err = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
  // The kernel sends 0 or a negated errno (at most MAX_ERRNO, 4095). Anything else makes
  // the message malformed; negating INT_MIN would be undefined, and a positive value would
  // become a negative "errno" that reads as success to a `< 0` check.
  if (err->error > 0 || err->error < -4095) {
    ack.error = EBADMSG;
    ack.message = "netlink error message with invalid error code " + std::to_string(err->error);
    return ack;
  }
  ack.error = -err->error;
  if (!(h->nlmsg_flags & NLM_F_ACK_TLVS)) return ack;
  // TLVs follow the echoed request: only its header when capped, else all of it.
  size_t off = NLMSG_LENGTH(sizeof(nlmsgerr));
  if (!(h->nlmsg_flags & NLM_F_CAPPED))
    off = NLMSG_LENGTH(sizeof(int)) + NLMSG_ALIGN(err->msg.nlmsg_len);
  const auto* base = reinterpret_cast<const uint8_t*>(h);
  while (off + sizeof(nlattr) <= h->nlmsg_len) {
    const auto* a = reinterpret_cast<const nlattr*>(base + off);
    if (a->nla_len < sizeof(nlattr) || off + a->nla_len > h->nlmsg_len) break;
    if ((a->nla_type & NLA_TYPE_MASK) == NLMSGERR_ATTR_MSG) {
      const char* s = reinterpret_cast<const char*>(a) + NLA_HDRLEN;
      ack.message.assign(s, strnlen(s, a->nla_len - NLA_HDRLEN));
    }
    off += NLA_ALIGN(a->nla_len);
  }
  return ack;
}

Result<size_t> NetlinkSocket::receive() {
  for (;;) {
    ssize_t n = ::recv(fd_.get(), rx_.data(), rx_.size(), 0);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno == EINTR) continue;
    return failErrno("netlink recv");
  }
}

Result<std::vector<NetlinkAck>> NetlinkSocket::transact(std::span<const std::vector<uint8_t>> msgs) {
  std::vector<NetlinkAck> acks(msgs.size());
  std::vector<uint8_t> buf;
  for (size_t start = 0; start < msgs.size(); start += maxBatch_) {
    size_t end = std::min(msgs.size(), start + maxBatch_);
    buf.clear();
    uint32_t firstSeq = seq_;
    for (size_t i = start; i < end; ++i) {
      const auto& m = msgs[i];
      if (m.size() < sizeof(nlmsghdr)) return failInvalid("netlink message shorter than its header");
      size_t at = buf.size();
      buf.insert(buf.end(), m.begin(), m.end());
      buf.resize(at + NLMSG_ALIGN(m.size()), 0);
      auto* h = reinterpret_cast<nlmsghdr*>(buf.data() + at);
      h->nlmsg_seq = seq_++;
      h->nlmsg_pid = 0;
      h->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
    }
    for (;;) {
      ssize_t n = ::send(fd_.get(), buf.data(), buf.size(), 0);
      if (n >= 0) break;
      if (errno == EINTR) continue;
      return failErrno("netlink send of " + std::to_string(end - start) + " messages");
    }
    size_t pending = end - start;
    std::vector<bool> seen(pending, false);
    while (pending > 0) {
      auto n = receive();
      if (!n) return fail(n.error());
      int len = static_cast<int>(*n);
      for (auto* h = reinterpret_cast<nlmsghdr*>(rx_.data()); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
        uint32_t idx = h->nlmsg_seq - firstSeq;
        if (h->nlmsg_seq < firstSeq || idx >= end - start || seen[idx]) continue;  // stale
        if (h->nlmsg_type != NLMSG_ERROR) continue;  // replies we did not ask for
        acks[start + idx] = decodeNetlinkError(h);
        seen[idx] = true;
        --pending;
      }
    }
  }
  return acks;
}

Result<void> NetlinkSocket::dump(std::vector<uint8_t> request,
                                 const std::function<Result<void>(const nlmsghdr*)>& onMessage) {
  return exchange(std::move(request), NLM_F_DUMP, onMessage);
}

Result<void> NetlinkSocket::query(std::vector<uint8_t> request,
                                  const std::function<Result<void>(const nlmsghdr*)>& onMessage) {
  return exchange(std::move(request), NLM_F_ACK, onMessage);
}

Result<void> NetlinkSocket::exchange(std::vector<uint8_t> request, uint16_t flags,
                                     const std::function<Result<void>(const nlmsghdr*)>& onMessage) {
  if (request.size() < sizeof(nlmsghdr)) return failInvalid("netlink dump request shorter than its header");
  auto* req = reinterpret_cast<nlmsghdr*>(request.data());
  uint32_t seq = seq_++;
  req->nlmsg_seq = seq;
  req->nlmsg_pid = 0;
  req->nlmsg_flags = static_cast<uint16_t>((req->nlmsg_flags & ~(NLM_F_ACK | NLM_F_DUMP)) | NLM_F_REQUEST | flags);
  for (;;) {
    if (::send(fd_.get(), request.data(), request.size(), 0) >= 0) break;
    if (errno != EINTR) return failErrno("netlink send dump request");
  }
  Result<void> status;
  for (;;) {
    auto n = receive();
    if (!n) return fail(n.error());
    int len = static_cast<int>(*n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(rx_.data()); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_seq != seq) continue;
      if (h->nlmsg_type == NLMSG_DONE) return status;
      if (h->nlmsg_type == NLMSG_ERROR) {
        auto ack = decodeNetlinkError(h);
        if (ack.error == 0) return status;
        return failErrno(ack.error, std::string(flags & NLM_F_DUMP ? "netlink dump" : "netlink request") + (ack.message.empty() ? "" : " (" + ack.message + ")"));
      }
      if (status) status = onMessage(h);
    }
  }
}

}  // namespace nodeagent
