#include "reporter/config.h"

#include <arpa/inet.h>

#include <charconv>

namespace nodeagent::reporter {

namespace {

// The rule the metrics server binds by: an IPv4 address or a bracketed IPv6 address, and
// a port. Names (localhost) are refused here as they would be at bind time: the daemon
// resolves no names (no NSS modules loaded into it).
bool validHostPort(const std::string& a) {
  auto colon = a.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  int port = -1;
  auto p = a.substr(colon + 1);
  auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), port);
  if (ec != std::errc() || end != p.data() + p.size() || port < 0 || port > 65535) return false;
  std::string host = a.substr(0, colon);
  in6_addr buf{};
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    return inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), &buf) == 1;
  return inet_pton(AF_INET, host.c_str(), &buf) == 1;
}

}  // namespace

void parseMetricsConfig(ConfigMap m, OutputsConfig& c) {
  c.metricsAddress = m.string("address", c.metricsAddress);
  if (!c.metricsAddress.empty() && !validHostPort(c.metricsAddress))
    m.error("address", "must be IP:PORT with an IPv4 or [IPv6] address, not a name (e.g. 127.0.0.1:9464, "
                       "[::1]:9464), or \"\" to disable");
  m.finish();
}

void parseStatusFileConfig(ConfigMap m, OutputsConfig& c) {
  c.statusFileSet = m.has("path");
  c.statusFile = m.string("path", c.statusFile);
  if (!c.statusFile.empty() && c.statusFile.front() != '/') m.error("path", "must be an absolute path or \"\"");
  m.finish();
}

Json metricsToJson(const OutputsConfig& c) { return Json::object().set("address", c.metricsAddress); }
Json statusFileToJson(const OutputsConfig& c) { return Json::object().set("path", c.statusFile); }

}  // namespace nodeagent::reporter
