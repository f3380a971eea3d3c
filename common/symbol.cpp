#include "common/symbol.h"

#include <array>
#include <atomic>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <unordered_map>

namespace nodeagent {

namespace {

// Strings live in chunks that never move, so view() reads them without a lock: an id
// reaches a reader only through the object that holds it, handed over under the owner's
// own lock, after the string was written.
constexpr uint32_t kChunkBits = 10;
constexpr uint32_t kChunk = 1u << kChunkBits;
constexpr uint32_t kChunks = 1u << 12;  // 4 million symbols

struct Table {
  std::mutex mu;
  std::array<std::atomic<std::string*>, kChunks> chunks{};
  uint32_t next = 1;                                 // id 0 is ""
  std::unordered_map<std::string_view, uint32_t> ids;  // views into the chunks
};

Table& table() {
  static Table* t = new Table;  // never destroyed: symbols outlive every static object
  return *t;
}

}  // namespace

Symbol::Symbol(std::string_view text) {
  if (text.empty()) return;
  Table& t = table();
  std::lock_guard l(t.mu);
  if (auto it = t.ids.find(text); it != t.ids.end()) {
    id_ = it->second;
    return;
  }
  uint32_t id = t.next;
  uint32_t c = id >> kChunkBits;
  if (c >= kChunks) std::abort();  // 4 million distinct names: a bug, not a cluster
  std::string* chunk = t.chunks[c].load(std::memory_order_relaxed);
  if (!chunk) {
    chunk = new std::string[kChunk];
    t.chunks[c].store(chunk, std::memory_order_release);
  }
  std::string& s = chunk[id & (kChunk - 1)];
  s.assign(text);
  t.ids.emplace(std::string_view(s), id);
  ++t.next;
  id_ = id;
}

std::string_view Symbol::view() const {
  if (id_ == 0) return {};
  const std::string* chunk = table().chunks[id_ >> kChunkBits].load(std::memory_order_acquire);
  return chunk[id_ & (kChunk - 1)];
}

size_t Symbol::count() {
  Table& t = table();
  std::lock_guard l(t.mu);
  return t.ids.size();
}

}  // namespace nodeagent
