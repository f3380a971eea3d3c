#include "common/netlink_socket.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace nodeagent {

namespace {
// One recv returns one datagram; the kernel caps dump datagrams at 32 KiB, and an ACK of a
// capped error is a few dozen bytes. Anything larger is reported as truncated.
constexpr size_t kRxBuffer = 64 << 10;

const AttrPolicy kExtAckPolicy("netlink extended ACK", {
    {.type = NLMSGERR_ATTR_MSG, .kind = AttrKind::kString, .name = "NLMSGERR_ATTR_MSG"},
    {.type = NLMSGERR_ATTR_OFFS, .kind = AttrKind::kU32, .name = "NLMSGERR_ATTR_OFFS"},
});

nlmsghdr headerAt(Bytes b) {
  nlmsghdr h;
  std::memcpy(&h, b.data(), sizeof h);
  return h;
}

// A message to the kernel (port 0) made of `n` parts.
msghdr kernelMessage(iovec* parts, size_t n) {
  static sockaddr_nl kernel{.nl_family = AF_NETLINK, .nl_pad = 0, .nl_pid = 0, .nl_groups = 0};
  msghdr mh{};
  mh.msg_name = &kernel;
  mh.msg_namelen = sizeof kernel;
  mh.msg_iov = parts;
  mh.msg_iovlen = n;
  return mh;
}

void setBuffer(int fd, int forceOpt, int opt, size_t bytes) {
  int v = static_cast<int>(std::min<size_t>(bytes, 1 << 30));
  // The FORCE variant (root) goes past net.core.[rw]mem_max; otherwise the capped one.
  if (::setsockopt(fd, SOL_SOCKET, forceOpt, &v, sizeof v) != 0) (void)::setsockopt(fd, SOL_SOCKET, opt, &v, sizeof v);
}
}  // namespace

Result<NetlinkSocket> NetlinkSocket::open(int protocol, NetlinkOptions options) {
  Fd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol));
  if (!fd) return failErrno("netlink socket(" + std::to_string(protocol) + ")");
  int one = 1;
  // Extended ACKs carry the kernel's reason; capped ACKs do not echo our request back.
  (void)::setsockopt(fd.get(), SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  (void)::setsockopt(fd.get(), SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  sockaddr_nl local{};
  local.nl_family = AF_NETLINK;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&local), sizeof local) != 0)
    return failErrno("bind netlink socket");
  return adopt(std::move(fd), options);
}

Result<NetlinkSocket> NetlinkSocket::adopt(Fd fd, NetlinkOptions options) {
  options.maxBatch = std::max<size_t>(1, options.maxBatch);
  // Each queued ACK costs an skb (~1 KiB truesize); make room for a whole batch.
  setBuffer(fd.get(), SO_RCVBUFFORCE, SO_RCVBUF, std::max<size_t>(options.maxBatch * 2048, 1 << 20));
  timeval tv{};
  tv.tv_sec = options.receiveTimeout.count() / 1000;
  tv.tv_usec = (options.receiveTimeout.count() % 1000) * 1000;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0)
    return failErrno("set netlink receive timeout");
  NetlinkSocket s(std::move(fd), options);
  s.rx_.resize(kRxBuffer);
  if (auto r = s.ensureSendBuffer(4 << 20); !r) return fail(r.error());
  return s;
}

Result<void> NetlinkSocket::ensureSendBuffer(size_t bytes) {
  // The kernel refuses (EMSGSIZE) a datagram larger than the send buffer less 32 bytes.
  if (bytes + 64 <= sndbuf_) return {};
  setBuffer(fd_.get(), SO_SNDBUFFORCE, SO_SNDBUF, bytes + 64);
  int got = 0;
  socklen_t len = sizeof got;
  if (::getsockopt(fd_.get(), SOL_SOCKET, SO_SNDBUF, &got, &len) != 0) return failErrno("read netlink send buffer");
  sndbuf_ = static_cast<size_t>(got);
  return {};
}

