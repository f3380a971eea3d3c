#include "netfilter/nft_proxy_table.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnftnl/batch.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <map>
#include <optional>
#include <memory>

#include "common/netlink_socket.h"

namespace nodeagent::netfilter {

namespace {

constexpr uint32_t kIpv4AddrType = 7, kIpv6AddrType = 8, kInetProtoType = 12, kInetServiceType = 13;
constexpr uint32_t concatType(uint32_t a, uint32_t b, uint32_t c) { return (((a << 6) | b) << 6) | c; }

// Collects the messages of one batch with libnftnl's nftnl_batch: pages of 32 system pages
// (what nft uses), each allowed to overrun by one message of up to UINT16_MAX bytes plus a
// page (the largest nf_tables message, a set element list, is a little over 64 KiB since
// nla_len is 16 bits). When a message ends past a page's limit, nftnl_batch_update moves it
// to a new page, so any number of messages fit; nothing is estimated. Running out of memory
// (or a message longer than the overrun) marks the batch failed: sendBatch reports it and
// sends nothing.
class Batch {
 public:
  Batch()
      : pageSize_(32 * static_cast<uint32_t>(::getpagesize())),
        overrun_(UINT16_MAX + static_cast<uint32_t>(::getpagesize())),
        batch_(nftnl_batch_alloc(pageSize_, overrun_)) {
    if (!batch_) {
      failure_ = Error::fromErrno(ENOMEM, "nftables batch");
      return;
    }
    nftnl_batch_begin(static_cast<char*>(nftnl_batch_buffer(batch_)), 0);
    advance();
  }
  ~Batch() {
    if (batch_) nftnl_batch_free(batch_);
  }
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;

  // The header of the next message; its payload is written after it, then next().
  nlmsghdr* header(uint16_t type, uint16_t flags) {
    ++count_;
    if (failure_) {
      scratch_.assign(scratchSize(), 0);
      current_ = nftnl_nlmsg_build_hdr(scratch_.data(), type, NFPROTO_INET, flags | NLM_F_ACK, 0);
      return current_;
    }
    current_ = nftnl_nlmsg_build_hdr(static_cast<char*>(nftnl_batch_buffer(batch_)), type, NFPROTO_INET,
                                     flags | NLM_F_ACK, 0);
    return current_;
  }
  void next() {
    // A message longer than the overrun would already have been written past its page.
    if (current_ && current_->nlmsg_len > overrun_ && !failure_)
      failure_ = Error::fromErrno(EMSGSIZE, "nftables message of " + std::to_string(current_->nlmsg_len) + " bytes");
    current_ = nullptr;
    advance();
  }
  // Closes the batch; the datagram's parts (one per page). Messages are numbered
  // 0 (batch begin), 1..count() (the requests), count()+1 (batch end): see stamp().
  std::vector<iovec> finish() {
    if (failure_) return {};
    nftnl_batch_end(static_cast<char*>(nftnl_batch_buffer(batch_)), 0);
    advance();
    std::vector<iovec> iov(static_cast<size_t>(nftnl_batch_iovec_len(batch_)));
    nftnl_batch_iovec(batch_, iov.data(), static_cast<uint32_t>(iov.size()));
    return iov;
  }
  int count() const { return count_; }
  // Set when the batch could not be assembled.
  const std::optional<Error>& failure() const { return failure_; }

