#include "reporter/config.h"

#include <charconv>

namespace nodeagent::reporter {

namespace {

bool validHostPort(const std::string& a) {
  auto colon = a.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  int port = -1;
  auto p = a.substr(colon + 1);
  auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), port);
  return ec == std::errc() && end == p.data() + p.size() && port >= 0 && port <= 65535;
}

}  // namespace

void parseMetricsConfig(ConfigMap m, OutputsConfig& c) {
  c.metricsAddress = m.string("address", c.metricsAddress);
  if (!c.metricsAddress.empty() && !validHostPort(c.metricsAddress))
    m.error("address", "must be HOST:PORT (e.g. 127.0.0.1:9464, [::1]:9464) or \"\" to disable");
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
