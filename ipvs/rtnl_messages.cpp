#include "ipvs/rtnl_messages.h"

#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <cstring>
#include <memory>

#include "common/netlink_writer.h"

namespace nodeagent::ipvs::rtnl {

namespace {

// A request with its family header (ifinfomsg, ifaddrmsg).
template <class FamilyHeader>
NetlinkWriter start(uint16_t type, uint16_t flags, const FamilyHeader& fh) {
  NetlinkWriter w(type, static_cast<uint16_t>(flags | NLM_F_REQUEST));
  w.header(fh);
  return w;
}

const AttrPolicy kLinkPolicy("rtnetlink link", {
    {.type = IFLA_IFNAME, .kind = AttrKind::kString, .maxLen = IFNAMSIZ, .name = "IFLA_IFNAME"},
    {.type = IFLA_LINKINFO, .kind = AttrKind::kNested, .name = "IFLA_LINKINFO"},
    {.type = IFLA_MTU, .kind = AttrKind::kU32, .name = "IFLA_MTU"},
});
const AttrPolicy kLinkInfoPolicy("rtnetlink link info", {
    {.type = IFLA_INFO_KIND, .kind = AttrKind::kString, .maxLen = 64, .name = "IFLA_INFO_KIND"},
    {.type = IFLA_INFO_DATA, .kind = AttrKind::kNested, .name = "IFLA_INFO_DATA"},
});
const AttrPolicy kAddrPolicy("rtnetlink address", {
    {.type = IFA_ADDRESS, .kind = AttrKind::kBinary, .minLen = 4, .maxLen = 16, .name = "IFA_ADDRESS"},
    {.type = IFA_LOCAL, .kind = AttrKind::kBinary, .minLen = 4, .maxLen = 16, .name = "IFA_LOCAL"},
    {.type = IFA_LABEL, .kind = AttrKind::kString, .maxLen = IFNAMSIZ, .name = "IFA_LABEL"},
    {.type = IFA_FLAGS, .kind = AttrKind::kU32, .name = "IFA_FLAGS"},
});

}  // namespace

Message buildGetLink(const std::string& name) {
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  auto m = start(RTM_GETLINK, 0, ifi);
  m.putString(IFLA_IFNAME, name);
  return std::move(m).finish();
}

Message buildNewDummy(const std::string& name) {
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  ifi.ifi_flags = IFF_UP;
  ifi.ifi_change = IFF_UP;
  auto m = start(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, ifi);
  m.putString(IFLA_IFNAME, name);
  nlattr* info = m.beginNest(IFLA_LINKINFO);
  m.putString(IFLA_INFO_KIND, "dummy");
  m.endNest(info);
  return std::move(m).finish();
}

Message buildDelLink(int ifindex) {
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  ifi.ifi_index = ifindex;
  return start(RTM_DELLINK, 0, ifi).finish();
}

Message buildAddress(bool add, int ifindex, const Address& a) {
  ifaddrmsg ifa{};
  ifa.ifa_family = a.family;
  ifa.ifa_prefixlen = a.isV6() ? 128 : 32;
  // No duplicate address detection for a VIP: it is on every node by design.
  ifa.ifa_flags = a.isV6() ? IFA_F_NODAD : 0;
  ifa.ifa_scope = RT_SCOPE_UNIVERSE;
  ifa.ifa_index = static_cast<uint32_t>(ifindex);
  auto m = start(add ? RTM_NEWADDR : RTM_DELADDR, add ? NLM_F_CREATE | NLM_F_REPLACE : 0, ifa);
  size_t len = a.isV6() ? 16 : 4;
  m.put(IFA_LOCAL, a.bytes.data(), len);
  m.put(IFA_ADDRESS, a.bytes.data(), len);
  return std::move(m).finish();
}

Message buildDumpAddresses() {
  ifaddrmsg ifa{};
  ifa.ifa_family = AF_UNSPEC;
  return start(RTM_GETADDR, NLM_F_DUMP, ifa).finish();
}

Result<LinkInfo> parseLinkMessage(Bytes bytes) {
  auto m = netlinkMessage(bytes, sizeof(ifinfomsg), "rtnetlink link reply");
  if (!m) return fail(m.error());
  if (netlinkHeader(*m).nlmsg_type != RTM_NEWLINK)
    return failInvalid("rtnetlink link reply of type " + std::to_string(netlinkHeader(*m).nlmsg_type));
  ifinfomsg ifi;
  std::memcpy(&ifi, netlinkFamilyHeader(*m, sizeof ifi).data(), sizeof ifi);
  auto tb = parseAttrs(netlinkAttributes(*m, sizeof ifi), kLinkPolicy);
  if (!tb) return fail(tb.error());
  if (ifi.ifi_index <= 0) return failInvalid("rtnetlink link reply with interface index " + std::to_string(ifi.ifi_index));
  LinkInfo out;
  out.ifindex = ifi.ifi_index;
  out.name = tb->str(IFLA_IFNAME);
  if (tb->has(IFLA_LINKINFO)) {
    auto info = parseAttrs(tb->payload(IFLA_LINKINFO), kLinkInfoPolicy);
    if (!info) return fail(info.error());
    out.kind = info->str(IFLA_INFO_KIND);
  }
  return out;
}

Result<AddressInfo> parseAddressMessage(Bytes bytes) {
  auto m = netlinkMessage(bytes, sizeof(ifaddrmsg), "rtnetlink address reply");
  if (!m) return fail(m.error());
  if (netlinkHeader(*m).nlmsg_type != RTM_NEWADDR)
    return failInvalid("rtnetlink address reply of type " + std::to_string(netlinkHeader(*m).nlmsg_type));
  ifaddrmsg ifa;
  std::memcpy(&ifa, netlinkFamilyHeader(*m, sizeof ifa).data(), sizeof ifa);
  auto tb = parseAttrs(netlinkAttributes(*m, sizeof ifa), kAddrPolicy);
  if (!tb) return fail(tb.error());
  if (ifa.ifa_family != AF_INET && ifa.ifa_family != AF_INET6)
    return failInvalid("rtnetlink address of family " + std::to_string(ifa.ifa_family));
  uint16_t type = tb->has(IFA_LOCAL) ? IFA_LOCAL : IFA_ADDRESS;
  Bytes b = tb->payload(type);
  size_t need = ifa.ifa_family == AF_INET ? 4 : 16;
  if (b.size() != need)
    return failInvalid("rtnetlink address of family " + std::to_string(ifa.ifa_family) + " with " +
                       std::to_string(b.size()) + " address bytes");
  AddressInfo out;
  out.ifindex = static_cast<int>(ifa.ifa_index);
  out.address.family = ifa.ifa_family;
  std::memcpy(out.address.bytes.data(), b.data(), need);
  return out;
}

}  // namespace nodeagent::ipvs::rtnl
