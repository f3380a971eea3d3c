// A Node object from the API server (list, watch, GET): the reporter reads the agent's own
// conditions from it and builds its strategic merge patch from them.
#include "reporter/node_status.h"
#include "tests/fuzz/fuzz.h"

using namespace nodeagent;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto node = Json::parse(fuzz::text(data, size));
  if (!node) return 0;
  auto owned = reporter::ownedConditions(*node, "nodeagent.io/");
  for (const auto& [type, c] : owned) FUZZ_CHECK(type.rfind("nodeagent.io/", 0) == 0 && type == c.type);
  // The patch the reporter would send back is valid JSON.
  auto patch = Json::parse(reporter::buildStatusPatch(owned, {}));
  FUZZ_CHECK(patch.has_value());
  FUZZ_CHECK(patch->get("status").get("conditions").size() == owned.size());
  return 0;
}
