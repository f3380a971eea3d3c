// An API error body (a Status, or whatever a proxy in front of the API server sends): the
// client turns it into the text of its error.
// Property: a body that is not a Status is shown shortened, on one line.
#include "kube/client.h"
#include "tests/fuzz/fuzz.h"

using namespace nodeagent;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string body(fuzz::text(data, size));
  std::string text = kube::describeStatus(body);
  auto j = Json::parse(body);
  if (!j || j->get("kind").asString() != "Status") {
    FUZZ_CHECK(text.size() <= 200);
    FUZZ_CHECK(text.find_first_of("\r\n") == std::string::npos);
  }
  return 0;
}
