#include "ipvs/netlink_service_table.h"

#include <linux/ip_vs.h>

#include <cstring>

#include "ipvs/messages.h"

namespace nodeagent::ipvs {

namespace {

std::string serviceFlag(const ServiceKey& k) {
  if (k.fwmark) return "-f " + std::to_string(k.fwmark);
  const char* f = k.protocol == Protocol::kUdp ? "-u " : k.protocol == Protocol::kSctp ? "--sctp-service " : "-t ";
  std::string hp = k.address.isV6() ? "[" + k.address.toString() + "]:" + std::to_string(k.port)
                                    : k.address.toString() + ":" + std::to_string(k.port);
  return f + hp;
}

std::string destArgs(const Destination& d, bool full) {
  std::string s = " -r " + d.key.toString();
  if (!full) return s;
  static const char* kFwd[] = {" -m", " -m", " -i", " -g"};  // Local shows as masq in ipvsadm
  s += kFwd[static_cast<unsigned>(d.forward) & 3];
  s += " -w " + std::to_string(d.weight);
  if (d.upperThreshold) s += " -x " + std::to_string(d.upperThreshold);
  if (d.lowerThreshold) s += " -y " + std::to_string(d.lowerThreshold);
  return s;
}

std::string serviceArgs(const Service& s) {
  std::string r = serviceFlag(s.key) + " -s " + s.scheduler;
  if (s.flags & IP_VS_SVC_F_PERSISTENT) r += " -p " + std::to_string(s.timeout);
  return r;
}

}  // namespace

std::string Op::toString() const {
  switch (type) {
    case Type::kAddService: return "ipvsadm -A " + serviceArgs(service);
    case Type::kEditService: return "ipvsadm -E " + serviceArgs(service);
    case Type::kDelService: return "ipvsadm -D " + serviceFlag(service.key);
    case Type::kAddDest: return "ipvsadm -a " + serviceFlag(service.key) + destArgs(dest, true);
    case Type::kEditDest: return "ipvsadm -e " + serviceFlag(service.key) + destArgs(dest, true);
    case Type::kDelDest: return "ipvsadm -d " + serviceFlag(service.key) + destArgs(dest, false);
  }
  return "?";
}

OpResult opResultFor(const Op& op, int error, const std::string& kernelMessage) {
  using T = Op::Type;
  bool add = op.type == T::kAddService || op.type == T::kAddDest;
  bool del = op.type == T::kDelService || op.type == T::kDelDest;
  if (error == 0 || (add && error == EEXIST) || (del && (error == ENOENT || error == ESRCH))) return {};
  OpResult r;
  r.error = error;
  r.message = op.toString() + ": " + std::strerror(error);
  if (!kernelMessage.empty()) r.message += " (" + kernelMessage + ")";
  return r;
}

Result<std::unique_ptr<NetlinkServiceTable>> NetlinkServiceTable::open(size_t maxBatch) {
  auto sock = NetlinkSocket::open(NETLINK_GENERIC, {.maxBatch = maxBatch});
  if (!sock) return fail(sock.error());
  // Resolve the family once, through the generic netlink controller.
  int family = -1;
  auto r = sock->query(buildGetFamily(IPVS_GENL_NAME), [&](Bytes m) -> Result<void> {
    auto id = parseFamilyMessage(m, IPVS_GENL_NAME);
    if (!id) return fail(id.error());
    family = *id;
    return {};
  });
  if (!r && r.error().errnoValue() == ENOENT)
    return failErrno(ENOENT, "resolve generic netlink family \"IPVS\" (is the ip_vs module loaded?)");
  if (!r) return fail(r.error().wrap("resolve generic netlink family \"IPVS\""));
  if (family < 0) return failErrno(EBADMSG, "resolve generic netlink family \"IPVS\": no reply");
  return std::unique_ptr<NetlinkServiceTable>(new NetlinkServiceTable(std::move(*sock), static_cast<uint16_t>(family)));
}

Result<std::vector<ServiceState>> NetlinkServiceTable::list(bool withDests) {
  std::vector<ServiceState> out;
  auto r = forEach(withDests, [&](ServiceState&& s) -> Result<void> {
    out.push_back(std::move(s));
    return {};
  });
  if (!r) return fail(r.error());
  return out;
}

Result<void> NetlinkServiceTable::forEach(bool withDests, const std::function<Result<void>(ServiceState&&)>& fn) {
  // The destination dumps need the socket, so the service dump completes first; it holds
  // services only (about 100 bytes each), destinations are read one service at a time.
  std::vector<ServiceState> services;
  auto r = sock_.dump(buildGetServices(family_), [&](Bytes h) -> Result<void> {
    auto s = parseServiceMessage(h);
    if (!s) return fail(s.error());
    services.push_back(std::move(*s));
    return {};
  });
  if (!r) return fail(r.error().wrap("list IPVS services"));
  for (auto& s : services) {
    if (withDests) {
      auto d = listDests(s.service.key);
      if (!d) {
        // A service deleted by someone else between the two dumps is skipped.
        if (d.error().errnoValue() == ESRCH || d.error().errnoValue() == ENOENT) continue;
        return fail(d.error());
      }
      s.dests = std::move(*d);
    }
    if (auto e = fn(std::move(s)); !e) return e;
    s = ServiceState{};
  }
  return {};
}

Result<std::vector<DestinationState>> NetlinkServiceTable::listDests(const ServiceKey& key) {
  std::vector<DestinationState> out;
  auto r = sock_.dump(buildGetDests(family_, key), [&](Bytes h) -> Result<void> {
    auto d = parseDestMessage(h, key.family);
    if (!d) return fail(d.error());
    out.push_back(std::move(*d));
    return {};
  });
  if (!r) return fail(r.error().wrap("list destinations of " + key.toString()));
  return out;
}

Result<std::vector<OpResult>> NetlinkServiceTable::apply(std::span<const Op> ops) {
  std::vector<Message> msgs;
  msgs.reserve(ops.size());
  for (const auto& op : ops) {
    switch (op.type) {
      case Op::Type::kAddService: msgs.push_back(buildAddService(family_, op.service)); break;
      case Op::Type::kEditService: msgs.push_back(buildEditService(family_, op.service)); break;
      case Op::Type::kDelService: msgs.push_back(buildDelService(family_, op.service.key)); break;
      case Op::Type::kAddDest: msgs.push_back(buildAddDest(family_, op.service.key, op.dest)); break;
      case Op::Type::kEditDest: msgs.push_back(buildEditDest(family_, op.service.key, op.dest)); break;
      case Op::Type::kDelDest: msgs.push_back(buildDelDest(family_, op.service.key, op.dest.key)); break;
    }
  }
  auto acks = sock_.transact(msgs);
  if (!acks) return fail(acks.error().wrap("apply IPVS batch"));
  std::vector<OpResult> out;
  out.reserve(ops.size());
  for (size_t i = 0; i < ops.size(); ++i) out.push_back(opResultFor(ops[i], (*acks)[i].error, (*acks)[i].message));
  return out;
}

Result<Timeouts> NetlinkServiceTable::timeouts() {
  Timeouts t;
  auto r = sock_.query(buildGetTimeouts(family_), [&](Bytes h) -> Result<void> {
    auto p = parseTimeoutsMessage(h);
    if (!p) return fail(p.error());
    t = *p;
    return {};
  });
  if (!r) return fail(r.error().wrap("read IPVS timeouts"));
  return t;
}

Result<void> NetlinkServiceTable::setTimeouts(const Timeouts& t) {
  std::vector<Message> msgs{buildSetTimeouts(family_, t)};
  auto acks = sock_.transact(msgs);
  if (!acks) return fail(acks.error().wrap("set IPVS timeouts"));
  if ((*acks)[0].error) return failErrno((*acks)[0].error, "set IPVS timeouts " + (*acks)[0].message);
  return {};
}

}  // namespace nodeagent::ipvs
