#include "common/config_reader.h"

#include <charconv>
#include <cmath>
#include <limits>

namespace nodeagent {

namespace {
std::string where(const std::string& file, const YAML::Mark& mark) {
  if (mark.line < 0) return file;
  return file + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
}

const char* typeName(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map: return "a mapping";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Scalar: return "a scalar";
    case YAML::NodeType::Null: return "null";
    default: return "nothing";
  }
}

bool parseInt(const std::string& s, int64_t& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size() && !s.empty();
}
}  // namespace

void ConfigErrors::add(const YAML::Mark& mark, const std::string& keyPath, const std::string& message) {
  errors_.push_back(where(file_, mark) + ": " + (keyPath.empty() ? "" : keyPath + ": ") + message);
}

Result<void> ConfigErrors::toResult() const {
  if (errors_.empty()) return {};
  std::string msg;
  for (size_t i = 0; i < errors_.size(); ++i) {
    if (i) msg += "\n";
    msg += errors_[i];
  }
  return failInvalid(msg);
}

Result<std::chrono::milliseconds> parseDuration(std::string_view text) {
  using namespace std::chrono;
  std::string s(text);
  int64_t whole;
  if (parseInt(s, whole)) {
    if (whole < 0) return failInvalid("negative duration \"" + s + "\"");
    // Checked before multiplying: 18446744073709553 s overflowed (undefined) into 1384ms
    // (found by the config fuzz target under UBSan).
    if (whole > std::numeric_limits<int64_t>::max() / 1000) return failInvalid("duration \"" + s + "\" is too large");
    return milliseconds(whole * 1000);
  }
  if (s.empty()) return failInvalid("empty duration");
  double totalMs = 0;
  size_t i = 0;
  while (i < s.size()) {
    size_t start = i;
    while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
    if (start == i) return failInvalid("invalid duration \"" + s + "\" (use e.g. 500ms, 10s, 5m, 1h)");
    double value = std::strtod(s.substr(start, i - start).c_str(), nullptr);
    size_t unitStart = i;
    while (i < s.size() && std::isalpha(static_cast<unsigned char>(s[i]))) ++i;
    std::string unit = s.substr(unitStart, i - unitStart);
    double factor;
    if (unit == "ms") factor = 1;
    else if (unit == "s") factor = 1000;
    else if (unit == "m") factor = 60'000;
    else if (unit == "h") factor = 3'600'000;
    else return failInvalid("invalid duration \"" + s + "\" (units: ms, s, m, h)");
    totalMs += value * factor;
  }
  return milliseconds(static_cast<int64_t>(std::llround(totalMs)));
}

