#include "common/config_reader.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

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

TEST(Duration, RejectsValuesThatOverflowInsteadOfWrapping) {
  // 18446744073709553 s times 1000 wraps a 64-bit integer to 1384 ms.
  auto wrapped = parseDuration("18446744073709553");
  ASSERT_FALSE(wrapped);
  EXPECT_EQ(wrapped.error().message(), "duration \"18446744073709553\" is too large");
  EXPECT_FALSE(parseDuration("9223372036854776"));  // just above INT64_MAX / 1000
  EXPECT_EQ(*parseDuration("9223372036854775"), std::chrono::milliseconds(9223372036854775000));
  EXPECT_FALSE(parseDuration("99999999999999999999h"));
  EXPECT_FALSE(parseDuration("1e400ms"));  // digits only: 'e' is not a unit
  Reader r("drift_interval: 18446744073709553\n");
  ConfigMap m(r.doc, "", r.errors);
  EXPECT_EQ(m.duration("drift_interval", 5s, 1s, 24h), 5s);
  ASSERT_EQ(r.errors.all().size(), 1u);
  EXPECT_EQ(r.errors.all()[0], "test.yaml:1:17: drift_interval: duration \"18446744073709553\" is too large");
}

TEST(ConfigErrors, KeepsTheFirstErrorsAndCountsTheRest) {
  std::string text;
  for (int i = 0; i < 1000; ++i) text += "unknown" + std::to_string(i) + ": 1\n";
  Reader r(text);
  ConfigMap m(r.doc, "", r.errors);
  m.finish();
  EXPECT_EQ(r.errors.all().size(), ConfigErrors::kMaxErrors);
  EXPECT_EQ(r.errors.count(), 1000u);
  auto res = r.errors.toResult();
  ASSERT_FALSE(res);
  const auto& msg = res.error().message();
  EXPECT_EQ(std::count(msg.begin(), msg.end(), '\n'), static_cast<long>(ConfigErrors::kMaxErrors));
  EXPECT_NE(msg.find("test.yaml:20:1: unknown19: unknown key\n... and 980 more errors"), std::string::npos) << msg;
}

TEST(LoadYaml, RejectsASecondDocumentAtItsMarker) {
  auto r = loadYaml("a: 1\nb: 2\n---\nc: 3\n", "multi.yaml");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(),
            "multi.yaml:3:1: a second YAML document starts here; the file must hold exactly one");
  // A leading marker opens the first document; an empty trailing one is still a second.
  EXPECT_TRUE(loadYaml("---\na: 1\n", "one.yaml"));
  auto empty = loadYaml("---\na: 1\n---\n", "two.yaml");
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().message().rfind("two.yaml:3:1: a second YAML document", 0), 0u) << empty.error().message();
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/config-reader-test.XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name, const std::string& content) const {
    std::ofstream(path_ + "/" + name) << content;
    return path_ + "/" + name;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(ReadConfigFile, RejectsDirectoriesAndOversizedFiles) {
  TempDir dir;
  auto ok = readConfigFile(dir.file("ok.yaml", "a: 1\n"));
  ASSERT_TRUE(ok) << ok.error().message();
  EXPECT_EQ(*ok, "a: 1\n");
  auto isDir = readConfigFile(dir.path());
  ASSERT_FALSE(isDir);
  EXPECT_EQ(isDir.error().message(), dir.path() + ": Is a directory");
  auto big = readConfigFile(dir.file("big.yaml", std::string(2000, '#')), 1000);
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().message(), dir.path() + "/big.yaml: larger than the limit of 1000 bytes");
  EXPECT_TRUE(readConfigFile(dir.file("edge.yaml", std::string(1000, '#')), 1000));
  auto fifo = dir.path() + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto f = readConfigFile(fifo);
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error().message(), fifo + ": not a regular file");
  EXPECT_FALSE(readConfigFile(dir.path() + "/absent.yaml"));
}

}  // namespace
}  // namespace nodeagent
