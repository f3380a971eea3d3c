#include "kube/curl_library.h"

#include <dlfcn.h>

#include <mutex>

namespace nodeagent::kube {

namespace {

constexpr const char* kSoname = "libcurl.so.4";

struct Loaded {
  CurlLibrary lib{};
  std::string error;  // empty when loaded
};

template <typename Fn>
bool resolve(void* handle, const char* name, Fn& fn, std::string& error) {
  void* sym = ::dlsym(handle, name);
  if (!sym) {
    error = std::string(kSoname) + " has no symbol " + name;
    return false;
  }
  fn = reinterpret_cast<Fn>(sym);
  return true;
}

Loaded load() {
  Loaded out;
  // RTLD_NODELETE: the client keeps handles across the process lifetime; never unload.
  void* h = ::dlopen(kSoname, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (!h) {
    const char* why = ::dlerror();
    out.error = std::string("cannot load ") + kSoname + " (install the libcurl4 package; the Kubernetes "
                "features need it): " + (why ? why : "unknown error");
    return out;
  }
  CurlLibrary& l = out.lib;
  bool ok = resolve(h, "curl_global_init", l.globalInit, out.error) &&
            resolve(h, "curl_easy_init", l.easyInit, out.error) &&
            resolve(h, "curl_easy_cleanup", l.easyCleanup, out.error) &&
            resolve(h, "curl_easy_reset", l.easyReset, out.error) &&
            resolve(h, "curl_easy_setopt", l.easySetopt, out.error) &&
            resolve(h, "curl_easy_perform", l.easyPerform, out.error) &&
            resolve(h, "curl_easy_getinfo", l.easyGetinfo, out.error) &&
            resolve(h, "curl_easy_strerror", l.easyStrerror, out.error) &&
            resolve(h, "curl_slist_append", l.slistAppend, out.error) &&
            resolve(h, "curl_slist_free_all", l.slistFreeAll, out.error);
  if (!ok) return out;
  if (CURLcode rc = l.globalInit(CURL_GLOBAL_DEFAULT); rc != CURLE_OK)
    out.error = std::string("curl_global_init failed: ") + l.easyStrerror(rc);
  return out;
}

const Loaded& loaded() {
  static const Loaded l = load();
  return l;
}

}  // namespace

Result<const CurlLibrary*> curlLibrary() {
  const Loaded& l = loaded();
  if (!l.error.empty()) return failInvalid(l.error);
  return &l.lib;
}

bool curlLibraryLoaded() {
  void* h = ::dlopen(kSoname, RTLD_LAZY | RTLD_NOLOAD);
  if (h) ::dlclose(h);
  return h != nullptr;
}

}  // namespace nodeagent::kube