NetlinkAck decodeNetlinkError(Bytes message) {
  NetlinkAck ack;
  if (message.size() < NLMSG_LENGTH(sizeof(nlmsgerr))) {
    ack.error = EBADMSG;
    ack.message = "truncated netlink error message";
    return ack;
  }
  nlmsgerr err;
  std::memcpy(&err, message.data() + NLMSG_HDRLEN, sizeof err);
  // The kernel sends 0 or a negated errno (at most MAX_ERRNO, 4095). Anything else makes
  // the message malformed; negating INT_MIN would be undefined (found by the netlink_ack
  // fuzz target), and a positive value would become a negative "errno".
  if (err.error > 0 || err.error < -4095) {
    ack.error = EBADMSG;
    ack.message = "netlink error message with invalid error code " + std::to_string(err.error);
    return ack;
  }
  ack.error = -err.error;
  nlmsghdr h = headerAt(message);
  if (!(h.nlmsg_flags & NLM_F_ACK_TLVS)) return ack;
  // TLVs follow the echoed request: only its header when capped, else all of it.
  size_t off = NLMSG_LENGTH(sizeof(nlmsgerr));
  if (!(h.nlmsg_flags & NLM_F_CAPPED)) off = NLMSG_LENGTH(sizeof(int)) + NLMSG_ALIGN(err.msg.nlmsg_len);
  if (off > message.size()) {
    ack.message = "(extended ACK past the end of the message)";
    return ack;
  }
  auto tlvs = parseAttrs(message.subspan(off), kExtAckPolicy);
  if (!tlvs)
    ack.message = "(" + tlvs.error().message() + ")";
  else
    ack.message = tlvs->str(NLMSGERR_ATTR_MSG);
  return ack;
}

Result<void> forEachNetlinkMessage(Bytes datagram, const std::function<Result<void>(Bytes)>& fn) {
  size_t off = 0;
  while (off < datagram.size()) {
    auto m = netlinkMessage(datagram.subspan(off), 0, "netlink reply");
    if (!m) return fail(m.error());
    if (auto r = fn(*m); !r) return r;
    off += NLMSG_ALIGN(m->size());
  }
  return {};
}

Result<size_t> NetlinkSocket::receive(bool wait) {
  for (;;) {
    iovec iov{rx_.data(), rx_.size()};
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    // MSG_TRUNC makes recvmsg return the datagram's real length even when it did not fit.
    ssize_t n = ::recvmsg(fd_.get(), &mh, MSG_TRUNC | (wait ? 0 : MSG_DONTWAIT));
    if (n >= 0) {
      if (static_cast<size_t>(n) > rx_.size() || (mh.msg_flags & MSG_TRUNC))
        return failErrno(EMSGSIZE, "netlink reply of " + std::to_string(n) + " bytes truncated to the " +
                                       std::to_string(rx_.size()) + "-byte receive buffer");
      return static_cast<size_t>(n);
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (!wait) return size_t{0};
      return failErrno(ETIMEDOUT, "no netlink reply within " + std::to_string(options_.receiveTimeout.count()) + " ms");
    }
    // ENOBUFS: the receive queue overflowed and replies were lost.
    return failErrno("netlink recv");
  }
}

uint32_t NetlinkSocket::reserveSequence(uint32_t n) {
  uint32_t first = seq_;
  seq_ += n;
  return first;
}