 private:
  void advance() {
    if (!failure_ && nftnl_batch_update(batch_) < 0) failure_ = Error::fromErrno(ENOMEM, "nftables batch");
  }
  // Once failed, messages are written to a scratch buffer that is never sent.
  size_t scratchSize() const { return static_cast<size_t>(pageSize_) + overrun_; }
  std::optional<Error> failure_;
  std::vector<char> scratch_;
  uint32_t pageSize_, overrun_;
  nftnl_batch* batch_;
  nlmsghdr* current_ = nullptr;
  int count_ = 0;
};

// Gives the messages of a finished batch consecutive sequence numbers from `first`.
void stamp(std::span<const iovec> parts, uint32_t first) {
  for (const auto& p : parts) {
    auto* base = static_cast<uint8_t*>(p.iov_base);
    for (size_t off = 0; off + NLMSG_HDRLEN <= p.iov_len;) {
      auto* h = reinterpret_cast<nlmsghdr*>(base + off);
      h->nlmsg_seq = first++;
      off += NLMSG_ALIGN(h->nlmsg_len);
    }
  }
}

void addExpr(nftnl_rule* r, nftnl_expr* e) { nftnl_rule_add_expr(r, e); }

nftnl_expr* meta(uint32_t key, uint32_t dreg) {
  auto* e = nftnl_expr_alloc("meta");
  nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
  nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, dreg);
  return e;
}
nftnl_expr* metaSet(uint32_t key, uint32_t sreg) {
  auto* e = nftnl_expr_alloc("meta");
  nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
  nftnl_expr_set_u32(e, NFTNL_EXPR_META_SREG, sreg);
  return e;
}
nftnl_expr* cmpEq(uint32_t sreg, const void* data, uint32_t len) {
  auto* e = nftnl_expr_alloc("cmp");
  nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, sreg);
  nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, NFT_CMP_EQ);
  nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
  return e;
}
nftnl_expr* payload(uint32_t base, uint32_t offset, uint32_t len, uint32_t dreg) {
  auto* e = nftnl_expr_alloc("payload");
  nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
  nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, offset);
  nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
  nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, dreg);
  return e;
}
nftnl_expr* lookup(const std::string& set, uint32_t sreg, bool invert) {
  auto* e = nftnl_expr_alloc("lookup");
  nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, sreg);
  nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set.c_str());
  if (invert) nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
  return e;
}
nftnl_expr* verdict(int v) {
  auto* e = nftnl_expr_alloc("immediate");
  nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
  nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, static_cast<uint32_t>(v));
  return e;
}
nftnl_expr* cmpNeq(uint32_t sreg, const void* data, uint32_t len) {
  auto* e = cmpEq(sreg, data, len);
  nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, NFT_CMP_NEQ);
  return e;
}
nftnl_expr* bitwiseMask(uint32_t reg, const uint8_t* mask, uint32_t len) {
  static const uint8_t zero[16] = {};
  auto* e = nftnl_expr_alloc("bitwise");
  nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, reg);
  nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, reg);
  nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, len);
  nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, mask, len);
  nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, zero, len);
  return e;
}
nftnl_expr* bitwise(uint32_t reg, uint32_t mask, uint32_t x) {
  auto* e = nftnl_expr_alloc("bitwise");
  nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, reg);
  nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, reg);
  nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, 4);
  nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, &mask, 4);
  nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, &x, 4);
  return e;
}

// meta nfproto ipv4|ipv6; then the concatenation daddr . l4proto . th dport into regs.
void loadServiceKey(nftnl_rule* r, int family) {
  uint8_t nfproto = family == AF_INET6 ? NFPROTO_IPV6 : NFPROTO_IPV4;
  addExpr(r, meta(NFT_META_NFPROTO, NFT_REG_1));
  addExpr(r, cmpEq(NFT_REG_1, &nfproto, 1));
  bool v6 = family == AF_INET6;
  addExpr(r, payload(NFT_PAYLOAD_NETWORK_HEADER, v6 ? 24 : 16, v6 ? 16 : 4, NFT_REG32_00));
  addExpr(r, meta(NFT_META_L4PROTO, v6 ? NFT_REG32_04 : NFT_REG32_01));
  addExpr(r, payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, v6 ? NFT_REG32_05 : NFT_REG32_02));
}

struct RuleDeleter {
  void operator()(nftnl_rule* r) const { nftnl_rule_free(r); }
};

