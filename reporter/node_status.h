// Node conditions as the API has them, and the strategic merge patch that sets the
// agent's own conditions on nodes/NAME/status. Pure functions.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/json.h"

namespace nodeagent::reporter {

struct NodeCondition {
  std::string type;    // with the agent's prefix
  std::string status;  // "True", "False" or "Unknown"
  std::string reason;
  std::string message;
  std::string lastTransitionTime;  // RFC 3339
  std::string lastHeartbeatTime;   // RFC 3339; not compared
  // Same content as far as a reader of the Node cares (the heartbeat is not compared).
  bool sameContent(const NodeCondition& o) const {
    return type == o.type && status == o.status && reason == o.reason && message == o.message &&
           lastTransitionTime == o.lastTransitionTime;
  }
};

using ConditionMap = std::map<std::string, NodeCondition>;  // by type

bool sameConditions(const ConditionMap& a, const ConditionMap& b);

// Conditions whose type starts with `prefix`, from a Node object.
ConditionMap ownedConditions(const Json& node, const std::string& prefix);

// {"status":{"conditions":[...set..., {"$patch":"delete","type":T}...]}} for
// Content-Type application/strategic-merge-patch+json: the API server merges the list
// on `type`, so conditions of other writers (kubelet's Ready, ...) stay as they are.
//
//   kubectl patch node NAME --subresource=status --type=strategic -p '{"status":{"conditions":[...]}}'
std::string buildStatusPatch(const ConditionMap& set, const std::vector<std::string>& deleteTypes);

// A core/v1 Event about the Node.
struct EventSpec {
  std::string name;  // NODE.<hex nanoseconds>
  std::string namespace_;
  std::string nodeName;
  std::string nodeUid;
  std::string type;  // Normal or Warning
  std::string reason;
  std::string message;
  std::string component = "nodeagent";
  std::string host;
  std::string timestamp;  // RFC 3339
  int count = 1;
};
std::string buildEvent(const EventSpec& e);
// Strategic merge patch of an existing Event: count and lastTimestamp (and the message).
std::string buildEventUpdate(int count, const std::string& timestamp, const std::string& message);

}  // namespace nodeagent::reporter