namespace {
// Where a reply's sequence number falls relative to the range [first, first + count) of
// the request in flight. Numbers are compared as distances so that wrap-around is fine.
enum class SeqMatch { kOurs, kStale, kUnexpected };
SeqMatch matchSeq(uint32_t seq, uint32_t first, uint32_t count) {
  if (seq - first < count) return SeqMatch::kOurs;
  // Older requests (timed out, their replies arriving late) lie behind `first`.
  if (first - seq <= (1u << 30)) return SeqMatch::kStale;
  return SeqMatch::kUnexpected;
}
Error unexpectedSeq(uint32_t seq, uint32_t first, uint32_t count) {
  return Error::fromErrno(EPROTO, "netlink reply with sequence number " + std::to_string(seq) + ", expected " +
                                      std::to_string(first) + (count > 1 ? ".." + std::to_string(first + count - 1) : ""));
}
}  // namespace

Result<void> NetlinkSocket::forEachReply(size_t bytes, uint32_t first, uint32_t count, const ReplyHandler& fn) {
  return forEachNetlinkMessage(Bytes(rx_.data(), bytes), [&](Bytes m) -> Result<void> {
    nlmsghdr h = headerAt(m);
    switch (matchSeq(h.nlmsg_seq, first, count)) {
      case SeqMatch::kStale: return {};
      case SeqMatch::kUnexpected: return fail(unexpectedSeq(h.nlmsg_seq, first, count));
      case SeqMatch::kOurs: break;
    }
    return fn(m, h, h.nlmsg_seq - first);
  });
}

Result<void> NetlinkSocket::sendMessage(const msghdr& mh, const std::string& what) {
  for (;;) {
    if (::sendmsg(fd_.get(), &mh, 0) >= 0) return {};
    if (errno != EINTR) return failErrno("netlink send of " + what);
  }
}

Result<std::vector<NetlinkAck>> NetlinkSocket::transact(std::span<const std::vector<uint8_t>> msgs) {
  std::vector<NetlinkAck> acks(msgs.size());
  std::vector<uint8_t> buf;
  for (size_t start = 0; start < msgs.size(); start += options_.maxBatch) {
    size_t end = std::min(msgs.size(), start + options_.maxBatch);
    buf.clear();
    auto count = static_cast<uint32_t>(end - start);
    uint32_t firstSeq = reserveSequence(count);
    for (size_t i = start; i < end; ++i) {
      const auto& m = msgs[i];
      if (m.size() < sizeof(nlmsghdr)) return failInvalid("netlink message shorter than its header");
      size_t at = buf.size();
      buf.insert(buf.end(), m.begin(), m.end());
      buf.resize(at + NLMSG_ALIGN(m.size()), 0);
      auto* h = reinterpret_cast<nlmsghdr*>(buf.data() + at);
      h->nlmsg_len = static_cast<uint32_t>(m.size());
      h->nlmsg_seq = firstSeq + static_cast<uint32_t>(i - start);
      h->nlmsg_pid = 0;
      h->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
    }
    if (auto r = ensureSendBuffer(buf.size()); !r) return fail(r.error());
    iovec iov{buf.data(), buf.size()};
    if (auto r = sendMessage(kernelMessage(&iov, 1), std::to_string(count) + " messages"); !r) return fail(r.error());
    size_t pending = count;
    std::vector<bool> seen(count, false);
    while (pending > 0) {
      auto n = receive();
      if (!n) return fail(n.error().wrap(std::to_string(pending) + " of " + std::to_string(count) + " ACKs missing"));
      auto r = forEachReply(*n, firstSeq, count, [&](Bytes m, const nlmsghdr& h, uint32_t idx) -> Result<void> {
        if (h.nlmsg_type != NLMSG_ERROR || seen[idx]) return {};  // replies we did not ask for
        acks[start + idx] = decodeNetlinkError(m);
        seen[idx] = true;
        --pending;
        return {};
      });
      if (!r) return fail(r.error());
    }
  }
  return acks;
}