void putRule(Batch& b, const std::string& table, const char* chain, nftnl_rule* r) {
  nftnl_rule_set_str(r, NFTNL_RULE_TABLE, table.c_str());
  nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chain);
  nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_INET);
  nftnl_rule_nlmsg_build_payload(b.header(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND), r);
  b.next();
  nftnl_rule_free(r);
}

void putChain(Batch& b, const std::string& table, const char* name, uint32_t hook, int32_t prio, const char* type) {
  auto* c = nftnl_chain_alloc();
  nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, table.c_str());
  nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name);
  nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, hook);
  nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, prio);
  nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, type);
  nftnl_chain_nlmsg_build_payload(b.header(NFT_MSG_NEWCHAIN, NLM_F_CREATE), c);
  b.next();
  nftnl_chain_free(c);
}

nftnl_set* setFor(const std::string& table, const std::string& name) {
  auto* s = nftnl_set_alloc();
  nftnl_set_set_str(s, NFTNL_SET_TABLE, table.c_str());
  nftnl_set_set_str(s, NFTNL_SET_NAME, name.c_str());
  nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
  return s;
}

// `fields`: the unpadded length of each field of an interval concatenation (the kernel's
// pipapo set type needs them); empty for a plain hash set.
void putSet(Batch& b, const std::string& table, const std::string& name, uint32_t keyType, uint32_t keyLen, uint32_t id,
            std::span<const uint8_t> fields = {}) {
  auto* s = setFor(table, name);
  nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, keyType);
  nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, keyLen);
  nftnl_set_set_u32(s, NFTNL_SET_ID, id);
  if (!fields.empty()) {
    nftnl_set_set_u32(s, NFTNL_SET_FLAGS, NFT_SET_INTERVAL | NFT_SET_CONCAT);
    nftnl_set_set_data(s, NFTNL_SET_DESC_CONCAT, fields.data(), static_cast<uint32_t>(fields.size()));
  }
  nftnl_set_nlmsg_build_payload(b.header(NFT_MSG_NEWSET, NLM_F_CREATE), s);
  b.next();
  nftnl_set_free(s);
}

// One set element: its key, and for an interval set the key where the interval ends.
struct Elem {
  std::vector<uint8_t> key, end;
  auto operator<=>(const Elem&) const = default;
};

// The payload of one NFT_MSG_NEWSETELEM / NFT_MSG_DELSETELEM message.
void putElemsPayload(nlmsghdr* h, const std::string& table, const std::string& set, std::span<const Elem> elems) {
  auto* s = setFor(table, set);
  for (const auto& el : elems) {
    auto* e = nftnl_set_elem_alloc();
    nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, el.key.data(), static_cast<uint32_t>(el.key.size()));
    if (!el.end.empty()) nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY_END, el.end.data(), static_cast<uint32_t>(el.end.size()));
    nftnl_set_elem_add(s, e);
  }
  nftnl_set_elems_nlmsg_build_payload(h, s);
  nftnl_set_free(s);
}

// Adds (or deletes) elements, in messages of at most 256 elements.
void putElems(Batch& b, const std::string& table, const std::string& set, const std::vector<Elem>& elems, bool add) {
  for (size_t i = 0; i < elems.size(); i += 256) {
    std::span<const Elem> chunk(elems.data() + i, std::min<size_t>(256, elems.size() - i));
    putElemsPayload(b.header(add ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM, add ? NLM_F_CREATE : 0), table, set, chunk);
    b.next();
  }
}

// The table's sets; a family's IPv6 set follows its IPv4 one.
enum SetIndex : int { kVips4, kVips6, kSvc4, kSvc6, kMasq4, kMasq6, kMasqx4, kMasqx6, kFw4, kFw6, kFwAllow4, kFwAllow6,
                      kLoop4, kLoop6, kSetCount };
constexpr const char* kElemSets[kSetCount] = {"vips4", "vips6", "svc4",  "svc6",     "masq4",    "masq6", "masqx4",
                                              "masqx6", "fw4",  "fw6",   "fwallow4", "fwallow6", "loop4", "loop6"};
