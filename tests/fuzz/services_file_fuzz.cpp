// The IPVS services file parser (standalone nodes' desired services).
// Property: parsing is deterministic, and reusing a previous parse's entries gives the same
// result (the reload path shares unchanged services with the state loaded before).
#include "ipvs/service_source.h"
#include "tests/fuzz/fuzz.h"

using namespace nodeagent;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::quietLogs();
  std::string text(fuzz::text(data, size));
  auto first = ipvs::parseServiceFile(text, "fuzz.yaml");
  auto second = ipvs::parseServiceFile(text, "fuzz.yaml", first ? &*first : nullptr);
  FUZZ_CHECK(first.has_value() == second.has_value());
  if (!first) {
    FUZZ_CHECK(first.error().message() == second.error().message());
    return 0;
  }
  FUZZ_CHECK(first->size() == second->size());
  for (auto a = first->begin(), b = second->begin(); a != first->end(); ++a, ++b)
    FUZZ_CHECK(a->first == b->first && *a->second == *b->second);
  return 0;
}
