#include "kube/event.h"

#include "common/json.h"

namespace nodeagent::kube {

std::string buildObjectEvent(const ObjectEvent& e) {
  Json involved = Json::object().set("apiVersion", e.apiVersion).set("kind", e.kind).set("name", e.name);
  if (!e.ns.empty()) involved.set("namespace", e.ns);
  if (!e.uid.empty()) involved.set("uid", e.uid);
  return Json::object()
      .set("apiVersion", "v1")
      .set("kind", "Event")
      .set("metadata", Json::object().set("name", e.eventName).set("namespace", e.eventNamespace))
      .set("involvedObject", involved)
      .set("reason", e.reason)
      .set("message", e.message)
      .set("type", e.type)
      .set("source", Json::object().set("component", "nodeagent").set("host", e.host))
      .set("firstTimestamp", e.timestamp)
      .set("lastTimestamp", e.timestamp)
      .set("count", 1)
      .set("reportingComponent", "nodeagent")
      .set("reportingInstance", e.host)
      .dump();
}

}  // namespace nodeagent::kube