// Elements to add and delete per set, indexed as kElemSets.
using ElemKeys = std::vector<Elem>[kSetCount];

// All element changes of one pass, set by set, deletes before adds (one transaction).
void putElemChanges(Batch& b, const std::string& table, const ElemKeys& add, const ElemKeys& del) {
  for (int i = 0; i < kSetCount; ++i) {
    if (!del[i].empty()) putElems(b, table, kElemSets[i], del[i], false);
    if (!add[i].empty()) putElems(b, table, kElemSets[i], add[i], true);
  }
}

// nft add table inet T; nft delete table inet T [; nft add table inet T]: the add makes
// the delete valid when the table is absent; all in one transaction.
void putTableReset(Batch& b, const std::string& table, bool recreate) {
  auto* t = nftnl_table_alloc();
  nftnl_table_set_str(t, NFTNL_TABLE_NAME, table.c_str());
  nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_INET);
  nftnl_table_nlmsg_build_payload(b.header(NFT_MSG_NEWTABLE, NLM_F_CREATE), t);
  b.next();
  nftnl_table_nlmsg_build_payload(b.header(NFT_MSG_DELTABLE, 0), t);
  b.next();
  if (recreate) {
    nftnl_table_nlmsg_build_payload(b.header(NFT_MSG_NEWTABLE, NLM_F_CREATE), t);
    b.next();
  }
  nftnl_table_free(t);
}

std::vector<uint8_t> vipKey(const NftService& s) {
  return std::vector<uint8_t>(s.addr.begin(), s.addr.begin() + (s.family == AF_INET6 ? 16 : 4));
}

}  // namespace

std::vector<uint8_t> buildSetElemsMessage(const std::string& table, const std::string& set,
                                          std::span<const std::vector<uint8_t>> keys, bool add, uint32_t seq) {
  // Room for the largest nf_tables message (nla_len is 16 bits): libnftnl does not check.
  std::vector<uint8_t> buf(UINT16_MAX + 4096);
  auto* h = nftnl_nlmsg_build_hdr(reinterpret_cast<char*>(buf.data()), add ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM,
                                  NFPROTO_INET, (add ? NLM_F_CREATE : 0) | NLM_F_ACK, seq);
  std::vector<Elem> elems;
  for (const auto& k : keys) elems.push_back({k, {}});
  putElemsPayload(h, table, set, elems);
  buf.resize(h->nlmsg_len);
  return buf;
}

std::vector<uint8_t> nftServiceKey(const NftService& s) {
  std::vector<uint8_t> k = vipKey(s);
  k.insert(k.end(), {s.protocol, 0, 0, 0});
  uint16_t port = htons(s.port);
  auto* p = reinterpret_cast<const uint8_t*>(&port);
  k.insert(k.end(), {p[0], p[1], 0, 0});
  return k;
}

