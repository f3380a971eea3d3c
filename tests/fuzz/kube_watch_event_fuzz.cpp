// One line of a watch stream (ListWatch: Nodes today, Services and EndpointSlices next).
// Properties: an ERROR event never moves the resource version; the decoded object prints
// as JSON that decodes to the same value (the agent re-serialises objects it caches).
#include "kube/list_watch.h"
#include "tests/fuzz/fuzz.h"

using namespace nodeagent;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto ev = kube::decodeWatchEvent(fuzz::text(data, size));
  if (!ev) return 0;
  FUZZ_CHECK(!ev->type.empty());
  if (ev->type == "ERROR") FUZZ_CHECK(ev->resourceVersion.empty());
  auto again = Json::parse(ev->object.dump());
  FUZZ_CHECK(again.has_value());
  FUZZ_CHECK(*again == ev->object);
  return 0;
}
