#include "ipvs/types.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <charconv>
#include <cstring>

#include "common/ip_address.h"

namespace nodeagent::ipvs {

Result<Address> Address::parse(std::string_view text) {
  Address a;
  int family = parseIpLiteral(text, a.bytes);
  if (family == 0) return failInvalid("\"" + std::string(text) + "\" is not an IPv4 or IPv6 address");
  a.family = static_cast<uint8_t>(family);
  return a;
}

std::string Address::toString() const { return formatIpLiteral(family, bytes); }

bool Address::isV6() const { return family == AF_INET6; }

Result<Cidr> Cidr::parse(std::string_view text) {
  auto slash = text.find('/');
  auto addr = Address::parse(text.substr(0, slash));
  if (!addr) return fail(addr.error());
  int max = addr->isV6() ? 128 : 32;
  int prefix = max;
  if (slash != std::string_view::npos) {
    auto p = text.substr(slash + 1);
    auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), prefix);
    if (ec != std::errc() || ptr != p.data() + p.size() || prefix < 0 || prefix > max)
      return failInvalid("\"" + std::string(text) + "\" has a bad prefix length");
  }
  return Cidr{*addr, prefix};
}

bool Cidr::contains(const Address& a) const {
  if (a.family != base.family) return false;
  int full = prefix / 8, rest = prefix % 8;
  if (std::memcmp(a.bytes.data(), base.bytes.data(), full) != 0) return false;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a.bytes[full] & mask) == (base.bytes[full] & mask);
}

std::string Cidr::toString() const { return base.toString() + "/" + std::to_string(prefix); }

std::string_view protocolName(Protocol p) {
  switch (p) {
    case Protocol::kTcp: return "TCP";
    case Protocol::kUdp: return "UDP";
    case Protocol::kSctp: return "SCTP";
  }
  return "?";
}

Result<Protocol> parseProtocol(std::string_view name) {
  if (name == "tcp" || name == "TCP") return Protocol::kTcp;
  if (name == "udp" || name == "UDP") return Protocol::kUdp;
  if (name == "sctp" || name == "SCTP") return Protocol::kSctp;
  return failInvalid("unknown protocol \"" + std::string(name) + "\" (tcp, udp, sctp)");
}

namespace {
std::string hostPort(const Address& a, uint16_t port) {
  return a.isV6() ? "[" + a.toString() + "]:" + std::to_string(port) : a.toString() + ":" + std::to_string(port);
}
}  // namespace

std::string ServiceKey::toString() const {
  if (fwmark != 0) return "FWM " + std::to_string(fwmark) + (family == AF_INET6 ? " (inet6)" : " (inet)");
  return std::string(protocolName(protocol)) + " " + hostPort(address, port);
}

Result<ServiceKey> parseServiceKey(std::string_view text) {
  auto sp = text.find(' ');
  if (sp == std::string_view::npos) return failInvalid("bad service key \"" + std::string(text) + "\"");
  auto proto = text.substr(0, sp), rest = text.substr(sp + 1);
  ServiceKey k;
  if (proto == "FWM") {
    auto sp2 = rest.find(' ');
    auto num = rest.substr(0, sp2);
    auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), k.fwmark);
    if (ec != std::errc() || k.fwmark == 0) return failInvalid("bad fwmark in \"" + std::string(text) + "\"");
    k.family = rest.ends_with("(inet6)") ? AF_INET6 : AF_INET;
    return k;
  }
  auto pr = parseProtocol(proto);
  if (!pr) return fail(pr.error());
  k.protocol = *pr;
  auto colon = rest.rfind(':');
  if (colon == std::string_view::npos) return failInvalid("bad service key \"" + std::string(text) + "\"");
  auto host = rest.substr(0, colon);
  if (host.starts_with('[') && host.ends_with(']')) host = host.substr(1, host.size() - 2);
  auto addr = Address::parse(host);
  if (!addr) return fail(addr.error());
  k.address = *addr;
  k.family = addr->family;
  auto portText = rest.substr(colon + 1);
  unsigned port = 0;
  auto [p, ec] = std::from_chars(portText.data(), portText.data() + portText.size(), port);
  if (ec != std::errc() || port > 65535) return failInvalid("bad port in \"" + std::string(text) + "\"");
  k.port = static_cast<uint16_t>(port);
  return k;
}

std::string_view forwardName(Forward f) {
  switch (f) {
    case Forward::kMasq: return "Masq";
    case Forward::kLocal: return "Local";
    case Forward::kTunnel: return "Tunnel";
    case Forward::kDirect: return "Route";
  }
  return "?";
}

std::string DestKey::toString() const { return hostPort(address, port); }

uint32_t effectiveNetmask(const Service& s) {
  if (s.netmask != 0) return s.netmask;
  return s.key.family == AF_INET6 ? 128 : 0xffffffffu;
}

}  // namespace nodeagent::ipvs
