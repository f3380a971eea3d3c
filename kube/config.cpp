#include "kube/config.h"

namespace nodeagent::kube {

using std::chrono::hours;

void parseConfig(ConfigMap m, Config& c) {
  c.mode = m.choice("mode", c.mode, {"auto", "in-cluster", "kubeconfig", "off"});
  c.kubeconfig = m.string("kubeconfig", c.kubeconfig);
  if (!c.kubeconfig.empty() && c.kubeconfig.front() != '/') m.error("kubeconfig", "must be an absolute path");
  if (c.mode == "kubeconfig" && c.kubeconfig.empty()) m.error("mode", "mode kubeconfig needs kube.kubeconfig");
  c.qps = m.number("qps", c.qps, 0.01, 1000);
  c.burst = static_cast<int>(m.integer("burst", c.burst, 1, 1000));
  c.connectTimeout = m.duration("connect_timeout", c.connectTimeout, milliseconds(100), milliseconds(60'000));
  c.requestTimeout = m.duration("request_timeout", c.requestTimeout, milliseconds(500), milliseconds(600'000));
  c.maxAttempts = static_cast<int>(m.integer("max_attempts", c.maxAttempts, 1, 20));

  auto s = m.map("status");
  c.status.conditionPrefix = s.string("condition_prefix", c.status.conditionPrefix);
  bool okPrefix = !c.status.conditionPrefix.empty() && std::isupper(static_cast<unsigned char>(c.status.conditionPrefix[0]));
  for (char ch : c.status.conditionPrefix) okPrefix = okPrefix && std::isalnum(static_cast<unsigned char>(ch));
  if (!okPrefix) s.error("condition_prefix", "must be CamelCase letters and digits, e.g. NodeAgent");
  c.status.coalesceWindow = s.duration("coalesce_window", c.status.coalesceWindow, milliseconds(10), milliseconds(60'000));
  c.status.resyncInterval = s.duration("resync_interval", c.status.resyncInterval, milliseconds(100), hours(24));
  c.status.resyncJitter = s.number("resync_jitter", c.status.resyncJitter, 0, 0.5);
  c.status.watchNode = s.boolean("watch_node", c.status.watchNode);
  c.status.watchTimeout = s.duration("watch_timeout", c.status.watchTimeout, milliseconds(1000), hours(1));
  s.finish();

  auto e = m.map("events");
  c.events.enabled = e.boolean("enabled", c.events.enabled);
  c.events.namespace_ = e.string("namespace", c.events.namespace_);
  if (c.events.namespace_.empty()) e.error("namespace", "must not be empty");
  c.events.burst = static_cast<int>(e.integer("burst", c.events.burst, 1, 1000));
  c.events.refillInterval = e.duration("refill_interval", c.events.refillInterval, milliseconds(10), hours(24));
  c.events.dedupWindow = e.duration("dedup_window", c.events.dedupWindow, milliseconds(0), hours(24));
  e.finish();
  m.finish();
}

Json toJson(const Config& c) {
  return Json::object()
      .set("mode", c.mode)
      .set("kubeconfig", c.kubeconfig)
      .set("qps", c.qps)
      .set("burst", c.burst)
      .set("connect_timeout", formatDuration(c.connectTimeout))
      .set("request_timeout", formatDuration(c.requestTimeout))
      .set("max_attempts", c.maxAttempts)
      .set("status", Json::object()
                         .set("condition_prefix", c.status.conditionPrefix)
                         .set("coalesce_window", formatDuration(c.status.coalesceWindow))
                         .set("resync_interval", formatDuration(c.status.resyncInterval))
                         .set("resync_jitter", c.status.resyncJitter)
                         .set("watch_node", c.status.watchNode)
                         .set("watch_timeout", formatDuration(c.status.watchTimeout)))
      .set("events", Json::object()
                         .set("enabled", c.events.enabled)
                         .set("namespace", c.events.namespace_)
                         .set("burst", c.events.burst)
                         .set("refill_interval", formatDuration(c.events.refillInterval))
                         .set("dedup_window", formatDuration(c.events.dedupWindow)));
}
}  // namespace nodeagent::kube
