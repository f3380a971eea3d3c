// Json: a small dynamic value for module state, control payloads and CLI output.
// Parsing goes through simdjson; writing (JSON and YAML) is done here.
#pragma once

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
  Json(unsigned long i) : v_(static_cast<int64_t>(i)) {}
  Json(unsigned long long i) : v_(static_cast<int64_t>(i)) {}
  Json(double d) : v_(d) {}
  Json(const char* s) : v_(std::string(s)) {}
  Json(std::string s) : v_(std::move(s)) {}
  Json(std::string_view s) : v_(std::string(s)) {}
  Json(Array a) : v_(std::make_shared<Array>(std::move(a))) {}
  Json(Object o) : v_(std::make_shared<Object>(std::move(o))) {}

  static Json object() { return Json(Object{}); }
  static Json array() { return Json(Array{}); }

  bool isNull() const { return std::holds_alternative<std::monostate>(v_); }
  bool isBool() const { return std::holds_alternative<bool>(v_); }
  bool isInt() const { return std::holds_alternative<int64_t>(v_); }
  bool isDouble() const { return std::holds_alternative<double>(v_); }
  bool isNumber() const { return isInt() || isDouble(); }
  bool isString() const { return std::holds_alternative<std::string>(v_); }
  bool isArray() const { return std::holds_alternative<std::shared_ptr<Array>>(v_); }
  bool isObject() const { return std::holds_alternative<std::shared_ptr<Object>>(v_); }

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
  void dumpTo(std::string& out, int indent, int depth) const;
  void yamlTo(std::string& out, int depth, bool inlineFirst) const;
  Array& mutArray();
  Object& mutObject();

  // Containers are shared and copied on write so Json values are cheap to pass around.
  std::variant<std::monostate, bool, int64_t, double, std::string, std::shared_ptr<Array>,
               std::shared_ptr<Object>>
      v_;
};

// Escapes a string as a JSON string literal, quotes included.
std::string jsonQuote(std::string_view s);

}  // namespace nodeagent
