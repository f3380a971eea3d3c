#include "ipvs/vip_manager.h"

#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "common/files.h"
#include "common/log.h"
#include "ipvs/rtnl_messages.h"

namespace nodeagent::ipvs {

Result<void> VipManager::ensureSocket() {
  if (sock_) return {};
  auto s = NetlinkSocket::open(NETLINK_ROUTE);
  if (!s) return fail(s.error().wrap("open rtnetlink socket"));
  sock_ = std::make_unique<NetlinkSocket>(std::move(*s));
  return {};
}

Result<void> VipManager::request(std::vector<uint8_t> msg, const std::string& what) {
  std::vector<std::vector<uint8_t>> one{std::move(msg)};
  auto acks = sock_->transact(one);
  if (!acks) return fail(acks.error().wrap(what));
  const auto& ack = (*acks)[0];
  if (ack.error) return failErrno(ack.error, what + (ack.message.empty() ? "" : " (" + ack.message + ")"));
  return {};
}

Result<VipManager::Link> VipManager::findLink() {
  Link out;
  auto r = sock_->query(rtnl::buildGetLink(ifname_), [&](Bytes m) -> Result<void> {
    auto link = rtnl::parseLinkMessage(m);
    if (!link) return fail(link.error());
    out.ifindex = link->ifindex;
    out.kind = link->kind;
    return {};
  });
  if (!r) return fail(r.error());
  if (out.ifindex == 0) return failErrno(ENODEV, "look up " + ifname_ + ": no reply");
  return out;
}

// ip link add nodeagent-ipvs0 type dummy && ip link set nodeagent-ipvs0 up
Result<void> VipManager::ensureInterface() {
  bool ours = pathExists(stateFile_);
  auto link = findLink();
  if (link) {
    ifindex_ = link->ifindex;
    if (!ours || link->kind != "dummy")
      return failInvalid("interface " + ifname_ + " exists but was not created by nodeagent: not touching it");
    return {};
  }
  if (link.error().errnoValue() != ENODEV) return fail(link.error().wrap("look up " + ifname_));
  // Record before creating: a crash in between must not leave an unowned interface.
  if (auto r = writeFileAtomic(stateFile_, ifname_ + "\n"); !r) return fail(r.error());
  if (auto r = request(rtnl::buildNewDummy(ifname_), "create dummy interface " + ifname_ + " (is the dummy module available?)"); !r)
    return r;
  auto created = findLink();
  if (!created) return fail(created.error().wrap("look up " + ifname_ + " after creating it"));
  ifindex_ = created->ifindex;
  log::get("ipvs")->info("created dummy interface {} (ifindex {}) for service VIPs", ifname_, ifindex_);
  bound_.clear();
  return {};
}

Result<void> VipManager::readAddresses() {
  // Collected apart and compared: a resync that finds what it expects leaves bound_ alone.
  std::vector<Address> found;
  auto r = sock_->dump(rtnl::buildDumpAddresses(), [&](Bytes m) -> Result<void> {
    auto a = rtnl::parseAddressMessage(m);
    if (!a) return fail(a.error());
    if (a->ifindex == ifindex_) found.push_back(a->address);
    return {};
  });
  if (!r) return fail(r.error().wrap("list addresses"));
  std::sort(found.begin(), found.end());
  if (!std::equal(found.begin(), found.end(), bound_.begin(), bound_.end())) bound_ = std::set<Address>(found.begin(), found.end());
  return {};
}

// ip addr add|del VIP/32 dev nodeagent-ipvs0 [nodad]
Result<void> VipManager::changeAddress(const Address& a, bool add) {
  auto r = request(rtnl::buildAddress(add, ifindex_, a), std::string(add ? "add " : "delete ") + a.toString() + " on " + ifname_);
  if (!r) {
    int e = r.error().errnoValue();
    if (add && e == EEXIST) return {};
    if (!add && (e == EADDRNOTAVAIL || e == ENOENT || e == ESRCH)) return {};  // already gone
  }
  return r;
}

Result<void> VipManager::sync(const std::set<Address>& vips, bool fullRead) {
  if (auto r = ensureSocket(); !r) return r;
  if (ifindex_ == 0 || fullRead) {
    if (auto r = ensureInterface(); !r) {
      ifindex_ = 0;
      return r;
    }
    if (auto r = readAddresses(); !r) return r;
  }
  for (const auto& a : vips) {
    if (bound_.contains(a)) continue;
    if (auto r = changeAddress(a, true); !r) {
      ifindex_ = 0;  // look again next time (the interface may have gone)
      return r;
    }
    bound_.insert(a);
  }
  for (auto it = bound_.begin(); it != bound_.end();) {
    if (vips.contains(*it)) {
      ++it;
      continue;
    }
    if (auto r = changeAddress(*it, false); !r) return r;
    it = bound_.erase(it);
  }
  return {};
}

Result<void> VipManager::update(std::span<const std::pair<Address, bool>> changes) {
  if (auto r = ensureSocket(); !r) return r;
  if (ifindex_ == 0) {
    if (auto r = ensureInterface(); !r) return r;
    if (auto r = readAddresses(); !r) return r;
  }
  for (const auto& [a, want] : changes) {
    if (want == bound_.contains(a)) continue;
    if (auto r = changeAddress(a, want); !r) {
      ifindex_ = 0;  // look again next time (the interface may have gone)
      return r;
    }
    if (want)
      bound_.insert(a);
    else
      bound_.erase(a);
  }
  return {};
}

Result<void> VipManager::remove() {
  if (!pathExists(stateFile_)) return {};
  if (auto r = ensureSocket(); !r) return r;
  auto link = findLink();
  if (link) {
    if (auto r = request(rtnl::buildDelLink(link->ifindex), "delete " + ifname_); !r && r.error().errnoValue() != ENODEV)
      return r;
  } else if (link.error().errnoValue() != ENODEV) {
    return fail(link.error().wrap("look up " + ifname_));
  }
  ifindex_ = 0;
  bound_.clear();
  (void)::unlink(stateFile_.c_str());
  return {};
}

}  // namespace nodeagent::ipvs
