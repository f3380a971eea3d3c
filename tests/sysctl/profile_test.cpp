// Unit tests: profile merging, scale-aware values, normalisation, modes, key syntax, config.
#include "sysctl/profile.h"

#include <gtest/gtest.h>

#include "daemon/config.h"
#include "sysctl/config.h"

namespace nodeagent::sysctl {
namespace {

const KeySpec* find(const std::vector<KeySpec>& keys, std::string_view k) {
  for (const auto& s : keys)
    if (s.key == k) return &s;
  return nullptr;
}

TEST(Profile, ConntrackScalesWithCpus) {
  ScaleInputs in;
  in.cpus = 2;
  EXPECT_EQ(conntrackMaxFor(in), 131072u);  // the floor
  in.cpus = 16;
  EXPECT_EQ(conntrackMaxFor(in), 524288u);  // 32768 x 16
  in.conntrackMax = 1000000;
  EXPECT_EQ(conntrackMaxFor(in), 1000000u);  // configured wins
  in = ScaleInputs{};
  in.cpus = 8;
  auto keys = builtinProfile("large-cluster", in);
  ASSERT_TRUE(keys);
  EXPECT_EQ(find(*keys, "net.netfilter.nf_conntrack_max")->value, "262144");
  EXPECT_EQ(find(*keys, "net.netfilter.nf_conntrack_max")->mode, Mode::kMin);
  EXPECT_EQ(find(*keys, kHashsizeKey)->value, "65536");
  EXPECT_EQ(find(*keys, kHashsizeKey)->mode, Mode::kMin);  // only ever raised
  EXPECT_EQ(find(*keys, "net.netfilter.nf_conntrack_tcp_timeout_established")->value, "86400");
  EXPECT_EQ(find(*keys, "net.netfilter.nf_conntrack_tcp_timeout_close_wait")->value, "3600");
}

TEST(Profile, EveryKeyHasAReasonAndValidSyntax) {
  auto keys = builtinProfile("large-cluster", ScaleInputs{});
  ASSERT_TRUE(keys);
  EXPECT_GE(keys->size(), 26u);
  for (const auto& k : *keys) {
    EXPECT_FALSE(k.reason.empty()) << k.key;
    EXPECT_EQ(k.reason.find('\n'), std::string::npos) << k.key;
    EXPECT_FALSE(keySyntaxError(k.key)) << k.key;
  }
  EXPECT_TRUE(validateKeys(*keys));
  for (const char* k : {"fs.file-max", "fs.inotify.max_user_watches", "vm.max_map_count", "kernel.panic",
                        "net.ipv4.neigh.default.gc_thresh3", "net.core.somaxconn", "net.ipv4.tcp_rmem",
                        "net.ipv4.ip_local_reserved_ports", "vm.overcommit_memory", "kernel.panic_on_oops",
                        "net.core.netdev_max_backlog", "fs.inotify.max_user_instances"})
    EXPECT_TRUE(find(*keys, k)) << k;
  EXPECT_FALSE(builtinProfile("small", ScaleInputs{}));
  EXPECT_TRUE(builtinProfile("none", ScaleInputs{})->empty());
}

TEST(Profile, MergePrecedenceAndDrop) {
  std::vector<KeySpec> profile = {{"net.core.somaxconn", "32768", Mode::kMin, "p", "profile large-cluster"},
                                  {"kernel.panic", "10", Mode::kExact, "p", "profile large-cluster"}};
  std::vector<KeySpec> contributed = {{"net.ipv4.vs.conntrack", "1", Mode::kExact, "ipvs needs it", "ipvs"},
                                      {"net.core.somaxconn", "40000", Mode::kMin, "ipvs wants more", "ipvs"}};
  std::vector<KeySpec> user = {{"net.core.somaxconn", "65535", Mode::kExact, "", "config"},
                               {"vm.swappiness", "10", Mode::kExact, "mine", "config"}};
  auto merged = mergeKeys(profile, contributed, user, {"kernel.panic"});
  ASSERT_EQ(merged.size(), 3u);
  EXPECT_EQ(merged[0].key, "net.core.somaxconn");  // keeps the profile's place
  EXPECT_EQ(merged[0].value, "65535");             // the user wins
  EXPECT_EQ(merged[0].source, "config");
  EXPECT_EQ(merged[0].reason, "ipvs wants more");  // an empty reason inherits the one it overrides
  EXPECT_EQ(merged[1].key, "net.ipv4.vs.conntrack");
  EXPECT_EQ(merged[1].source, "ipvs");
  EXPECT_EQ(merged[2].key, "vm.swappiness");
  EXPECT_FALSE(find(merged, "kernel.panic"));
}

TEST(Profile, Normalize) {
  EXPECT_EQ(normalize("4096\t87380\t6291456\n"), "4096 87380 6291456");
  EXPECT_EQ(normalize("  1  \n"), "1");
  EXPECT_EQ(normalize(""), "");
  EXPECT_EQ(normalize("30000-32767\n"), "30000-32767");
}

TEST(Profile, ModesCompareAndTarget) {
  KeySpec min{"net.core.somaxconn", "32768", Mode::kMin};
  EXPECT_TRUE(satisfies(min, "65535"));
  EXPECT_TRUE(satisfies(min, "32768\n"));
  EXPECT_FALSE(satisfies(min, "4096"));
  EXPECT_EQ(targetValue(min, "4096"), "32768");
  KeySpec max{"net.ipv4.tcp_fin_timeout", "30", Mode::kMax};
  EXPECT_TRUE(satisfies(max, "15"));
  EXPECT_FALSE(satisfies(max, "60"));
  EXPECT_EQ(targetValue(max, "60"), "30");
  KeySpec exact{"net.ipv4.tcp_tw_reuse", "1", Mode::kExact};
  EXPECT_FALSE(satisfies(exact, "2"));
  EXPECT_EQ(targetValue(exact, "2"), "1");
  // Vectors: element-wise; the write keeps elements already above the minimum.
  KeySpec rmem{"net.ipv4.tcp_rmem", "4096 87380 16777216", Mode::kMin};
  EXPECT_TRUE(satisfies(rmem, "4096\t131072\t33554432"));
  EXPECT_FALSE(satisfies(rmem, "4096\t131072\t6291456"));
  EXPECT_EQ(targetValue(rmem, "4096\t131072\t6291456"), "4096 131072 16777216");
  // Different lengths cannot be compared element-wise: the desired value is written.
  EXPECT_FALSE(satisfies(rmem, "4096 87380"));
  EXPECT_EQ(targetValue(rmem, "4096 87380"), "4096 87380 16777216");
}

TEST(Profile, KeySyntax) {
  EXPECT_FALSE(keySyntaxError("net.core.somaxconn"));
  EXPECT_FALSE(keySyntaxError("net.ipv4.conf.eth0/100.rp_filter"));
  EXPECT_FALSE(keySyntaxError("/sys/module/nf_conntrack/parameters/hashsize"));
  EXPECT_TRUE(keySyntaxError("somaxconn"));
  EXPECT_TRUE(keySyntaxError("net..core"));
  EXPECT_TRUE(keySyntaxError("net.core.somaxconn "));
  EXPECT_TRUE(keySyntaxError("foo.bar"));
  EXPECT_TRUE(keySyntaxError("net.core.some=thing"));
  EXPECT_TRUE(keySyntaxError("/etc/passwd"));
  EXPECT_TRUE(keySyntaxError("/sys/module/nf_conntrack/parameters/../../x"));
  EXPECT_TRUE(isNumericValue("4096 87380 16777216"));
  EXPECT_FALSE(isNumericValue("30000-32767"));
  EXPECT_FALSE(isNumericValue("lots"));
}

TEST(Config, Defaults) {
  auto c = daemon::parseConfig("", "<built-in>");
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_TRUE(c->sysctl.enabled);
  EXPECT_EQ(c->sysctl.profile, "large-cluster");
  EXPECT_EQ(c->sysctl.driftMode, DriftMode::kEnforce);
  EXPECT_EQ(c->sysctl.driftInterval, std::chrono::seconds(60));
  EXPECT_DOUBLE_EQ(c->sysctl.fillWarningPercent, 90);
}

TEST(Config, OverridesDropsAndAddedKeys) {
  auto c = daemon::parseConfig(R"(sysctl:
  profile: large-cluster
  drift_mode: report
  drift_interval: 5s
  conntrack:
    max: 1048576
    fill_warning_percent: 75
  drop: [kernel.panic]
  keys:
    net.core.somaxconn: 65535
    net.ipv4.tcp_fin_timeout: {value: 30, mode: max, reason: "free sockets sooner"}
)", "test.yaml");
  ASSERT_TRUE(c) << c.error().message();
  const auto& s = c->sysctl;
  EXPECT_EQ(s.driftMode, DriftMode::kReport);
  EXPECT_EQ(s.scale.conntrackMax, 1048576u);
  EXPECT_DOUBLE_EQ(s.fillWarningPercent, 75);
  ASSERT_EQ(s.keys.size(), 2u);
  EXPECT_EQ(s.keys[0].mode, Mode::kMin);  // short form keeps the profile's mode
  EXPECT_EQ(s.keys[1].mode, Mode::kMax);
  EXPECT_EQ(s.keys[1].reason, "free sockets sooner");
  auto profile = builtinProfile(s.profile, s.scale);
  auto merged = mergeKeys(*profile, {}, s.keys, s.drop);
  EXPECT_EQ(find(merged, "net.netfilter.nf_conntrack_max")->value, "1048576");
  EXPECT_EQ(find(merged, kHashsizeKey)->value, "262144");
  EXPECT_FALSE(find(merged, "kernel.panic"));
  EXPECT_EQ(find(merged, "net.core.somaxconn")->value, "65535");
}

// A bad profile is rejected at load with file, line and key.
TEST(Config, BadKeysRejectedWithFileLineKey) {
  auto c = daemon::parseConfig("sysctl:\n  keys:\n    net.core.somaxconn: lots\n    somaxconn: 1\n"
                              "    net.ipv4.ip_local_reserved_ports: {value: 30000-32767, mode: min}\n"
                              "    vm.max_map_count: {mode: min}\n  drop: [\"net..x\"]\n  profile: huge\n",
                              "/etc/nodeagent/config.yaml");
  ASSERT_FALSE(c);
  const auto& m = c.error().message();
  EXPECT_NE(m.find("/etc/nodeagent/config.yaml:3:"), std::string::npos) << m;
  EXPECT_NE(m.find("sysctl.keys.net.core.somaxconn: value \"lots\" is not numeric"), std::string::npos) << m;
  EXPECT_NE(m.find("/etc/nodeagent/config.yaml:4:"), std::string::npos) << m;
  EXPECT_NE(m.find("sysctl.keys.somaxconn: not a sysctl name"), std::string::npos) << m;
  EXPECT_NE(m.find("mode min needs a numeric value"), std::string::npos) << m;
  EXPECT_NE(m.find("needs a value"), std::string::npos) << m;
  EXPECT_NE(m.find("sysctl.drop"), std::string::npos) << m;
  EXPECT_NE(m.find("sysctl.profile"), std::string::npos) << m;
}

TEST(Config, UnknownFieldRejected) {
  auto c = daemon::parseConfig("sysctl:\n  keys:\n    vm.max_map_count: {value: 1, moed: min}\n  colour: red\n", "c.yaml");
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message().find("c.yaml:3:"), std::string::npos) << c.error().message();
  EXPECT_NE(c.error().message().find("moed: unknown key"), std::string::npos) << c.error().message();
  EXPECT_NE(c.error().message().find("sysctl.colour: unknown key"), std::string::npos) << c.error().message();
}

}  // namespace
}  // namespace nodeagent::sysctl
