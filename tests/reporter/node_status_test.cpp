// Pure pieces of reporter/node_status: the status patch, owned conditions, Events.
#include <gtest/gtest.h>

#include "reporter/node_status.h"

namespace nodeagent::reporter {
namespace {

TEST(NodeStatus, StrategicPatchSetsAndDeletesOnlyOwnConditions) {
  ConditionMap set;
  set["NodeAgentSysctlTuned"] = {"NodeAgentSysctlTuned", "True", "AllKeysApplied", "42/42", "2026-11-21T10:00:00Z",
                                 "2026-11-21T10:05:00Z"};
  EXPECT_EQ(buildStatusPatch(set, {"NodeAgentOld"}),
            R"({"status":{"conditions":[{"type":"NodeAgentSysctlTuned","status":"True","reason":"AllKeysApplied",)"
            R"("message":"42/42","lastTransitionTime":"2026-11-21T10:00:00Z","lastHeartbeatTime":"2026-11-21T10:05:00Z"},)"
            R"({"$patch":"delete","type":"NodeAgentOld"}]}})");
}

TEST(NodeStatus, OwnedConditionsIgnoreOtherWriters) {
  auto node = Json::parse(R"({"status":{"conditions":[{"type":"Ready","status":"True"},
      {"type":"NodeAgentIpvsSynced","status":"False","reason":"SyncFailed","message":"m","lastTransitionTime":"t"},
      {"type":"NodeAgent","status":"True"}]}})");
  ASSERT_TRUE(node);
  auto owned = ownedConditions(*node, "NodeAgent");
  ASSERT_EQ(owned.size(), 1u);
  EXPECT_EQ(owned["NodeAgentIpvsSynced"].reason, "SyncFailed");
  auto other = owned;
  other["NodeAgentIpvsSynced"].lastHeartbeatTime = "later";
  EXPECT_TRUE(sameConditions(owned, other)) << "heartbeats are not content";
  other["NodeAgentIpvsSynced"].message = "changed";
  EXPECT_FALSE(sameConditions(owned, other));
}

TEST(NodeStatus, EventNamesTheNode) {
  auto j = Json::parse(buildEvent({.name = "n1.abc", .namespace_ = "default", .nodeName = "n1", .nodeUid = "u1",
                                   .type = "Warning", .reason = "SyncFailed", .message = "m", .host = "n1",
                                   .timestamp = "2026-11-21T10:00:00Z"}));
  ASSERT_TRUE(j);
  EXPECT_EQ(j->get("involvedObject").get("kind").asString(), "Node");
  EXPECT_EQ(j->get("involvedObject").get("uid").asString(), "u1");
  EXPECT_EQ(j->get("count").asInt(), 1);
}

}  // namespace
}  // namespace nodeagent::reporter