namespace {

// The first and last address of a prefix (network byte order, `len` bytes).
std::pair<std::vector<uint8_t>, std::vector<uint8_t>> prefixRange(const NftPrefix& p, size_t len) {
  std::vector<uint8_t> lo(len), hi(len);
  for (size_t i = 0; i < len; ++i) {
    int bits = std::clamp(p.length - int(i) * 8, 0, 8);
    auto mask = static_cast<uint8_t>(0xff00 >> bits);
    lo[i] = p.addr[i] & mask;
    hi[i] = static_cast<uint8_t>(lo[i] | ~mask);
  }
  return {lo, hi};
}

// endpoint . protocol . port . endpoint, padded as nft's concatenations are.
std::vector<uint8_t> loopKey(const NftService& s, const NftEndpoint& ep) {
  size_t len = s.family == AF_INET6 ? 16 : 4;
  std::vector<uint8_t> k(ep.addr.begin(), ep.addr.begin() + long(len));
  uint16_t port = htons(ep.port);
  auto* p = reinterpret_cast<const uint8_t*>(&port);
  k.insert(k.end(), {s.protocol, 0, 0, 0, p[0], p[1], 0, 0});
  k.insert(k.end(), ep.addr.begin(), ep.addr.begin() + long(len));
  return k;
}

// The elements a service owns alone (svc, masq or masqx, fw and fwallow); VIPs and loop
// elements may be shared and are counted by the callers.
void ownElems(const NftService& s, ElemKeys& out) {
  int v6 = s.family == AF_INET6;
  auto key = nftServiceKey(s);
  out[kSvc4 + v6].push_back({key, {}});
  if (s.masquerade) out[kMasq4 + v6].push_back({key, {}});
  else if (s.masqueradeOutside) out[kMasqx4 + v6].push_back({key, {}});
  if (!s.firewall) return;
  out[kFw4 + v6].push_back({key, {}});
  for (const auto& p : s.allowedSources) {
    if (p.family != s.family) continue;  // a range of the other family allows nothing here
    auto [lo, hi] = prefixRange(p, v6 ? 16 : 4);
    Elem e{key, key};
    e.key.insert(e.key.end(), lo.begin(), lo.end());
    e.end.insert(e.end.end(), hi.begin(), hi.end());
    out[kFwAllow4 + v6].push_back(std::move(e));
  }
}

// Drops pairs that appear in both lists of a set (a service replaced by itself with other
// flags): the kernel keeps the element.
void cancelPairs(ElemKeys& add, ElemKeys& del) {
  for (int i = 0; i < kSetCount; ++i) {
    if (add[i].empty() || del[i].empty()) continue;
    std::set<Elem> a(add[i].begin(), add[i].end()), d(del[i].begin(), del[i].end());
    std::erase_if(add[i], [&](const auto& k) { return d.contains(k); });
    std::erase_if(del[i], [&](const auto& k) { return a.contains(k); });
  }
}

// Sends a batch as one transaction and checks that every request was acknowledged.
Result<void> sendBatch(Batch& batch, const std::string& table) {
  auto parts = batch.finish();
  if (batch.failure()) return fail(Error(*batch.failure()).wrap("nftables batch for table inet " + table));
  auto count = static_cast<uint32_t>(batch.count());
  auto sock = NetlinkSocket::open(NETLINK_NETFILTER);
  if (!sock) return fail(sock.error());
  uint32_t first = sock->reserveSequence(count + 2);
  stamp(parts, first);
  // The batch goes out in one sendmsg (one transaction); each request asked for an ACK.
  auto acks = sock->sendDatagram(parts, first, count + 2);
  if (!acks) return fail(acks.error().wrap("nftables batch for table inet " + table));
  // An error may come for any message, or for the batch begin when the commit fails.
  uint32_t acked = 0;
  for (const auto& ack : *acks) {
    if (ack.error > 0)
      return failErrno(ack.error, "nftables batch for table inet " + table + (ack.message.empty() ? "" : " (" + ack.message + ")"));
    if (ack.error == 0) ++acked;
  }
  if (acked != count)
    return failErrno(EPROTO, "nftables batch for table inet " + table + ": the kernel acknowledged " +
                                 std::to_string(acked) + " of " + std::to_string(count) + " messages");
  return {};
}

}  // namespace