std::string formatDuration(std::chrono::milliseconds d) {
  auto ms = d.count();
  if (ms == 0) return "0s";
  if (ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

ConfigMap::ConfigMap(YAML::Node node, std::string path, ConfigErrors& errors)
    : node_(std::move(node)), path_(std::move(path)), errors_(&errors) {
  if (node_.IsDefined() && !node_.IsNull() && !node_.IsMap()) {
    errors_->add(node_.Mark(), path_, std::string("must be a mapping, not ") + typeName(node_));
    node_ = YAML::Node(YAML::NodeType::Map);
  }
}

std::string ConfigMap::keyPath(std::string_view key) const {
  if (path_.empty()) return std::string(key);
  if (key.empty()) return path_;
  return path_ + "." + std::string(key);
}

YAML::Node ConfigMap::find(std::string_view key) {
  known_.insert(std::string(key));
  if (!node_.IsMap()) return YAML::Node();
  for (auto it = node_.begin(); it != node_.end(); ++it)
    if (it->first.Scalar() == key) return it->second;
  return YAML::Node();
}

YAML::Mark ConfigMap::markOf(std::string_view key) const {
  if (node_.IsMap())
    for (auto it = node_.begin(); it != node_.end(); ++it)
      if (it->first.Scalar() == key) return it->first.Mark();
  return node_.Mark();
}

bool ConfigMap::has(std::string_view key) const {
  if (!node_.IsMap()) return false;
  for (auto it = node_.begin(); it != node_.end(); ++it)
    if (it->first.Scalar() == key) return true;
  return false;
}

void ConfigMap::error(std::string_view key, const std::string& message) {
  errors_->add(markOf(key), keyPath(key), message);
}

int64_t ConfigMap::integer(std::string_view key, int64_t dflt, int64_t min, int64_t max) {
  auto n = find(key);
  if (!n.IsDefined() || n.IsNull()) return dflt;
  int64_t v;
  if (!n.IsScalar() || !parseInt(n.Scalar(), v)) {
    errors_->add(n.Mark(), keyPath(key), "must be an integer, got \"" + (n.IsScalar() ? n.Scalar() : typeName(n)) + "\"");
    return dflt;
  }
  if (v < min || v > max) {
    errors_->add(n.Mark(), keyPath(key),
                 "value " + std::to_string(v) + " out of range [" + std::to_string(min) + ", " + std::to_string(max) + "]");
    return dflt;
  }
  return v;
}

double ConfigMap::number(std::string_view key, double dflt, double min, double max) {
  auto n = find(key);
  if (!n.IsDefined() || n.IsNull()) return dflt;
  char* end = nullptr;
  double v = n.IsScalar() ? std::strtod(n.Scalar().c_str(), &end) : 0;
  if (!n.IsScalar() || n.Scalar().empty() || *end != '\0' || !std::isfinite(v)) {
    errors_->add(n.Mark(), keyPath(key), "must be a number, got \"" + (n.IsScalar() ? n.Scalar() : typeName(n)) + "\"");
    return dflt;
  }
  if (v < min || v > max) {
    errors_->add(n.Mark(), keyPath(key), "value " + n.Scalar() + " out of range");
    return dflt;
  }
  return v;
}

bool ConfigMap::boolean(std::string_view key, bool dflt) {
  auto n = find(key);
  if (!n.IsDefined() || n.IsNull()) return dflt;
  if (n.IsScalar()) {
    const auto& s = n.Scalar();
    if (s == "true" || s == "True" || s == "TRUE") return true;
    if (s == "false" || s == "False" || s == "FALSE") return false;
  }
  errors_->add(n.Mark(), keyPath(key), "must be true or false, got \"" + (n.IsScalar() ? n.Scalar() : typeName(n)) + "\"");
  return dflt;
}

std::string ConfigMap::string(std::string_view key, std::string dflt) {
  auto n = find(key);
  if (!n.IsDefined() || n.IsNull()) return dflt;
  if (!n.IsScalar()) {
    errors_->add(n.Mark(), keyPath(key), std::string("must be a string, not ") + typeName(n));
    return dflt;
  }
  return n.Scalar();
}

std::string ConfigMap::choice(std::string_view key, std::string dflt,
                              std::initializer_list<std::string_view> allowed) {
  auto n = find(key);
  if (!n.IsDefined() || n.IsNull()) return dflt;
  if (n.IsScalar())
    for (auto a : allowed)
      if (n.Scalar() == a) return n.Scalar();
  std::string list;
  for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
  errors_->add(n.Mark(), keyPath(key), "must be one of " + list + ", got \"" + (n.IsScalar() ? n.Scalar() : typeName(n)) + "\"");
  return dflt;
}

std::chrono::milliseconds ConfigMap::duration(std::string_view key, std::chrono::milliseconds dflt,
                                              std::chrono::milliseconds min, std::chrono::milliseconds max) {
  auto n = find(key);
  if (!n.IsDefined() || n.IsNull()) return dflt;
  if (!n.IsScalar()) {
    errors_->add(n.Mark(), keyPath(key), std::string("must be a duration, not ") + typeName(n));
    return dflt;
  }
  auto d = parseDuration(n.Scalar());
  if (!d) {
    errors_->add(n.Mark(), keyPath(key), d.error().message());
    return dflt;
  }
  if (*d < min || *d > max) {
    errors_->add(n.Mark(), keyPath(key),
                 "duration " + n.Scalar() + " out of range [" + formatDuration(min) + ", " + formatDuration(max) + "]");
    return dflt;
  }
  return *d;
}

std::vector<std::string> ConfigMap::stringList(std::string_view key) {
  auto n = find(key);
  std::vector<std::string> out;
  if (!n.IsDefined() || n.IsNull()) return out;
  if (!n.IsSequence()) {
    errors_->add(n.Mark(), keyPath(key), std::string("must be a list, not ") + typeName(n));
    return out;
  }
  for (size_t i = 0; i < n.size(); ++i) {
    if (!n[i].IsScalar()) {
      errors_->add(n[i].Mark(), keyPath(key) + "[" + std::to_string(i) + "]", "must be a string");
      continue;
    }
    out.push_back(n[i].Scalar());
  }
  return out;
}

ConfigMap ConfigMap::map(std::string_view key) {
  auto n = find(key);
  if (!n.IsDefined() || n.IsNull()) return ConfigMap(YAML::Node(YAML::NodeType::Map), keyPath(key), *errors_);
  return ConfigMap(n, keyPath(key), *errors_);
}

std::vector<ConfigMap> ConfigMap::mapList(std::string_view key) {
  auto n = find(key);
  std::vector<ConfigMap> out;
  if (!n.IsDefined() || n.IsNull()) return out;
  if (!n.IsSequence()) {
    errors_->add(n.Mark(), keyPath(key), std::string("must be a list, not ") + typeName(n));
    return out;
  }
  for (size_t i = 0; i < n.size(); ++i)
    out.emplace_back(n[i], keyPath(key) + "[" + std::to_string(i) + "]", *errors_);
  return out;
}

YAML::Node ConfigMap::raw(std::string_view key) { return find(key); }

std::vector<std::string> ConfigMap::keys() const {
  std::vector<std::string> out;
  if (node_.IsMap())
    for (auto it = node_.begin(); it != node_.end(); ++it) out.push_back(it->first.Scalar());
  return out;
}

void ConfigMap::finish() {
  if (!node_.IsMap()) return;
  std::set<std::string> seen;
  for (auto it = node_.begin(); it != node_.end(); ++it) {
    const auto& k = it->first.Scalar();
    if (!seen.insert(k).second)
      errors_->add(it->first.Mark(), keyPath(k), "duplicate key");
    else if (!known_.contains(k))
      errors_->add(it->first.Mark(), keyPath(k), "unknown key");
  }
}

Result<YAML::Node> loadYaml(const std::string& text, const std::string& file) {
  try {
    YAML::Node n = YAML::Load(text);
    if (!n.IsDefined() || n.IsNull()) return YAML::Node(YAML::NodeType::Map);
    return n;
  } catch (const YAML::Exception& e) {
    return failInvalid(where(file, e.mark) + ": " + e.msg);
  }
}

}  // namespace nodeagent
