// Image references (prefetch sets, `nodeagentctl images pull`).
// Property: normalisation is idempotent: the canonical form of an accepted reference is
// accepted and is its own canonical form.
#include "imagepull/image_ref.h"
#include "tests/fuzz/fuzz.h"

using namespace nodeagent;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto ref = imagepull::parseImageRef(fuzz::text(data, size));
  if (!ref) return 0;
  std::string canonical = ref->canonical();
  auto again = imagepull::parseImageRef(canonical);
  FUZZ_CHECK(again.has_value());
  FUZZ_CHECK(again->canonical() == canonical);
  return 0;
}
