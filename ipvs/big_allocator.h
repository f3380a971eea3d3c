// BigAllocator: an allocator for large, short-lived buffers (a parse's flat vectors, a
// kernel dump). Anything of 64 KiB or more is mmap-ed and unmapped when released, so it
// never lands in the heap: glibc raises its mmap threshold after a large free, after which
// a buffer growing by doubling would leave MBs of holes in the heap, and long-lived data
// allocated later into those holes would keep their pages resident.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <new>
#include <vector>

namespace nodeagent::ipvs {

template <class T>
struct BigAllocator {
  using value_type = T;
  static constexpr size_t kMapped = 64 << 10;
  BigAllocator() = default;
  template <class U>
  BigAllocator(const BigAllocator<U>&) {}  // NOLINT(google-explicit-constructor): allocator rebinding
  T* allocate(size_t n) {
    size_t bytes = n * sizeof(T);
    if (bytes < kMapped) return static_cast<T*>(::operator new(bytes));
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t n) {
    size_t bytes = n * sizeof(T);
    if (bytes < kMapped) ::operator delete(p);
    else ::munmap(p, bytes);
  }
  template <class U>
  bool operator==(const BigAllocator<U>&) const { return true; }
};

template <class T>
using BigVector = std::vector<T, BigAllocator<T>>;

}  // namespace nodeagent::ipvs
