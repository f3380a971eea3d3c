#include "daemon/config.h"

#include <unistd.h>

#include <cstdlib>

#include "common/config_reader.h"
#include "common/files.h"

namespace nodeagent::daemon {

using std::chrono::hours;
using std::chrono::milliseconds;

namespace {

void parseAgent(ConfigMap m, AgentSection& a) {
  a.nodeName = m.string("node_name", a.nodeName);
  a.stateDir = m.string("state_dir", a.stateDir);
  if (a.stateDir.empty() || a.stateDir.front() != '/') m.error("state_dir", "must be an absolute path");
  a.logLevel = m.choice("log_level", a.logLevel, {"trace", "debug", "info", "warn", "error"});
  a.logFormat = m.choice("log_format", a.logFormat, {"auto", "text", "json", "journal"});
  auto r = m.map("reconcile");
  a.minInterval = r.duration("min_interval", a.minInterval, milliseconds(10), hours(1));
  a.maxInterval = r.duration("max_interval", a.maxInterval, milliseconds(100), hours(24));
  if (a.minInterval > a.maxInterval)
    r.error("min_interval", "must not exceed max_interval (" + formatDuration(a.maxInterval) + ")");
  r.finish();
  m.finish();
}

void parseControl(ConfigMap m, ControlSection& c) {
  c.socket = m.string("socket", c.socket);
  if (c.socket.empty() || c.socket.front() != '/') m.error("socket", "must be an absolute path");
  if (c.socket.size() >= 108) m.error("socket", "path longer than a unix socket allows (107 bytes)");
  c.socketGroup = m.string("socket_group", c.socketGroup);
  std::string mode = m.string("socket_mode", "0660");
  char* end = nullptr;
  unsigned long v = std::strtoul(mode.c_str(), &end, 8);
  if (mode.empty() || *end != '\0' || v > 0777)
    m.error("socket_mode", "must be an octal mode such as \"0660\", got \"" + mode + "\"");
  else
    c.socketMode = static_cast<unsigned>(v);
  m.finish();
}

std::string octal(unsigned v) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", v);
  return buf;
}

}  // namespace

Json Config::toJson() const {
  Json j = Json::object();
  j.set("agent", Json::object()
                     .set("node_name", agent.nodeName)
                     .set("state_dir", agent.stateDir)
                     .set("log_level", agent.logLevel)
                     .set("log_format", agent.logFormat)
                     .set("reconcile", Json::object()
                                           .set("min_interval", formatDuration(agent.minInterval))
                                           .set("max_interval", formatDuration(agent.maxInterval))));
  j.set("control", Json::object()
                       .set("socket", control.socket)
                       .set("socket_group", control.socketGroup)
                       .set("socket_mode", octal(control.socketMode)));
  j.set("kube", kube::toJson(kube));
  j.set("metrics", reporter::metricsToJson(outputs));
  j.set("status_file", reporter::statusFileToJson(outputs));
  j.set("ipvs", ipvs::toJson(ipvs));
  j.set("sysctl", sysctl::toJson(sysctl));
  j.set("imagepull", imagepull::toJson(imagepull));
  return j;
}

Result<Config> parseConfig(const std::string& text, const std::string& source) {
  auto doc = loadYaml(text, source);
  if (!doc) return fail(doc.error());
  ConfigErrors errors(source);
  Config config;
  config.source = source;
  ConfigMap top(*doc, "", errors);
  parseAgent(top.map("agent"), config.agent);
  parseControl(top.map("control"), config.control);
  kube::parseConfig(top.map("kube"), config.kube);
  reporter::parseMetricsConfig(top.map("metrics"), config.outputs);
  reporter::parseStatusFileConfig(top.map("status_file"), config.outputs);
  ipvs::parseConfig(top.map("ipvs"), config.ipvs);
  sysctl::parseConfig(top.map("sysctl"), config.sysctl);
  imagepull::parseConfig(top.map("imagepull"), config.imagepull);
  top.finish();
  if (auto r = errors.toResult(); !r) return fail(r.error());
  return config;
}

Result<Config> loadConfigFile(const std::string& path) {
  auto text = readConfigFile(path);
  if (!text) return fail(text.error().wrap("read config"));
  return parseConfig(*text, path);
}

std::string resolveNodeName(const Config& config) {
  if (!config.agent.nodeName.empty()) return config.agent.nodeName;
  if (const char* env = std::getenv("NODE_NAME"); env && *env) return env;
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) == 0) return host;
  return "unknown";
}

}  // namespace nodeagent::daemon
