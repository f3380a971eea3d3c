// CurlLibrary: the libcurl entry points the Kubernetes client uses, resolved from
// libcurl.so.4 with dlopen the first time a client is created. A node that runs without
// the Kubernetes features (the built-in default) never maps libcurl and the TLS, Kerberos
// and LDAP libraries it pulls in: about 5 MB of resident memory on Debian 12.
#pragma once

#include <curl/curl.h>

#include "common/result.h"

namespace nodeagent::kube {

struct CurlLibrary {
  CURLcode (*globalInit)(long flags);
  CURL* (*easyInit)();
  void (*easyCleanup)(CURL* handle);
  void (*easyReset)(CURL* handle);
  CURLcode (*easySetopt)(CURL* handle, CURLoption option, ...);
  CURLcode (*easyPerform)(CURL* handle);
  CURLcode (*easyGetinfo)(CURL* handle, CURLINFO info, ...);
  const char* (*easyStrerror)(CURLcode code);
  curl_slist* (*slistAppend)(curl_slist* list, const char* value);
  void (*slistFreeAll)(curl_slist* list);
};

// Loads libcurl once (thread-safe) and runs curl_global_init. The error names the library
// and the package to install; it is remembered, so later calls fail the same way.
[[nodiscard]] Result<const CurlLibrary*> curlLibrary();

// Whether libcurl is mapped into this process (for tests of the lazy load).
bool curlLibraryLoaded();

}  // namespace nodeagent::kube
