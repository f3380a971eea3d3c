#include "sysctl/config.h"

#include <cmath>

namespace nodeagent::sysctl {

namespace {

std::string scalarText(const YAML::Node& n) { return n.IsScalar() ? n.Scalar() : std::string(); }

// One entry of `keys:`: a scalar value, or {value, mode, reason}.
void parseKey(ConfigMap& keys, const std::string& name, Config& c) {
  if (auto e = keySyntaxError(name)) {
    keys.error(name, *e);
    keys.raw(name);
    return;
  }
  auto known = catalogueEntry(name);
  KeySpec spec{name, "", known ? known->mode : Mode::kExact, known ? known->reason : "", "config",
               known ? known->numeric : true};
  YAML::Node node = keys.raw(name);
  if (node.IsMap()) {
    ConfigMap m(node, keys.keyPath(name), keys.errors());
    if (!m.has("value")) m.error("", "needs a value");
    spec.value = m.string("value", "");
    if (m.has("mode")) {
      spec.mode = *parseMode(m.choice("mode", "exact", {"exact", "min", "max"}));
    }
    spec.reason = m.string("reason", spec.reason);
    m.finish();
  } else if (node.IsScalar()) {
    spec.value = scalarText(node);
  } else {
    keys.error(name, "must be a value or a mapping with value, mode and reason");
    return;
  }
  if (!known) spec.numeric = isNumericValue(spec.value);
  if (spec.value.empty()) {
    keys.error(name, "value must not be empty");
  } else if (known && known->numeric && !isNumericValue(spec.value)) {
    keys.error(name, "value \"" + spec.value + "\" is not numeric (this key takes integers)");
  } else if (spec.mode != Mode::kExact && !isNumericValue(spec.value)) {
    keys.error(name, std::string("mode ") + std::string(modeName(spec.mode)) + " needs a numeric value, got \"" +
                         spec.value + "\"");
  }
  if (spec.reason.empty()) spec.reason = "set in the agent config";
  c.keys.push_back(std::move(spec));
}

}  // namespace

void parseConfig(ConfigMap m, Config& c) {
  c.enabled = m.boolean("enabled", c.enabled);
  c.profile = m.choice("profile", c.profile, {"large-cluster", "none"});
  c.driftMode = m.choice("drift_mode", "enforce", {"enforce", "report"}) == "report" ? DriftMode::kReport
                                                                                      : DriftMode::kEnforce;
  c.driftInterval = m.duration("drift_interval", c.driftInterval, std::chrono::seconds(1), std::chrono::hours(24));
  c.persist = m.boolean("persist", c.persist);
  {
    auto ct = m.map("conntrack");
    c.scale.conntrackMax = uint64_t(ct.integer("max", 0, 0, 1LL << 31));
    c.scale.conntrackMaxPerCore = uint64_t(ct.integer("max_per_core", int64_t(c.scale.conntrackMaxPerCore), 0, 1LL << 24));
    c.scale.conntrackMin = uint64_t(ct.integer("min", int64_t(c.scale.conntrackMin), 0, 1LL << 31));
    c.scale.tcpEstablishedTimeout =
        uint64_t(ct.integer("tcp_timeout_established", int64_t(c.scale.tcpEstablishedTimeout), 1, 1LL << 31));
    c.scale.tcpCloseWaitTimeout =
        uint64_t(ct.integer("tcp_timeout_close_wait", int64_t(c.scale.tcpCloseWaitTimeout), 1, 1LL << 31));
    c.fillWarningPercent = ct.number("fill_warning_percent", c.fillWarningPercent, 1, 100);
    ct.finish();
  }
  c.drop = m.stringList("drop");
  for (const auto& d : c.drop)
    if (auto e = keySyntaxError(d)) m.error("drop", "\"" + d + "\": " + *e);
  auto keys = m.map("keys");
  for (const auto& name : keys.keys()) parseKey(keys, name, c);
  keys.finish();
  m.finish();
}

Json toJson(const Config& c) {
  Json keys = Json::object();
  for (const auto& k : c.keys)
    keys.set(k.key, Json::object().set("value", k.value).set("mode", modeName(k.mode)).set("reason", k.reason));
  Json drop = Json::array();
  for (const auto& d : c.drop) drop.push(d);
  return Json::object()
      .set("enabled", c.enabled)
      .set("profile", c.profile)
      .set("drift_mode", c.driftMode == DriftMode::kReport ? "report" : "enforce")
      .set("drift_interval", formatDuration(c.driftInterval))
      .set("persist", c.persist)
      .set("conntrack", Json::object()
                            .set("max", c.scale.conntrackMax)
                            .set("max_per_core", c.scale.conntrackMaxPerCore)
                            .set("min", c.scale.conntrackMin)
                            .set("tcp_timeout_established", c.scale.tcpEstablishedTimeout)
                            .set("tcp_timeout_close_wait", c.scale.tcpCloseWaitTimeout)
                            .set("fill_warning_percent", c.fillWarningPercent == std::floor(c.fillWarningPercent)
                                                            ? Json(int64_t(c.fillWarningPercent))
                                                            : Json(c.fillWarningPercent)))
      .set("drop", drop)
      .set("keys", keys);
}

}  // namespace nodeagent::sysctl
