// Json: a small dynamic value for module state, control payloads and CLI output.
// Parsing goes through simdjson; writing (JSON and YAML) is done here.
#pragma once

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "common/result.h"

namespace nodeagent {

class Json {
 public:
  using Array = std::vector<Json>;
  // Keys keep insertion order so output reads in the order the producer chose.
  using Object = std::vector<std::pair<std::string, Json>>;

  Json() = default;  // null
  Json(std::nullptr_t) {}
  Json(bool b) : v_(b) {}
  Json(int i) : v_(static_cast<int64_t>(i)) {}
  Json(unsigned i) : v_(static_cast<int64_t>(i)) {}
  Json(long i) : v_(static_cast<int64_t>(i)) {}
  Json(long long i) : v_(static_cast<int64_t>(i)) {}
  // An unsigned value beyond int64 is kept as a double (JSON has one number type), not
  // wrapped to a negative integer.
  Json(unsigned long i) : Json(static_cast<unsigned long long>(i)) {}
  Json(unsigned long long i) {
    if (i <= static_cast<unsigned long long>(INT64_MAX))
      v_ = static_cast<int64_t>(i);
    else
      v_ = static_cast<double>(i);
  }
  Json(double d) : v_(d) {}
  Json(const char* s) : v_(std::string(s)) {}
  Json(std::string s) : v_(std::move(s)) {}
  Json(std::string_view s) : v_(std::string(s)) {}
  Json(Array a) : v_(Shared<Array>(std::move(a))) {}
  Json(Object o) : v_(Shared<Object>(std::move(o))) {}

  static Json object() { return Json(Object{}); }
  static Json array() { return Json(Array{}); }

  bool isNull() const { return std::holds_alternative<std::monostate>(v_); }
  bool isBool() const { return std::holds_alternative<bool>(v_); }
  bool isInt() const { return std::holds_alternative<int64_t>(v_); }
  bool isDouble() const { return std::holds_alternative<double>(v_); }
  bool isNumber() const { return isInt() || isDouble(); }
  bool isString() const { return std::holds_alternative<std::string>(v_); }
  bool isArray() const { return std::holds_alternative<Shared<Array>>(v_); }
  bool isObject() const { return std::holds_alternative<Shared<Object>>(v_); }

  bool asBool(bool dflt = false) const { return isBool() ? std::get<bool>(v_) : dflt; }
  int64_t asInt(int64_t dflt = 0) const;
  double asDouble(double dflt = 0) const;
  const std::string& asString() const;  // "" when not a string
  const Array& asArray() const;         // empty when not an array
  const Object& asObject() const;       // empty when not an object

  // Object access. set() replaces an existing key or appends; get() returns null when absent.
  Json& set(std::string key, Json value);
  const Json& get(std::string_view key) const;
  bool has(std::string_view key) const;
  // Array append.
  Json& push(Json value);
  size_t size() const;

  // Compact (indent < 0) or pretty JSON.
  std::string dump(int indent = -1) const;
  // Block-style YAML.
  std::string toYaml() const;
  // Parse JSON text (simdjson).
  [[nodiscard]] static Result<Json> parse(std::string_view text);

  friend bool operator==(const Json& a, const Json& b);

 private:
  // A container shared by Json copies and copied on write, with its own reference count.
  // Changing it in place is only safe once no other copy holds it, and that decision must
  // also see everything the last other holder did before it let go, possibly on another
  // thread (a reader of StateStore::agentInfo while the reporter publishes): the count is
  // dropped with release and read with acquire. shared_ptr::use_count is a relaxed load
  // that orders nothing, which ThreadSanitizer reported as a data race.
  template <typename T>
  class Shared {
   public:
    explicit Shared(T value) : box_(new Box{1, std::move(value)}) {}
    Shared(const Shared& o) noexcept : box_(o.box_) {
      if (box_) box_->refs.fetch_add(1, std::memory_order_relaxed);
    }
    Shared(Shared&& o) noexcept : box_(std::exchange(o.box_, nullptr)) {}
    Shared& operator=(Shared o) noexcept {
      std::swap(box_, o.box_);
      return *this;
    }
    ~Shared() {
      if (box_ && box_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete box_;
    }
    const T& get() const { return box_->value; }
    bool operator==(const Shared& o) const { return box_ == o.box_ || get() == o.get(); }
    // This copy's own container to change: copied first while another copy holds it.
    T& mut() {
      if (box_->refs.load(std::memory_order_acquire) != 1) *this = Shared(T(box_->value));
      return box_->value;
    }

   private:
    struct Box {
      std::atomic<long> refs;
      T value;
    };
    Box* box_;
  };

  void dumpTo(std::string& out, int indent, int depth) const;
  void yamlTo(std::string& out, int depth, bool inlineFirst) const;
  Array& mutArray();
  Object& mutObject();

  // Containers are shared and copied on write so Json values are cheap to pass around.
  std::variant<std::monostate, bool, int64_t, double, std::string, Shared<Array>, Shared<Object>> v_;
};

// Escapes a string as a JSON string literal, quotes included.
std::string jsonQuote(std::string_view s);

}  // namespace nodeagent
