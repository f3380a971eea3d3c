#include "imagepull/config.h"

#include <set>

#include "imagepull/image_ref.h"

namespace nodeagent::imagepull {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

std::vector<std::string> imageList(ConfigMap& m, std::string_view key, std::set<std::string>& seen) {
  auto list = m.stringList(key);
  for (const auto& image : list) {
    auto ref = parseImageRef(image);
    if (!ref) {
      m.error(key, ref.error().message());
      continue;
    }
    if (!seen.insert(ref->canonical()).second)
      m.error(key, "image \"" + image + "\" is listed twice (as " + ref->canonical() + ")");
  }
  return list;
}

Json strings(const std::vector<std::string>& v) {
  Json a = Json::array();
  for (const auto& s : v) a.push(s);
  return a;
}

}  // namespace

void parseConfig(ConfigMap m, Config& c) {
  c.enabled = m.choice("enabled", c.enabled, {"auto", "true", "false"});
  c.runtimeEndpoint = m.string("runtime_endpoint", c.runtimeEndpoint);
  if (!c.runtimeEndpoint.starts_with("unix:///"))
    m.error("runtime_endpoint", "must be unix:///absolute/path, got \"" + c.runtimeEndpoint + "\"");
  {
    auto images = m.map("images");
    std::set<std::string> seen;
    c.base = imageList(images, "base", seen);
    c.environment = imageList(images, "environment", seen);
    images.finish();
  }
  c.concurrency = static_cast<unsigned>(m.integer("concurrency", c.concurrency, 1, 64));
  c.perRegistry = static_cast<unsigned>(m.integer("per_registry", c.perRegistry, 1, 64));
  c.attemptTimeout = m.duration("attempt_timeout", c.attemptTimeout, milliseconds(100), hours(2));
  c.refreshInterval = m.duration("refresh_interval", c.refreshInterval, seconds(1), hours(24 * 7));
  c.startSpread = m.duration("start_spread", c.startSpread, milliseconds(0), hours(6));
  {
    auto b = m.map("backoff");
    c.backoffInitial = b.duration("initial", c.backoffInitial, milliseconds(10), hours(1));
    c.backoffMax = b.duration("max", c.backoffMax, milliseconds(10), hours(6));
    if (c.backoffInitial > c.backoffMax) b.error("initial", "must not exceed backoff.max");
    b.finish();
  }
  c.maxAttempts = static_cast<unsigned>(m.integer("max_attempts", c.maxAttempts, 1, 1000));
  c.maxPermanentAttempts = static_cast<unsigned>(m.integer("max_permanent_attempts", c.maxPermanentAttempts, 1, 100));
  c.diskHighWaterPercent = m.number("disk_high_water_percent", c.diskHighWaterPercent, 1, 100);
  c.diskRecheck = m.duration("disk_recheck", c.diskRecheck, milliseconds(100), hours(1));
  c.presenceCheck = m.duration("presence_check", c.presenceCheck, milliseconds(100), hours(24));
  {
    auto b = m.map("removal_backoff");
    c.removalBackoffInitial = b.duration("initial", c.removalBackoffInitial, milliseconds(10), hours(24));
    c.removalBackoffMax = b.duration("max", c.removalBackoffMax, milliseconds(10), hours(24 * 7));
    if (c.removalBackoffInitial > c.removalBackoffMax) b.error("initial", "must not exceed removal_backoff.max");
    b.finish();
  }
  c.pinBase = m.boolean("pin_base", c.pinBase);
  c.authFile = m.string("auth_file", c.authFile);
  if (!c.authFile.empty() && c.authFile.front() != '/') m.error("auth_file", "must be an absolute path or empty");
  c.maxReceiveBytes = static_cast<int>(m.integer("max_receive_bytes", c.maxReceiveBytes, 4 << 20, 1 << 30));
  {
    auto cs = m.map("cluster_sets");
    c.clusterSets.enabled = cs.choice("enabled", c.clusterSets.enabled, {"auto", "true", "false"});
    c.clusterSets.namespace_ = cs.string("namespace", c.clusterSets.namespace_);
    c.clusterSets.configMap = cs.string("configmap", c.clusterSets.configMap);
    if (c.clusterSets.namespace_.empty()) cs.error("namespace", "must not be empty");
    if (c.clusterSets.configMap.empty()) cs.error("configmap", "must not be empty");
    cs.finish();
  }
  m.finish();
}

Json toJson(const Config& c) {
  return Json::object()
      .set("enabled", c.enabled)
      .set("runtime_endpoint", c.runtimeEndpoint)
      .set("images", Json::object().set("base", strings(c.base)).set("environment", strings(c.environment)))
      .set("concurrency", c.concurrency)
      .set("per_registry", c.perRegistry)
      .set("attempt_timeout", formatDuration(c.attemptTimeout))
      .set("refresh_interval", formatDuration(c.refreshInterval))
      .set("start_spread", formatDuration(c.startSpread))
      .set("backoff", Json::object()
                          .set("initial", formatDuration(c.backoffInitial))
                          .set("max", formatDuration(c.backoffMax)))
      .set("max_attempts", c.maxAttempts)
      .set("max_permanent_attempts", c.maxPermanentAttempts)
      .set("disk_high_water_percent", c.diskHighWaterPercent)
      .set("disk_recheck", formatDuration(c.diskRecheck))
      .set("presence_check", formatDuration(c.presenceCheck))
      .set("removal_backoff", Json::object()
                                  .set("initial", formatDuration(c.removalBackoffInitial))
                                  .set("max", formatDuration(c.removalBackoffMax)))
      .set("pin_base", c.pinBase)
      .set("auth_file", c.authFile)
      .set("max_receive_bytes", c.maxReceiveBytes)
      .set("cluster_sets", Json::object()
                               .set("enabled", c.clusterSets.enabled)
                               .set("namespace", c.clusterSets.namespace_)
                               .set("configmap", c.clusterSets.configMap));
}

}  // namespace nodeagent::imagepull