Result<void> NftProxyTable::sync(const std::set<NftService>& services, bool rebuild) {
  if (built_ && !rebuild && services == current_) return {};  // a resync that finds it as it was
  // Room for the table, chains and rules plus every element (each about 40 bytes) of a
  // rebuild: svc, masq and vips entries for each service.
  Batch b;
  if (!built_ || rebuild) {
    // nft add table inet T; nft delete table inet T; then create it whole: one transaction.
    putTableReset(b, table_, true);
    uint32_t t4 = concatType(kIpv4AddrType, kInetProtoType, kInetServiceType);
    uint32_t t6 = concatType(kIpv6AddrType, kInetProtoType, kInetServiceType);
    putSet(b, table_, "vips4", kIpv4AddrType, 4, 1);
    putSet(b, table_, "vips6", kIpv6AddrType, 16, 2);
    putSet(b, table_, "svc4", t4, 12, 3);
    putSet(b, table_, "svc6", t6, 24, 4);
    putSet(b, table_, "masq4", t4, 12, 5);
    putSet(b, table_, "masq6", t6, 24, 6);
    putSet(b, table_, "masqx4", t4, 12, 7);
    putSet(b, table_, "masqx6", t6, 24, 8);
    putSet(b, table_, "fw4", t4, 12, 9);
    putSet(b, table_, "fw6", t6, 24, 10);
    uint32_t q4 = (t4 << 6) | kIpv4AddrType, q6 = (t6 << 6) | kIpv6AddrType;
    const uint8_t f4[] = {4, 1, 2, 4}, f6[] = {16, 1, 2, 16};
    putSet(b, table_, "fwallow4", q4, 16, 11, f4);
    putSet(b, table_, "fwallow6", q6, 40, 12, f6);
    putSet(b, table_, "loop4", q4, 16, 13);
    putSet(b, table_, "loop6", q6, 40, 14);
    putChain(b, table_, "input", NF_INET_LOCAL_IN, 0, "filter");
    putChain(b, table_, "mark-pre", NF_INET_PRE_ROUTING, -150, "filter");
    putChain(b, table_, "mark-out", NF_INET_LOCAL_OUT, -150, "filter");
    putChain(b, table_, "masq", NF_INET_POST_ROUTING, 100, "nat");
    for (int family : {AF_INET, AF_INET6}) {
      bool v6 = family == AF_INET6;
      for (uint8_t proto : {uint8_t(IPPROTO_TCP), uint8_t(IPPROTO_UDP), uint8_t(IPPROTO_SCTP)}) {
        // meta l4proto P ip daddr @vips4 ip daddr . meta l4proto . th dport != @svc4 drop
        auto* r = nftnl_rule_alloc();
        loadServiceKey(r, family);
        addExpr(r, cmpEq(v6 ? NFT_REG32_04 : NFT_REG32_01, &proto, 1));
        addExpr(r, lookup(v6 ? "vips6" : "vips4", NFT_REG32_00, false));
        addExpr(r, lookup(v6 ? "svc6" : "svc4", NFT_REG32_00, true));
        addExpr(r, verdict(NF_DROP));
        putRule(b, table_, "input", r);
      }
      for (const char* chain : {"mark-pre", "mark-out"}) {
        {
          // ip daddr . meta l4proto . th dport @fw4 ip daddr . meta l4proto . th dport . ip saddr != @fwallow4 drop
          auto* f = nftnl_rule_alloc();
          loadServiceKey(f, family);
          addExpr(f, lookup(v6 ? "fw6" : "fw4", NFT_REG32_00, false));
          addExpr(f, payload(NFT_PAYLOAD_NETWORK_HEADER, v6 ? 8 : 12, v6 ? 16 : 4, v6 ? NFT_REG32_06 : NFT_REG32_03));
          addExpr(f, lookup(v6 ? "fwallow6" : "fwallow4", NFT_REG32_00, true));
          addExpr(f, verdict(NF_DROP));
          putRule(b, table_, chain, f);
        }
        // ip daddr . meta l4proto . th dport @masq4 meta mark set meta mark | MARK
        auto* r = nftnl_rule_alloc();
        loadServiceKey(r, family);
        addExpr(r, lookup(v6 ? "masq6" : "masq4", NFT_REG32_00, false));
        addExpr(r, meta(NFT_META_MARK, NFT_REG_1));
        addExpr(r, bitwise(NFT_REG_1, ~mark_, mark_));
        addExpr(r, metaSet(NFT_META_MARK, NFT_REG_1));
        putRule(b, table_, chain, r);
        for (const auto& c : clusterCidrs_) {
          if (c.family != family) continue;
          // ip saddr != CIDR ip daddr . meta l4proto . th dport @masqx4 meta mark set meta mark | MARK
          uint32_t len = v6 ? 16 : 4;
          uint8_t mask[16] = {}, base[16] = {};
          for (int i = 0; i < c.length; ++i) mask[i / 8] |= uint8_t(0x80 >> (i % 8));
          for (uint32_t i = 0; i < len; ++i) base[i] = c.addr[i] & mask[i];
          auto* x = nftnl_rule_alloc();
          loadServiceKey(x, family);  // the key sits in registers 0 to 5; the source goes to 3
          addExpr(x, payload(NFT_PAYLOAD_NETWORK_HEADER, v6 ? 8 : 12, len, NFT_REG_3));
          addExpr(x, bitwiseMask(NFT_REG_3, mask, len));
          addExpr(x, cmpNeq(NFT_REG_3, base, len));
          addExpr(x, lookup(v6 ? "masqx6" : "masqx4", NFT_REG32_00, false));
          addExpr(x, meta(NFT_META_MARK, NFT_REG_1));
          addExpr(x, bitwise(NFT_REG_1, ~mark_, mark_));
          addExpr(x, metaSet(NFT_META_MARK, NFT_REG_1));
          putRule(b, table_, chain, x);
        }
      }
    }
    {
      // meta mark & MARK == MARK masquerade
      auto* r = nftnl_rule_alloc();
      addExpr(r, meta(NFT_META_MARK, NFT_REG_1));
      addExpr(r, bitwise(NFT_REG_1, mark_, 0));
      addExpr(r, cmpEq(NFT_REG_1, &mark_, 4));
      addExpr(r, nftnl_expr_alloc("masq"));
      putRule(b, table_, "masq", r);
    }
    for (int family : {AF_INET, AF_INET6}) {
      // ip daddr . meta l4proto . th dport . ip saddr @loop4 masquerade (after IPVS: the
      // endpoint reaching itself through its service)
      bool v6 = family == AF_INET6;
      auto* r = nftnl_rule_alloc();
      loadServiceKey(r, family);
      addExpr(r, payload(NFT_PAYLOAD_NETWORK_HEADER, v6 ? 8 : 12, v6 ? 16 : 4, v6 ? NFT_REG32_06 : NFT_REG32_03));
      addExpr(r, lookup(v6 ? "loop6" : "loop4", NFT_REG32_00, false));
      addExpr(r, nftnl_expr_alloc("masq"));
      putRule(b, table_, "masq", r);
    }
    current_.clear();
    loopRefs_.clear();
  }
  std::set<std::vector<uint8_t>> haveVips, wantVips;
  for (const auto& s : current_)
    if (s.vip) haveVips.insert(vipKey(s));
  for (const auto& s : services)
    if (s.vip) wantVips.insert(vipKey(s));
  ElemKeys add, del;
  for (const auto& v : wantVips)
    if (!haveVips.contains(v)) add[v.size() == 16 ? kVips6 : kVips4].push_back({v, {}});
  for (const auto& v : haveVips)
    if (!wantVips.contains(v)) del[v.size() == 16 ? kVips6 : kVips4].push_back({v, {}});
  std::map<std::vector<uint8_t>, uint32_t> loops;
  for (const auto& s : services) {
    for (const auto& ep : s.hairpin) ++loops[loopKey(s, ep)];
    if (!current_.contains(s)) ownElems(s, add);
  }
  for (const auto& s : current_)
    if (!services.contains(s)) ownElems(s, del);
  // A service whose flags change is a different NftService: handled above as one delete
  // and one add of the same key; drop such pairs so the set is untouched.
  cancelPairs(add, del);
  for (const auto& [k, n] : loops)
    if (!loopRefs_.contains(k)) add[k.size() == 40 ? kLoop6 : kLoop4].push_back({k, {}});
  for (const auto& [k, n] : loopRefs_)
    if (!loops.contains(k)) del[k.size() == 40 ? kLoop6 : kLoop4].push_back({k, {}});
  putElemChanges(b, table_, add, del);
  if (b.count() == 0) return {};
  auto r = sendBatch(b, table_);
  if (!r) {
    built_ = false;  // rebuild the whole table next time
    return r;
  }
  built_ = true;
  current_ = services;
  loopRefs_ = std::move(loops);
  return {};
}

