// The daemon's config reader (daemon::parseConfig: strict YAML, every module's section).
// Property: a config it accepts, printed as the effective config (--check-config), is
// accepted again and means the same.
#include "daemon/config.h"
#include "tests/fuzz/fuzz.h"

using namespace nodeagent;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::quietLogs();
  std::string text(fuzz::text(data, size));
  auto config = daemon::parseConfig(text, "fuzz.yaml");
  if (!config) {
    FUZZ_CHECK(!config.error().message().empty());
    return 0;
  }
  Json effective = config->toJson();
  auto again = daemon::parseConfig(effective.toYaml(), "effective.yaml");
  FUZZ_CHECK(again.has_value());
  FUZZ_CHECK(again->toJson() == effective);
  return 0;
}
