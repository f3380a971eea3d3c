#include "reporter/node_status.h"

namespace nodeagent::reporter {

bool sameConditions(const ConditionMap& a, const ConditionMap& b) {
  if (a.size() != b.size()) return false;
  for (auto ia = a.begin(), ib = b.begin(); ia != a.end(); ++ia, ++ib)
    if (ia->first != ib->first || !ia->second.sameContent(ib->second)) return false;
  return true;
}

ConditionMap ownedConditions(const Json& node, const std::string& prefix) {
  ConditionMap out;
  for (const auto& c : node.get("status").get("conditions").asArray()) {
    const std::string& type = c.get("type").asString();
    if (type.rfind(prefix, 0) != 0 || type.size() == prefix.size()) continue;
    out[type] = NodeCondition{type,
                              c.get("status").asString(),
                              c.get("reason").asString(),
                              c.get("message").asString(),
                              c.get("lastTransitionTime").asString(),
                              c.get("lastHeartbeatTime").asString()};
  }
  return out;
}

std::string buildStatusPatch(const ConditionMap& set, const std::vector<std::string>& deleteTypes) {
  Json list = Json::array();
  for (const auto& [type, c] : set) {
    Json j = Json::object().set("type", c.type).set("status", c.status).set("reason", c.reason).set("message", c.message);
    if (!c.lastTransitionTime.empty()) j.set("lastTransitionTime", c.lastTransitionTime);
    if (!c.lastHeartbeatTime.empty()) j.set("lastHeartbeatTime", c.lastHeartbeatTime);
    list.push(std::move(j));
  }
  for (const auto& t : deleteTypes) list.push(Json::object().set("$patch", "delete").set("type", t));
  return Json::object().set("status", Json::object().set("conditions", std::move(list))).dump();
}

std::string buildEvent(const EventSpec& e) {
  Json j = Json::object()
               .set("apiVersion", "v1")
               .set("kind", "Event")
               .set("metadata", Json::object().set("name", e.name).set("namespace", e.namespace_))
               .set("involvedObject", Json::object()
                                          .set("apiVersion", "v1")
                                          .set("kind", "Node")
                                          .set("name", e.nodeName)
                                          .set("uid", e.nodeUid.empty() ? e.nodeName : e.nodeUid))
               .set("reason", e.reason)
               .set("message", e.message)
               .set("type", e.type)
               .set("source", Json::object().set("component", e.component).set("host", e.host))
               .set("firstTimestamp", e.timestamp)
               .set("lastTimestamp", e.timestamp)
               .set("count", e.count)
               .set("reportingComponent", e.component)
               .set("reportingInstance", e.host);
  return j.dump();
}

std::string buildEventUpdate(int count, const std::string& timestamp, const std::string& message) {
  return Json::object().set("count", count).set("lastTimestamp", timestamp).set("message", message).dump();
}

}  // namespace nodeagent::reporter
