// The IPVS service model: virtual services, their destinations, and the kernel's view of
// both (with connection counts and stats). Pure data, shared by the netlink client, the
// planner and the module.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace nodeagent::ipvs {

// An IPv4 or IPv6 address in network byte order (IPv4 uses the first 4 bytes).
struct Address {
  uint8_t family = 0;  // AF_INET or AF_INET6; 0 for "none" (fwmark services)
  std::array<uint8_t, 16> bytes{};
  [[nodiscard]] static Result<Address> parse(std::string_view text);
  std::string toString() const;
  bool isV6() const;
  auto operator<=>(const Address&) const = default;
};

// An address prefix, for owned CIDRs.
struct Cidr {
  Address base;
  int prefix = 0;
  [[nodiscard]] static Result<Cidr> parse(std::string_view text);
  bool contains(const Address& a) const;
  std::string toString() const;
  bool operator==(const Cidr&) const = default;
};

enum class Protocol : uint16_t { kTcp = 6, kUdp = 17, kSctp = 132 };
std::string_view protocolName(Protocol p);
[[nodiscard]] Result<Protocol> parseProtocol(std::string_view name);  // tcp, udp, sctp

// Identifies a virtual service: protocol+address+port, or a firewall mark.
struct ServiceKey {
  uint16_t family = 0;  // AF_INET / AF_INET6 (fwmark services too)
  Protocol protocol = Protocol::kTcp;
  Address address;
  uint16_t port = 0;
  uint32_t fwmark = 0;  // non-zero: a fwmark service; protocol/address/port unused
  // "TCP 10.0.0.1:80", "UDP [fd00::1]:53", "FWM 7 (inet)".
  std::string toString() const;
  auto operator<=>(const ServiceKey&) const = default;
};
[[nodiscard]] Result<ServiceKey> parseServiceKey(std::string_view text);  // inverse of toString

struct Service {
  ServiceKey key;
  std::string scheduler = "rr";
  uint32_t flags = 0;    // IP_VS_SVC_F_* (persistent, scheduler flags); never HASHED
  uint32_t timeout = 0;  // persistence timeout in seconds (0: none)
  uint32_t netmask = 0;  // persistence netmask; 0 picks /32 (v4) or 128 (v6)
  bool operator==(const Service&) const = default;
};

enum class Forward : uint32_t { kMasq = 0, kLocal = 1, kTunnel = 2, kDirect = 3 };
std::string_view forwardName(Forward f);  // ipvsadm's words: Masq, Local, Tunnel, Route

struct DestKey {
  Address address;
  uint16_t port = 0;
  std::string toString() const;
  auto operator<=>(const DestKey&) const = default;
};

struct Destination {
  DestKey key;
  Forward forward = Forward::kMasq;
  uint32_t weight = 1;
  uint32_t upperThreshold = 0;
  uint32_t lowerThreshold = 0;
  bool operator==(const Destination&) const = default;
};

struct Stats {
  uint64_t conns = 0, inPackets = 0, outPackets = 0, inBytes = 0, outBytes = 0;
};

// What the kernel reports for a destination.
struct DestinationState {
  Destination dest;
  uint32_t activeConns = 0;
  uint32_t inactiveConns = 0;
  uint32_t persistentConns = 0;
  Stats stats;
};

struct ServiceState {
  Service service;
  Stats stats;
  std::vector<DestinationState> dests;
};

struct Timeouts {
  uint32_t tcp = 0, tcpFin = 0, udp = 0;  // seconds; 0 leaves a value unchanged on set
};

// The effective persistence netmask for a service (the kernel requires 1..128 for IPv6).
uint32_t effectiveNetmask(const Service& s);

}  // namespace nodeagent::ipvs
