#include "common/config_reader.h"

#include <gtest/gtest.h>

namespace nodeagent {
namespace {

using namespace std::chrono_literals;

// Found by the config fuzz target (corpus/config/regress-duration-overflow.yaml): the bare
// seconds were multiplied by 1000 before any range check, an overflow (undefined) that
// came out as 1384ms.
TEST(Duration, BareSecondsTooLargeForMillisecondsAreRejected) {
  auto d = parseDuration("18446744073709553");
  ASSERT_FALSE(d);
  EXPECT_NE(d.error().message().find("too large"), std::string::npos);
  EXPECT_FALSE(parseDuration("9223372036854776"));
  EXPECT_EQ(*parseDuration("9223372036854775"), std::chrono::milliseconds(9223372036854775000));
}

TEST(Duration, ParsesUnitsAndBareSeconds) {
  EXPECT_EQ(*parseDuration("250ms"), 250ms);
  EXPECT_EQ(*parseDuration("10s"), 10s);
  EXPECT_EQ(*parseDuration("5m"), 5min);
  EXPECT_EQ(*parseDuration("1h30m"), 90min);
  EXPECT_EQ(*parseDuration("1.5s"), 1500ms);
  EXPECT_EQ(*parseDuration("7"), 7s);
  EXPECT_FALSE(parseDuration(""));
  EXPECT_FALSE(parseDuration("5x"));
  EXPECT_FALSE(parseDuration("s"));
  EXPECT_FALSE(parseDuration("-3"));
}

TEST(Duration, FormatsInTheLargestWholeUnit) {
  EXPECT_EQ(formatDuration(0ms), "0s");
  EXPECT_EQ(formatDuration(1500ms), "1500ms");
  EXPECT_EQ(formatDuration(60s), "1m");
  EXPECT_EQ(formatDuration(2h), "2h");
}

struct Reader {
  ConfigErrors errors{"test.yaml"};
  YAML::Node doc;
  explicit Reader(const std::string& text) { doc = *loadYaml(text, "test.yaml"); }
};

TEST(ConfigMap, ReadsTypedValuesWithDefaults) {
  Reader r("a: 5\nb: true\nc: text\nd: 2m\ne: [x, y]\n");
  ConfigMap m(r.doc, "", r.errors);
  EXPECT_EQ(m.integer("a", 0, 0, 10), 5);
  EXPECT_TRUE(m.boolean("b", false));
  EXPECT_EQ(m.string("c", ""), "text");
  EXPECT_EQ(m.duration("d", 1s, 1s, 1h), 2min);
  EXPECT_EQ(m.stringList("e"), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(m.integer("absent", 42, 0, 100), 42);
  m.finish();
  EXPECT_TRUE(r.errors.empty());
}

TEST(ConfigMap, NamesFileLineAndKeyInEveryError) {
  Reader r("outer:\n  count: many\n  level: 99\n  typo: 1\n");
  ConfigMap top(r.doc, "", r.errors);
  auto outer = top.map("outer");
  outer.integer("count", 0, 0, 10);
  outer.integer("level", 0, 0, 10);
  outer.finish();
  top.finish();
  ASSERT_EQ(r.errors.all().size(), 3u);
  EXPECT_EQ(r.errors.all()[0], "test.yaml:2:10: outer.count: must be an integer, got \"many\"");
  EXPECT_EQ(r.errors.all()[1], "test.yaml:3:10: outer.level: value 99 out of range [0, 10]");
  EXPECT_EQ(r.errors.all()[2], "test.yaml:4:3: outer.typo: unknown key");
}

TEST(ConfigMap, RejectsDuplicateKeysAndWrongShapes) {
  Reader r("a: 1\na: 2\nm: [1]\n");
  ConfigMap top(r.doc, "", r.errors);
  top.integer("a", 0, 0, 10);
  top.map("m").finish();
  top.finish();
  ASSERT_EQ(r.errors.all().size(), 2u);
  EXPECT_NE(r.errors.all()[0].find("m: must be a mapping, not a list"), std::string::npos);
  EXPECT_NE(r.errors.all()[1].find("test.yaml:2:1: a: duplicate key"), std::string::npos);
}

TEST(ConfigMap, ChoiceListsTheAllowedValues) {
  Reader r("mode: sometimes\n");
  ConfigMap m(r.doc, "", r.errors);
  EXPECT_EQ(m.choice("mode", "enforce", {"enforce", "report"}), "enforce");
  ASSERT_EQ(r.errors.all().size(), 1u);
  EXPECT_NE(r.errors.all()[0].find("must be one of enforce, report, got \"sometimes\""), std::string::npos);
}

TEST(LoadYaml, SyntaxErrorsCarryLineAndColumn) {
  auto r = loadYaml("a: [1, 2\nb: 3\n", "bad.yaml");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message().rfind("bad.yaml:", 0), 0u) << r.error().message();
}

}  // namespace
}  // namespace nodeagent
