// A core/v1 Event about any object, for modules that report through the API (the reporter
// keeps its own Node events). Pure: builds the JSON body of
//   kubectl create -f - <<< '{"kind":"Event","involvedObject":{...},"reason":...}'
#pragma once

#include <string>

namespace nodeagent::kube {

struct ObjectEvent {
  std::string apiVersion = "v1";
  std::string kind;       // ConfigMap, Service, Node, ...
  std::string ns;         // the object's namespace ("" for cluster-scoped objects)
  std::string name;
  std::string uid;        // optional
  std::string eventNamespace;  // where the Event is created
  std::string eventName;       // unique: "<object>.<hex nanoseconds>" as kubelet names them
  std::string reason;     // CamelCase
  std::string message;
  std::string type = "Warning";
  std::string host;       // the reporting node
  std::string timestamp;  // RFC 3339
};

std::string buildObjectEvent(const ObjectEvent& e);

}  // namespace nodeagent::kube