namespace {
// The entry of `current` for the service of `s` (any flags), or end.
std::set<NftService>::const_iterator findService(const std::set<NftService>& current, const NftService& s) {
  // The smallest service of that key: every other field at its least value. `current`
  // holds at most one entry per key, so it is the one at the lower bound, if any.
  NftService probe;
  probe.family = s.family;
  probe.addr = s.addr;
  probe.protocol = s.protocol;
  probe.port = s.port;
  probe.vip = false;
  auto it = current.lower_bound(probe);
  if (it != current.end() && it->family == s.family && it->addr == s.addr && it->protocol == s.protocol &&
      it->port == s.port)
    return it;
  return current.end();
}

// Whether any service of `current` has the VIP of `s` (as a VIP, not a node address).
bool hasVip(const std::set<NftService>& current, const NftService& s) {
  NftService probe;
  probe.family = s.family;
  probe.addr = s.addr;
  for (auto it = current.lower_bound(probe); it != current.end() && it->family == s.family && it->addr == s.addr; ++it)
    if (it->vip) return true;
  return false;
}
}  // namespace

Result<void> NftProxyTable::update(std::span<const NftChange> changes) {
  if (!built_) {
    std::set<NftService> all = current_;
    for (const auto& c : changes) {
      if (auto it = findService(all, c.service); it != all.end()) all.erase(it);
      if (c.present) all.insert(c.service);
    }
    return sync(all, false);
  }
  ElemKeys add, del;
  std::map<std::vector<uint8_t>, std::pair<NftService, bool>> vipBefore;  // touched VIPs: had one before
  std::map<std::vector<uint8_t>, int64_t> loopDelta;                     // touched loop elements
  for (const auto& c : changes) {
    const NftService& s = c.service;
    auto key = vipKey(s);
    if (!vipBefore.contains(key)) vipBefore.emplace(key, std::pair{s, hasVip(current_, s)});
    auto it = findService(current_, s);
    if (it != current_.end()) {
      ownElems(*it, del);
      for (const auto& ep : it->hairpin) --loopDelta[loopKey(*it, ep)];
      current_.erase(it);
    }
    if (c.present) {
      ownElems(s, add);
      for (const auto& ep : s.hairpin) ++loopDelta[loopKey(s, ep)];
      current_.insert(s);
    }
  }
  cancelPairs(add, del);
  for (const auto& [k, d] : loopDelta) {
    if (d == 0) continue;
    auto& n = loopRefs_[k];
    bool before = n > 0;
    n = static_cast<uint32_t>(int64_t(n) + d);
    if (!before && n > 0) add[k.size() == 40 ? kLoop6 : kLoop4].push_back({k, {}});
    if (before && n == 0) del[k.size() == 40 ? kLoop6 : kLoop4].push_back({k, {}});
    if (n == 0) loopRefs_.erase(k);
  }
  for (const auto& [key, before] : vipBefore) {
    bool after = hasVip(current_, before.first);
    int v6 = before.first.family == AF_INET6;
    if (before.second && !after) del[kVips4 + v6].push_back({key, {}});
    if (!before.second && after) add[kVips4 + v6].push_back({key, {}});
  }
  Batch b;
  putElemChanges(b, table_, add, del);
  if (b.count() == 0) return {};
  auto r = sendBatch(b, table_);
  if (!r) built_ = false;  // current_ holds what is wanted: the next call rebuilds from it
  return r;
}

Result<void> NftProxyTable::remove() {
  Batch b;
  putTableReset(b, table_, false);
  built_ = false;
  current_.clear();
  return sendBatch(b, table_);
}

}  // namespace nodeagent::netfilter
