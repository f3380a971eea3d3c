#include "daemon/heap_policy.h"

#include <malloc.h>

#include <cstdlib>
#include <string_view>

namespace nodeagent::daemon {

std::string applyHeapPolicy() {
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (tunables && std::string_view(tunables).find("glibc.malloc.") != std::string_view::npos)
    return "heap: GLIBC_TUNABLES sets glibc.malloc tunables; leaving the heap as they say";
  bool ok = ::mallopt(M_ARENA_MAX, 2) == 1 && ::mallopt(M_MMAP_THRESHOLD, 128 << 10) == 1;
  return ok ? "heap: 2 malloc arenas, fixed 128 KiB mmap threshold" : "heap: mallopt refused the heap policy";
}

void returnFreeHeap() { ::malloc_trim(0); }

}  // namespace nodeagent::daemon
