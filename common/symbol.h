// Symbol: a short string that many objects repeat (a namespace, a node, zone or port
// name), kept once for the whole process while each object holds a 4-byte id. 10,000
// EndpointSlices name the same few nodes 100,000 times: as std::string that is 32 bytes
// each (more once a name passes 15 characters), as Symbol 4. Ids are never freed: the set
// of such names is small and changes slowly (nodes and namespaces come and go over days),
// so the table grows by a few KB over a node's life. Thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace nodeagent {

class Symbol {
 public:
  Symbol() = default;  // ""
  explicit Symbol(std::string_view text);
  std::string_view view() const;
  std::string str() const { return std::string(view()); }
  bool empty() const { return id_ == 0; }
  bool operator==(const Symbol&) const = default;
  friend bool operator==(const Symbol& a, std::string_view b) { return a.view() == b; }
  // How many distinct strings the process holds (tests, status).
  static size_t count();

 private:
  uint32_t id_ = 0;
};

}  // namespace nodeagent
