#include "kube/curl_library.h"

#include <dlfcn.h>

#include <mutex>

namespace nodeagent::kube {

namespace {

constexpr const char* kSoname = "libcurl.so.4";

template <typename Fn>
Result<void> resolve(void* handle, const char* name, Fn& fn) {
  void* sym = ::dlsym(handle, name);
  if (!sym) return failInvalid(std::string(kSoname) + " has no symbol " + name);
  fn = reinterpret_cast<Fn>(sym);
  return {};
}

Result<CurlLibrary> load() {
  // RTLD_NODELETE: the client keeps handles across the process lifetime; never unload.
  void* h = ::dlopen(kSoname, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (!h) {
    const char* why = ::dlerror();
    return failInvalid(std::string("cannot load ") + kSoname + " (install the libcurl4 package; the Kubernetes "
                       "features need it): " + (why ? why : "unknown error"));
  }
  CurlLibrary l{};
  for (auto r : {resolve(h, "curl_global_init", l.globalInit), resolve(h, "curl_easy_init", l.easyInit),
                 resolve(h, "curl_easy_cleanup", l.easyCleanup), resolve(h, "curl_easy_reset", l.easyReset),
                 resolve(h, "curl_easy_setopt", l.easySetopt), resolve(h, "curl_easy_perform", l.easyPerform),
                 resolve(h, "curl_easy_getinfo", l.easyGetinfo), resolve(h, "curl_easy_strerror", l.easyStrerror),
                 resolve(h, "curl_slist_append", l.slistAppend), resolve(h, "curl_slist_free_all", l.slistFreeAll)})
    if (!r) return fail(r.error());
  if (CURLcode rc = l.globalInit(CURL_GLOBAL_DEFAULT); rc != CURLE_OK)
    return failInvalid(std::string("curl_global_init failed: ") + l.easyStrerror(rc));
  return l;
}

// Loaded once; a failure is remembered, so later calls fail the same way.
const Result<CurlLibrary>& loaded() {
  static const Result<CurlLibrary> l = load();
  return l;
}

}  // namespace

Result<const CurlLibrary*> curlLibrary() {
  const auto& l = loaded();
  if (!l) return fail(l.error());
  return &*l;
}

bool curlLibraryLoaded() {
  void* h = ::dlopen(kSoname, RTLD_LAZY | RTLD_NOLOAD);
  if (h) ::dlclose(h);
  return h != nullptr;
}

}  // namespace nodeagent::kube
