// Registry credentials from a docker config.json (imagepull::CredentialStore).
// Properties: an error never quotes the file's content (it may hold secrets), and every
// host the store lists can be looked up.
#include "imagepull/credentials.h"
#include "tests/fuzz/fuzz.h"

using namespace nodeagent;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(fuzz::text(data, size));
  (void)imagepull::decodeBase64(text);
  auto store = imagepull::CredentialStore::parse(text, "config.json");
  if (!store) {
    // Messages are "config.json: ..." plus at most an entry's key; never a value.
    FUZZ_CHECK(store.error().message().rfind("config.json: ", 0) == 0);
    return 0;
  }
  for (const auto& host : store->hosts()) FUZZ_CHECK(store->lookup(host).has_value());
  return 0;
}
