// Giving memory back after bursts of work (start-up, reload, a large sync).
//
// Start-up runs code that an idle daemon never runs again: gRPC and protobuf
// registration, config parsing, the first full read of kernel tables. Its pages stay
// mapped, so they count in the resident set and, being mapped executable pages, the
// kernel keeps them on its active list. releaseIdleMemory() unmaps the clean read-only
// file-backed mappings (the page cache keeps the pages; code that runs again faults
// its page back in, a minor fault) and returns free heap to the kernel.
#pragma once

#include <cstddef>
#include <string>

#include "common/result.h"

namespace nodeagent {

struct ReleasedMemory {
  size_t mappedBytes = 0;   // resident bytes of clean file mappings that were unmapped
  size_t mappings = 0;      // how many mappings were advised
  bool heapTrimmed = false; // malloc_trim gave memory back
};

// Only mappings that are file-backed, not writable, and hold no private (anonymous,
// copy-on-write) page are touched: their content is exactly the file's, so dropping the
// page-table entries cannot lose data. Writable data, relocated read-only data (RELRO),
// the heap, stacks and anonymous memory are never touched.
[[nodiscard]] Result<ReleasedMemory> releaseIdleMemory(const std::string& smapsPath = "/proc/self/smaps");

}  // namespace nodeagent