Result<std::vector<NetlinkAck>> NetlinkSocket::sendDatagram(std::span<const iovec> parts, uint32_t firstSeq,
                                                            uint32_t count) {
  size_t total = 0;
  for (const auto& p : parts) total += p.iov_len;
  if (auto r = ensureSendBuffer(total); !r) return fail(r.error());
  setBuffer(fd_.get(), SO_RCVBUFFORCE, SO_RCVBUF, std::max<size_t>(size_t(count) * 2048, 1 << 20));
  if (auto r = sendMessage(kernelMessage(const_cast<iovec*>(parts.data()), parts.size()), "a " + std::to_string(total) + "-byte batch"); !r)
    return fail(r.error());
  std::vector<NetlinkAck> acks(count, NetlinkAck{-1, {}});
  for (;;) {
    auto n = receive(false);
    if (!n) return fail(n.error());
    if (*n == 0) break;
    auto r = forEachReply(*n, firstSeq, count, [&](Bytes m, const nlmsghdr& h, uint32_t idx) -> Result<void> {
      if (h.nlmsg_type == NLMSG_ERROR) acks[idx] = decodeNetlinkError(m);
      return {};
    });
    if (!r) return fail(r.error());
  }
  return acks;
}

Result<void> NetlinkSocket::dump(std::vector<uint8_t> request, const NetlinkHandler& onMessage) {
  return exchange(std::move(request), NLM_F_DUMP, onMessage);
}

Result<void> NetlinkSocket::query(std::vector<uint8_t> request, const NetlinkHandler& onMessage) {
  return exchange(std::move(request), NLM_F_ACK, onMessage);
}

Result<void> NetlinkSocket::exchange(std::vector<uint8_t> request, uint16_t flags, const NetlinkHandler& onMessage) {
  if (request.size() < sizeof(nlmsghdr)) return failInvalid("netlink request shorter than its header");
  const char* what = flags & NLM_F_DUMP ? "netlink dump" : "netlink request";
  auto* req = reinterpret_cast<nlmsghdr*>(request.data());
  uint32_t seq = reserveSequence(1);
  req->nlmsg_len = static_cast<uint32_t>(request.size());
  req->nlmsg_seq = seq;
  req->nlmsg_pid = 0;
  req->nlmsg_flags = static_cast<uint16_t>((req->nlmsg_flags & ~(NLM_F_ACK | NLM_F_DUMP)) | NLM_F_REQUEST | flags);
  iovec iov{request.data(), request.size()};
  if (auto r = sendMessage(kernelMessage(&iov, 1), what); !r) return fail(r.error());
  Result<void> status;
  bool interrupted = false, done = false;
  while (!done) {
    auto n = receive();
    if (!n) return fail(n.error().wrap(what));
    auto r = forEachReply(*n, seq, 1, [&](Bytes m, const nlmsghdr& h, uint32_t) -> Result<void> {
      if (done) return {};
      if (h.nlmsg_flags & NLM_F_DUMP_INTR) interrupted = true;
      if (h.nlmsg_type == NLMSG_DONE) {
        done = true;
        // A dump that failed part-way says so with a negative errno after the header.
        if (m.size() >= NLMSG_LENGTH(sizeof(int))) {
          int err;
          std::memcpy(&err, m.data() + NLMSG_HDRLEN, sizeof err);
          if (err < 0) status = failErrno(-err, what);
        }
        return {};
      }
      if (h.nlmsg_type == NLMSG_ERROR) {
        done = true;
        auto ack = decodeNetlinkError(m);
        if (ack.error != 0)
          status = failErrno(ack.error, std::string(what) + (ack.message.empty() ? "" : " (" + ack.message + ")"));
        return {};
      }
      if (h.nlmsg_type < NLMSG_MIN_TYPE) return {};  // NLMSG_NOOP, NLMSG_OVERRUN
      if (status) status = onMessage(m);
      return {};
    });
    if (!r) return fail(r.error().wrap(what));
  }
  if (!status) return status;
  // The kernel's table changed while it was dumped: some entries may be missing or twice.
  if (interrupted) return failErrno(EAGAIN, std::string(what) + " interrupted by a concurrent change; read again");
  return status;
}

}  // namespace nodeagent
