// FlatMap: a map kept as one vector of (key, value) pairs sorted by key. A lookup is a
// binary search over contiguous memory (at 10,000 entries it touches a few cache lines
// where a std::map walks 14 scattered nodes), and the map is one allocation: no per-entry
// heap nodes. Inserting or erasing in the middle moves
// the tail, so it suits maps built whole and changed mostly in place (the desired services).
#pragma once

#include <algorithm>
#include <stdexcept>
#include <utility>

#include <vector>

namespace nodeagent::ipvs {

template <class K, class V>
class FlatMap {
 public:
  using value_type = std::pair<K, V>;
  using Storage = std::vector<value_type>;
  using iterator = typename Storage::iterator;
  using const_iterator = typename Storage::const_iterator;

  FlatMap() = default;
  FlatMap(std::initializer_list<value_type> init) {
    for (const auto& e : init) emplace(e.first, e.second);
  }

  iterator begin() { return v_.begin(); }
  iterator end() { return v_.end(); }
  const_iterator begin() const { return v_.begin(); }
  const_iterator end() const { return v_.end(); }
  auto rbegin() const { return v_.rbegin(); }
  auto rend() const { return v_.rend(); }
  size_t size() const { return v_.size(); }
  bool empty() const { return v_.empty(); }
  void clear() { v_.clear(); }
  void reserve(size_t n) { v_.reserve(n); }

  iterator lower_bound(const K& k) {
    return std::lower_bound(v_.begin(), v_.end(), k, [](const value_type& e, const K& key) { return e.first < key; });
  }
  const_iterator lower_bound(const K& k) const {
    return std::lower_bound(v_.begin(), v_.end(), k, [](const value_type& e, const K& key) { return e.first < key; });
  }
  iterator find(const K& k) {
    auto it = lower_bound(k);
    return it != v_.end() && it->first == k ? it : v_.end();
  }
  const_iterator find(const K& k) const {
    auto it = lower_bound(k);
    return it != v_.end() && it->first == k ? it : v_.end();
  }
  bool contains(const K& k) const { return find(k) != v_.end(); }
  V& at(const K& k) {
    auto it = find(k);
    if (it == v_.end()) throw std::out_of_range("FlatMap::at");
    return it->second;
  }
  const V& at(const K& k) const {
    auto it = find(k);
    if (it == v_.end()) throw std::out_of_range("FlatMap::at");
    return it->second;
  }
  V& operator[](const K& k) { return emplace(k, V{}).first->second; }
  // Inserts when `k` is absent; returns the entry and whether it was inserted. The value
  // is made from `args` only when inserted (like std::map::emplace; `k` may point into them).
  template <class... Args>
  std::pair<iterator, bool> emplace(const K& k, Args&&... args) {
    auto it = lower_bound(k);
    if (it != v_.end() && it->first == k) return {it, false};
    K key = k;
    return {v_.insert(it, value_type(std::move(key), V(std::forward<Args>(args)...))), true};
  }
  // Appends in O(1) when `k` sorts after every key (building in order); else emplace.
  template <class... Args>
  iterator emplace_hint(const_iterator, const K& k, Args&&... args) {
    if (v_.empty() || v_.back().first < k) {
      K key = k;
      v_.emplace_back(std::move(key), V(std::forward<Args>(args)...));
      return v_.end() - 1;
    }
    return emplace(k, std::forward<Args>(args)...).first;
  }
  size_t erase(const K& k) {
    auto it = find(k);
    if (it == v_.end()) return 0;
    v_.erase(it);
    return 1;
  }
  iterator erase(const_iterator it) { return v_.erase(it); }
  bool operator==(const FlatMap&) const = default;

 private:
  Storage v_;
};

}  // namespace nodeagent::ipvs
