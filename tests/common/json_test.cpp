#include "common/json.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace nodeagent {
namespace {

TEST(Json, DumpsCompactAndPrettyInInsertionOrder) {
  Json j = Json::object().set("b", 1).set("a", "x\"y\n").set("list", Json::Array{true, nullptr, 2.5});
  EXPECT_EQ(j.dump(), R"({"b":1,"a":"x\"y\n","list":[true,null,2.5]})");
  EXPECT_EQ(Json::object().set("k", Json::Array{1}).dump(2), "{\n  \"k\": [\n    1\n  ]\n}");
}

TEST(Json, SetReplacesExistingKey) {
  Json j = Json::object().set("a", 1).set("a", 2);
  EXPECT_EQ(j.size(), 1u);
  EXPECT_EQ(j.get("a").asInt(), 2);
  EXPECT_TRUE(j.get("missing").isNull());
}

TEST(Json, CopiesAreIndependent) {
  Json a = Json::object().set("x", 1);
  Json b = a;
  b.set("x", 2);
  EXPECT_EQ(a.get("x").asInt(), 1);
  EXPECT_EQ(b.get("x").asInt(), 2);
}

// Containers are shared between copies and copied on write, whichever side writes, and
// equal containers compare equal whether shared or not.
TEST(Json, SharedContainersAreCopiedOnWriteByEitherSide) {
  Json a = Json::array().push(Json::object().set("k", "v"));
  Json b = a;
  a.push(2);
  EXPECT_EQ(a.size(), 2u);
  EXPECT_EQ(b.size(), 1u);
  Json c = b;
  EXPECT_EQ(c, b);
  { Json passing = c; }
  Json moved = std::move(b);
  moved.push(3);
  EXPECT_EQ(c.size(), 1u);
  EXPECT_EQ(moved.size(), 2u);
  EXPECT_EQ(moved.asArray()[0], a.asArray()[0]);
  EXPECT_NE(moved, c);
  EXPECT_EQ(Json::object().set("x", Json::array().push(1)), Json::object().set("x", Json::array().push(1)));
}

TEST(Json, ParseRoundTrips) {
  auto j = Json::parse(R"({"n":-3,"u":18446744073709551615,"d":0.25,"s":"\u00e9","a":[{},[]],"z":null})");
  ASSERT_TRUE(j) << j.error().message();
  EXPECT_EQ(j->get("n").asInt(), -3);
  EXPECT_DOUBLE_EQ(j->get("d").asDouble(), 0.25);
  EXPECT_EQ(j->get("s").asString(), "\xc3\xa9");
  auto again = Json::parse(j->dump());
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, *j);
}

TEST(Json, NumbersPrintAsWrittenNotInExponentForm) {
  // --check-config printed disk_high_water_percent: 8e+01.
  EXPECT_EQ(Json(80.0).dump(), "80");
  EXPECT_EQ(Json::object().set("disk_high_water_percent", 80.0).toYaml(), "disk_high_water_percent: 80\n");
  EXPECT_EQ(Json(85.5).dump(), "85.5");
  EXPECT_EQ(Json(0.1).dump(), "0.1");
  EXPECT_EQ(Json(1e21).dump(), "1e+21");
  EXPECT_EQ(Json::parse(Json(0.1 + 0.2).dump())->asDouble(), 0.1 + 0.2);  // still round-trips
}

TEST(Json, ParseRejectsInvalid) {
  auto j = Json::parse("{\"a\":");
  ASSERT_FALSE(j);
  EXPECT_NE(j.error().message().find("invalid JSON"), std::string::npos);
}

TEST(Json, YamlQuotesWhatWouldReadBackAsAnotherType) {
  Json j = Json::object()
               .set("mode", "0660")
               .set("flag", "true")
               .set("empty", "")
               .set("plain", "hello world")
               .set("n", 5)
               .set("items", Json::Array{Json::object().set("a", 1).set("b", "x"), "y"})
               .set("none", Json::array());
  EXPECT_EQ(j.toYaml(),
            "mode: \"0660\"\n"
            "flag: \"true\"\n"
            "empty: \"\"\n"
            "plain: hello world\n"
            "n: 5\n"
            "items:\n"
            "  - a: 1\n"
            "    b: x\n"
            "  - y\n"
            "none: []\n");
}

// A number from a peer that does not fit int64 (an API Status "code": 1e300) must not be
// converted: that conversion is undefined behaviour. Seed: fuzz corpus
// kube_watch_event/regress-error-code-1e300.
TEST(Json, AsIntOfADoubleOutsideInt64IsTheDefault) {
  auto j = Json::parse(R"({"big": 1e300, "small": -1e300, "edge": 9223372036854775808.0, "ok": -9223372036854775808.0, "frac": 410.7})");
  ASSERT_TRUE(j);
  EXPECT_EQ(j->get("big").asInt(7), 7);
  EXPECT_EQ(j->get("small").asInt(7), 7);
  EXPECT_EQ(j->get("edge").asInt(7), 7);
  EXPECT_EQ(j->get("ok").asInt(7), INT64_MIN);
  EXPECT_EQ(j->get("frac").asInt(7), 410);
}

// A double of 2^64 or more printed as plain digits ("18446744073709552000") is an integer
// too large for the parser: the agent could not read back an object it had printed. Seed:
// fuzz corpus kube_watch_event/regress-number-beyond-uint64.
TEST(Json, WholeNumbersBeyondInt64PrintWithAnExponentAndReadBack) {
  for (const char* text : {"1.8446744073709552e19", "-1e19", "9.3e18", "18446744073709551615"}) {
    auto j = Json::parse(text);
    ASSERT_TRUE(j) << text;
    auto again = Json::parse(j->dump());
    ASSERT_TRUE(again) << text << " printed as " << j->dump();
    EXPECT_EQ(*again, *j) << text;
  }
  EXPECT_EQ(Json(1.8446744073709552e19).dump(), "1.8446744073709552e+19");
  EXPECT_EQ(Json(123456789012345678.0).dump(), "123456789012345680");  // within int64: plain
}

// An unsigned value beyond int64 stays positive (a double), not wrapped negative.
TEST(Json, UnsignedBeyondInt64StaysPositive) {
  EXPECT_GT(Json(18446744073709551615ULL).asDouble(), 1.8e19);
  EXPECT_EQ(Json::parse("18446744073709551615")->asDouble(), 18446744073709551615.0);
  EXPECT_EQ(Json(42ULL).asInt(), 42);
}

}  // namespace
}  // namespace nodeagent
