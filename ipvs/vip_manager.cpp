#include "ipvs/vip_manager.h"

#include <net/if.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <linux/if_addr.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "common/files.h"
#include "common/log.h"

namespace nodeagent::ipvs {

namespace {
Result<void> nlFail(int err, const std::string& what) {
  return failInvalid(what + ": " + nl_geterror(err));
}
}  // namespace

VipManager::~VipManager() {
  if (sock_) nl_socket_free(sock_);
}

Result<void> VipManager::ensureSocket() {
  if (sock_) return {};
  sock_ = nl_socket_alloc();
  if (!sock_) return failErrno(ENOMEM, "allocate rtnetlink socket");
  if (int err = nl_connect(sock_, NETLINK_ROUTE); err < 0) {
    nl_socket_free(sock_);
    sock_ = nullptr;
    return nlFail(err, "connect rtnetlink");
  }
  return {};
}

// ip link add nodeagent-ipvs0 type dummy && ip link set nodeagent-ipvs0 up
Result<void> VipManager::ensureInterface() {
  rtnl_link* link = nullptr;
  int err = rtnl_link_get_kernel(sock_, 0, ifname_.c_str(), &link);
  bool ours = pathExists(stateFile_);
  if (err == 0) {
    ifindex_ = rtnl_link_get_ifindex(link);
    const char* type = rtnl_link_get_type(link);
    bool dummy = type && std::string(type) == "dummy";
    rtnl_link_put(link);
    if (!ours || !dummy)
      return failInvalid("interface " + ifname_ + " exists but was not created by nodeagent: not touching it");
    return {};
  }
  // Record before creating: a crash in between must not leave an unowned interface.
  if (auto r = writeFileAtomic(stateFile_, ifname_ + "\n"); !r) return fail(r.error());
  rtnl_link* nl = rtnl_link_alloc();
  rtnl_link_set_name(nl, ifname_.c_str());
  if (int e = rtnl_link_set_type(nl, "dummy"); e < 0) {
    rtnl_link_put(nl);
    return nlFail(e, "set link type dummy (is the dummy module available?)");
  }
  rtnl_link_set_flags(nl, IFF_UP);
  err = rtnl_link_add(sock_, nl, NLM_F_CREATE | NLM_F_EXCL);
  rtnl_link_put(nl);
  if (err < 0) return nlFail(err, "create dummy interface " + ifname_);
  ifindex_ = static_cast<int>(if_nametoindex(ifname_.c_str()));
  if (ifindex_ == 0) return failErrno("look up " + ifname_);
  log::get("ipvs")->info("created dummy interface {} (ifindex {}) for service VIPs", ifname_, ifindex_);
  bound_.clear();
  return {};
}

Result<void> VipManager::readAddresses() {
  nl_cache* cache = nullptr;
  if (int err = rtnl_addr_alloc_cache(sock_, &cache); err < 0) return nlFail(err, "list addresses");
  // Collected apart and compared: a resync that finds what it expects leaves bound_ (and
  // the heap) alone instead of rebuilding it among the cache's freed objects.
  std::vector<Address> found;
  for (nl_object* o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
    auto* a = reinterpret_cast<rtnl_addr*>(o);
    if (rtnl_addr_get_ifindex(a) != ifindex_) continue;
    nl_addr* local = rtnl_addr_get_local(a);
    if (!local) continue;
    Address addr;
    addr.family = static_cast<uint8_t>(nl_addr_get_family(local));
    if (addr.family != AF_INET && addr.family != AF_INET6) continue;
    std::memcpy(addr.bytes.data(), nl_addr_get_binary_addr(local), std::min<unsigned>(16, nl_addr_get_len(local)));
    found.push_back(addr);
  }
  nl_cache_free(cache);
  std::sort(found.begin(), found.end());
  if (!std::equal(found.begin(), found.end(), bound_.begin(), bound_.end())) bound_ = std::set<Address>(found.begin(), found.end());
  return {};
}

// ip addr add|del VIP/32 dev nodeagent-ipvs0 [nodad]
Result<void> VipManager::changeAddress(const Address& a, bool add) {
  rtnl_addr* ra = rtnl_addr_alloc();
  nl_addr* local = nl_addr_build(a.family, a.bytes.data(), a.isV6() ? 16 : 4);
  rtnl_addr_set_ifindex(ra, ifindex_);
  rtnl_addr_set_local(ra, local);
  rtnl_addr_set_prefixlen(ra, a.isV6() ? 128 : 32);
  if (a.isV6()) rtnl_addr_set_flags(ra, IFA_F_NODAD);
  int err = add ? rtnl_addr_add(sock_, ra, NLM_F_REPLACE) : rtnl_addr_delete(sock_, ra, 0);
  nl_addr_put(local);
  rtnl_addr_put(ra);
  if (err < 0 && !(add && err == -NLE_EXIST) && !(!add && (err == -NLE_NOADDR || err == -NLE_OBJ_NOTFOUND)))
    return nlFail(err, std::string(add ? "add " : "delete ") + a.toString() + " on " + ifname_);
  return {};
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
  rtnl_link* link = nullptr;
  if (rtnl_link_get_kernel(sock_, 0, ifname_.c_str(), &link) == 0) {
    int err = rtnl_link_delete(sock_, link);
    rtnl_link_put(link);
    if (err < 0) return nlFail(err, "delete " + ifname_);
  }
  ifindex_ = 0;
  bound_.clear();
  (void)::unlink(stateFile_.c_str());
  return {};
}

}  // namespace nodeagent::ipvs
