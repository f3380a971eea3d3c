// The daemon's one heap policy, applied once at start (runDaemon), before any thread.
//
//   M_ARENA_MAX = 2: glibc gives threads their own arenas (up to 8 per core); every runner,
//   gRPC and reporter thread that allocates would keep a heap of its own with its own free
//   pages. Two arenas bound that while keeping the main thread and the rest apart.
//   M_MMAP_THRESHOLD = 128 KiB (glibc's default, fixed): a fixed threshold stops glibc
//   from raising it after a large buffer (a kernel dump, an nftables batch) is freed, so
//   later large buffers stay out of the heap and go back to the kernel when freed.
//
// Nothing else in the program tunes or trims the heap. An operator who sets glibc.malloc
// tunables (GLIBC_TUNABLES) keeps them: the policy is then not applied, and says so.
#pragma once

#include <string>

namespace nodeagent::daemon {

// Applies the policy unless GLIBC_TUNABLES names a glibc.malloc tunable; returns a line
// for the start-up log saying which.
std::string applyHeapPolicy();

}  // namespace nodeagent::daemon
