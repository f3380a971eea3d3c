#include "common/json.h"

#include <simdjson.h>

#include <charconv>
#include <cmath>
#include <cstdio>

namespace nodeagent {

namespace {
const Json kNull;
const std::string kEmptyString;
const Json::Array kEmptyArray;
const Json::Object kEmptyObject;

void appendIndent(std::string& out, int n) { out.append(static_cast<size_t>(n), ' '); }

std::string formatDouble(double d) {
  if (!std::isfinite(d)) return "null";
  // The shortest text that reads back as the same double, fixed or scientific, whichever
  // is shorter: 80 is "80" (printf's shortest %g would say "8e+01").
  // A whole number beyond int64's range is written with an exponent: its plain digits
  // ("18446744073709552000") would read back as an integer too large for any reader.
  char buf[64];
  auto [end, ec] = std::fabs(d) >= 9.2e18
                       ? std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific)
                       : std::to_chars(buf, buf + sizeof buf, d);
  if (ec != std::errc()) return "null";
  return std::string(buf, end);
}

// A YAML plain scalar is safe when it cannot be read back as another type or as syntax.
bool yamlNeedsQuotes(std::string_view s) {
  if (s.empty()) return true;
  static const char* kWords[] = {"true", "false", "yes", "no", "on", "off", "null", "~",
                                 "True", "False", "Yes", "No", "On", "Off", "Null", "NULL",
                                 "TRUE", "FALSE", "YES", "NO", "ON", "OFF"};
  for (auto* w : kWords)
    if (s == w) return true;
  if (s.front() == ' ' || s.back() == ' ') return true;
  if (std::string_view("-?:,[]{}#&*!|>'\"%@`").find(s.front()) != std::string_view::npos) return true;
  bool numeric = true;
  for (char c : s) {
    if (c == '"' || c == '\\') return true;
    // Control characters and bytes beyond ASCII are written escaped, inside quotes.
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f) return true;
    if (!(std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '+' ||
          c == 'e' || c == 'E'))
      numeric = false;
  }
  if (numeric) return true;
  if (s.find(": ") != std::string_view::npos || s.find(" #") != std::string_view::npos) return true;
  if (s.back() == ':') return true;
  return false;
}

Result<Json> fromSimd(simdjson::dom::element e) {
  using simdjson::dom::element_type;
  switch (e.type()) {
    case element_type::ARRAY: {
      Json::Array a;
      for (auto child : e.get_array()) {
        auto v = fromSimd(child);
        if (!v) return v;
        a.push_back(std::move(*v));
      }
      return Json(std::move(a));
    }
    case element_type::OBJECT: {
      Json::Object o;
      for (auto field : e.get_object()) {
        auto v = fromSimd(field.value);
        if (!v) return v;
        o.emplace_back(std::string(field.key), std::move(*v));
      }
      return Json(std::move(o));
    }
    case element_type::INT64: return Json(static_cast<long long>(int64_t(e)));
    case element_type::UINT64: return Json(static_cast<unsigned long long>(uint64_t(e)));
    case element_type::DOUBLE: return Json(double(e));
    case element_type::STRING: return Json(std::string_view(e));
    case element_type::BOOL: return Json(bool(e));
    case element_type::NULL_VALUE: return Json();
  }
  return failInvalid("unknown JSON element");
}
}  // namespace

std::string jsonQuote(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
  return out;
}

int64_t Json::asInt(int64_t dflt) const {
  if (isInt()) return std::get<int64_t>(v_);
  if (isDouble()) {
    // Converting a double outside int64's range (or NaN) is undefined: such a number
    // (1e300 from a hostile or broken peer) is not an integer the caller can use.
    double d = std::get<double>(v_);
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0)) return dflt;
    return static_cast<int64_t>(d);
  }
  return dflt;
}
double Json::asDouble(double dflt) const {
  if (isDouble()) return std::get<double>(v_);
  if (isInt()) return static_cast<double>(std::get<int64_t>(v_));
  return dflt;
}
const std::string& Json::asString() const { return isString() ? std::get<std::string>(v_) : kEmptyString; }
const Json::Array& Json::asArray() const { return isArray() ? std::get<Shared<Array>>(v_).get() : kEmptyArray; }
const Json::Object& Json::asObject() const {
  return isObject() ? std::get<Shared<Object>>(v_).get() : kEmptyObject;
}

Json::Array& Json::mutArray() {
  if (!isArray()) v_ = Shared<Array>(Array{});
  return std::get<Shared<Array>>(v_).mut();
}
Json::Object& Json::mutObject() {
  if (!isObject()) v_ = Shared<Object>(Object{});
  return std::get<Shared<Object>>(v_).mut();
}

