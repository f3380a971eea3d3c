// The daemon's one heap policy, applied once at start (runDaemon), before any thread.
//
//   M_ARENA_MAX = 2: glibc gives threads their own arenas (up to 8 per core); every runner,
//   gRPC and reporter thread that allocates would keep a heap of its own with its own free
//   pages. Two arenas bound that while keeping the main thread and the rest apart.
//   M_MMAP_THRESHOLD = 128 KiB (glibc's default, fixed): a fixed threshold stops glibc
//   from raising it after a large buffer (a kernel dump, an nftables batch) is freed, so
//   later large buffers stay out of the heap and go back to the kernel when freed.
//
//   After every module pass the daemon returns the heap's free pages to the kernel
//   (returnFreeHeap, malloc_trim): a pass that decoded a large list (10,000 Services)
//   frees most of what it allocated, but glibc keeps freed pages inside the heap for
//   reuse, and those count in the RSS of an idle agent until the next such pass.
//
// Nothing else in the program tunes or trims the heap. An operator who sets glibc.malloc
// tunables (GLIBC_TUNABLES) keeps them: the policy is then not applied, and says so.
#pragma once

#include <string>

namespace nodeagent::daemon {

// Applies the policy unless GLIBC_TUNABLES names a glibc.malloc tunable; returns a line
// for the start-up log saying which.
std::string applyHeapPolicy();

// Gives the free pages of every malloc arena back to the kernel. A walk of the free
// chunks: well under a millisecond for the agent's heap; the pages come back zeroed on
// the next allocation that needs them.
void returnFreeHeap();

}  // namespace nodeagent::daemon
