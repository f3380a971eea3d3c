#include "cli/render.h"

#include <gtest/gtest.h>

namespace nodeagent::cli {
namespace {

TEST(Render, ItemsBecomeAlignedRowsWithHeaders) {
  Json p = Json::object()
               .set("columns", Json::Array{"key", "current_value"})
               .set("items", Json::Array{Json::object().set("key", "net.core.somaxconn").set("current_value", 4096),
                                         Json::object().set("key", "vm.max_map_count").set("current_value", "65530")})
               .set("changed", 1);
  EXPECT_EQ(renderTable(p),
            "KEY                 CURRENT VALUE\n"
            "net.core.somaxconn  4096\n"
            "vm.max_map_count    65530\n"
            "\n"
            "changed:  1\n");
}

TEST(Render, ObjectsBecomeKeyValueLines) {
  Json p = Json::object().set("a", 1).set("b", Json::object().set("c", "x")).set("l", Json::Array{1, 2});
  EXPECT_EQ(renderTable(p), "a:    1\nb.c:  x\nl:    1,2\n");
}

TEST(Render, EmptyItemsSayNone) {
  EXPECT_EQ(renderTable(Json::object().set("items", Json::array())), "(none)\n");
}

TEST(Render, JsonAndYamlCarryTheSameData) {
  Json p = Json::object().set("items", Json::Array{Json::object().set("k", "v")});
  auto json = Json::parse(render(p, OutputFormat::kJson));
  ASSERT_TRUE(json);
  EXPECT_EQ(*json, p);
  EXPECT_EQ(render(p, OutputFormat::kYaml), "items:\n  - k: v\n");
}

}  // namespace
}  // namespace nodeagent::cli
