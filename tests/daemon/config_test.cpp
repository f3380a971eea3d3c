#include "daemon/config.h"

#include <gtest/gtest.h>

namespace nodeagent::daemon {
namespace {

using namespace std::chrono_literals;

TEST(AgentConfig, EmptyFileGivesBuiltInDefaults) {
  auto c = parseConfig("", "empty.yaml");
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->source, "empty.yaml");
  EXPECT_EQ(c->agent.stateDir, "/var/lib/nodeagent");
  EXPECT_EQ(c->control.socket, "/run/nodeagent/nodeagent.sock");
  EXPECT_EQ(c->control.socketMode, 0660u);
  EXPECT_EQ(c->agent.minInterval, 1s);
  EXPECT_EQ(c->agent.maxInterval, 60s);
}

TEST(AgentConfig, ReadsEveryAgentKey) {
  auto c = parseConfig(
      "agent:\n"
      "  node_name: n1\n"
      "  state_dir: /tmp/x\n"
      "  log_level: debug\n"
      "  log_format: json\n"
      "  reconcile: {min_interval: 500ms, max_interval: 2m}\n"
      "control:\n"
      "  socket: /tmp/x/s.sock\n"
      "  socket_group: wheel\n"
      "  socket_mode: \"0600\"\n",
      "c.yaml");
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->agent.nodeName, "n1");
  EXPECT_EQ(c->agent.logFormat, "json");
  EXPECT_EQ(c->agent.minInterval, 500ms);
  EXPECT_EQ(c->agent.maxInterval, 2min);
  EXPECT_EQ(c->control.socketMode, 0600u);
  EXPECT_EQ(resolveNodeName(*c), "n1");
}

TEST(AgentConfig, EffectiveConfigRoundTrips) {
  auto c = parseConfig("agent: {log_level: warn}\n", "c.yaml");
  ASSERT_TRUE(c);
  // What --check-config prints is itself a valid config that means the same.
  auto again = parseConfig(c->toJson().toYaml(), "printed.yaml");
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_EQ(again->toJson(), c->toJson());
}

struct BadConfig {
  const char* name;
  const char* yaml;
  const char* expected;  // the whole "file:line:col: key: message" prefix that must appear
};

class BadConfigs : public ::testing::TestWithParam<BadConfig> {};

TEST_P(BadConfigs, AreRejectedWithFileLineAndKey) {
  auto c = parseConfig(GetParam().yaml, "bad.yaml");
  ASSERT_FALSE(c) << "accepted: " << GetParam().yaml;
  EXPECT_NE(c.error().message().find(GetParam().expected), std::string::npos)
      << "message was:\n" << c.error().message();
}

INSTANTIATE_TEST_SUITE_P(
    Table, BadConfigs,
    ::testing::Values(
        BadConfig{"UnknownTopLevel", "agnet: {}\n", "bad.yaml:1:1: agnet: unknown key"},
        BadConfig{"UnknownNested", "agent:\n  log_levle: info\n", "bad.yaml:2:3: agent.log_levle: unknown key"},
        BadConfig{"BadChoice", "agent:\n  log_level: loud\n", "bad.yaml:2:14: agent.log_level: must be one of"},
        BadConfig{"RelativeStateDir", "agent:\n  state_dir: var/lib\n", "bad.yaml:2:3: agent.state_dir: must be an absolute path"},
        BadConfig{"BadDuration", "agent:\n  reconcile:\n    max_interval: soon\n",
                  "bad.yaml:3:19: agent.reconcile.max_interval: invalid duration \"soon\""},
        BadConfig{"DurationOutOfRange", "agent:\n  reconcile:\n    min_interval: 1ms\n",
                  "bad.yaml:3:19: agent.reconcile.min_interval: duration 1ms out of range"},
        BadConfig{"MinAboveMax", "agent:\n  reconcile: {min_interval: 5m, max_interval: 1m}\n",
                  "agent.reconcile.min_interval: must not exceed max_interval (1m)"},
        BadConfig{"SectionNotMapping", "control: [a]\n", "bad.yaml:1:10: control: must be a mapping, not a list"},
        BadConfig{"WrongTypeString", "control:\n  socket: {a: 1}\n", "bad.yaml:2:11: control.socket: must be a string"},
        BadConfig{"BadMode", "control:\n  socket_mode: \"999\"\n", "bad.yaml:2:3: control.socket_mode: must be an octal mode"},
        BadConfig{"DuplicateKey", "agent: {}\nagent: {}\n", "bad.yaml:2:1: agent: duplicate key"},
        BadConfig{"SyntaxError", "agent: [\n", "bad.yaml:"},
        BadConfig{"TopLevelList", "- a\n", "must be a mapping"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(AgentConfig, ReportsAllErrorsAtOnce) {
  auto c = parseConfig("agent:\n  bogus: 1\n  log_level: loud\ncontrol:\n  socket: rel\n", "bad.yaml");
  ASSERT_FALSE(c);
  const auto& m = c.error().message();
  EXPECT_NE(m.find("agent.bogus: unknown key"), std::string::npos);
  EXPECT_NE(m.find("agent.log_level"), std::string::npos);
  EXPECT_NE(m.find("control.socket: must be an absolute path"), std::string::npos);
}

TEST(AgentConfig, MissingFileIsAnError) {
  auto c = loadConfigFile("/nonexistent/nodeagent.yaml");
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message().find("/nonexistent/nodeagent.yaml"), std::string::npos);
}

}  // namespace
}  // namespace nodeagent::daemon