Json& Json::set(std::string key, Json value) {
  auto& o = mutObject();
  for (auto& [k, v] : o)
    if (k == key) {
      v = std::move(value);
      return *this;
    }
  o.emplace_back(std::move(key), std::move(value));
  return *this;
}
const Json& Json::get(std::string_view key) const {
  for (const auto& [k, v] : asObject())
    if (k == key) return v;
  return kNull;
}
bool Json::has(std::string_view key) const {
  for (const auto& [k, v] : asObject())
    if (k == key) return true;
  return false;
}
Json& Json::push(Json value) {
  mutArray().push_back(std::move(value));
  return *this;
}
size_t Json::size() const {
  if (isArray()) return asArray().size();
  if (isObject()) return asObject().size();
  return 0;
}

bool operator==(const Json& a, const Json& b) {
  if (a.isNumber() && b.isNumber()) {
    if (a.isInt() && b.isInt()) return a.asInt() == b.asInt();
    return a.asDouble() == b.asDouble();
  }
  if (a.v_.index() != b.v_.index()) return false;
  if (a.isArray()) return a.asArray() == b.asArray();
  if (a.isObject()) return a.asObject() == b.asObject();
  return a.v_ == b.v_;
}

void Json::dumpTo(std::string& out, int indent, int depth) const {
  if (isNull()) {
    out += "null";
  } else if (isBool()) {
    out += asBool() ? "true" : "false";
  } else if (isInt()) {
    out += std::to_string(std::get<int64_t>(v_));
  } else if (isDouble()) {
    out += formatDouble(std::get<double>(v_));
  } else if (isString()) {
    out += jsonQuote(asString());
  } else if (isArray()) {
    const auto& a = asArray();
    if (a.empty()) {
      out += "[]";
      return;
    }
    out.push_back('[');
    for (size_t i = 0; i < a.size(); ++i) {
      if (i) out.push_back(',');
      if (indent >= 0) {
        out.push_back('\n');
        appendIndent(out, indent * (depth + 1));
      }
      a[i].dumpTo(out, indent, depth + 1);
    }
    if (indent >= 0) {
      out.push_back('\n');
      appendIndent(out, indent * depth);
    }
    out.push_back(']');
  } else {
    const auto& o = asObject();
    if (o.empty()) {
      out += "{}";
      return;
    }
    out.push_back('{');
    for (size_t i = 0; i < o.size(); ++i) {
      if (i) out.push_back(',');
      if (indent >= 0) {
        out.push_back('\n');
        appendIndent(out, indent * (depth + 1));
      }
      out += jsonQuote(o[i].first);
      out += indent >= 0 ? ": " : ":";
      o[i].second.dumpTo(out, indent, depth + 1);
    }
    if (indent >= 0) {
      out.push_back('\n');
      appendIndent(out, indent * depth);
    }
    out.push_back('}');
  }
}

std::string Json::dump(int indent) const {
  std::string out;
  dumpTo(out, indent, 0);
  return out;
}

// Writes this value as YAML. A container starts on a new line unless `inlineFirst` says the
// caller already emitted "- " and the first key may follow on the same line.
void Json::yamlTo(std::string& out, int depth, bool inlineFirst) const {
  auto scalar = [&](const Json& v) {
    if (v.isString()) {
      const auto& s = v.asString();
      out += yamlNeedsQuotes(s) ? jsonQuote(s) : s;
    } else {
      out += v.dump();
    }
  };
  if (isArray()) {
    const auto& a = asArray();
    bool first = true;
    for (const auto& item : a) {
      if (!(first && inlineFirst)) appendIndent(out, depth * 2);
      first = false;
      out += "-";
      if ((item.isArray() || item.isObject()) && item.size() > 0) {
        out += " ";
        item.yamlTo(out, depth + 1, true);
      } else {
        out += " ";
        if (item.isArray()) out += "[]";
        else if (item.isObject()) out += "{}";
        else scalar(item);
        out += "\n";
      }
    }
    return;
  }
  if (isObject()) {
    bool first = true;
    for (const auto& [k, v] : asObject()) {
      if (!(first && inlineFirst)) appendIndent(out, depth * 2);
      first = false;
      out += yamlNeedsQuotes(k) ? jsonQuote(k) : k;
      out += ":";
      if ((v.isArray() || v.isObject()) && v.size() > 0) {
        out += "\n";
        // Sequences under a key are indented one level, as most YAML writers do.
        v.yamlTo(out, depth + 1, false);
      } else {
        out += " ";
        if (v.isArray()) out += "[]";
        else if (v.isObject()) out += "{}";
        else scalar(v);
        out += "\n";
      }
    }
    return;
  }
  scalar(*this);
  out += "\n";
}

std::string Json::toYaml() const {
  std::string out;
  if ((isArray() || isObject()) && size() == 0) return isArray() ? "[]\n" : "{}\n";
  yamlTo(out, 0, false);
  return out;
}

Result<Json> Json::parse(std::string_view text) {
  simdjson::dom::parser parser;
  simdjson::padded_string padded(text);
  simdjson::dom::element doc;
  auto err = parser.parse(padded).get(doc);
  if (err) return failInvalid(std::string("invalid JSON: ") + simdjson::error_message(err));
  return fromSimd(doc);
}

}  // namespace nodeagent
