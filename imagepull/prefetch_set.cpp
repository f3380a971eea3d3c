#include "imagepull/prefetch_set.h"

#include <algorithm>
#include <cctype>
#include <ctime>
#include <set>

#include "common/config_reader.h"
#include "imagepull/image_ref.h"

namespace nodeagent::imagepull {

namespace {

bool alnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

// A label name: at most 63 of [A-Za-z0-9._-], beginning and ending alphanumeric.
bool validName(std::string_view s) {
  if (s.empty() || s.size() > 63 || !alnum(s.front()) || !alnum(s.back())) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return alnum(c) || c == '-' || c == '_' || c == '.'; });
}

// A DNS-1123 subdomain: lower-case labels of [a-z0-9-] joined by dots, at most 253.
bool validSubdomain(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  size_t start = 0;
  while (start <= s.size()) {
    size_t dot = s.find('.', start);
    auto part = s.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (part.empty() || part.size() > 63 || part.front() == '-' || part.back() == '-') return false;
    for (char c : part)
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return true;
}

PrefetchSet parseOne(ConfigMap& m) {
  PrefetchSet s;
  if (!m.has("tier")) m.error("", "tier is required (base, environment or business)");
  auto tier = parseTier(m.choice("tier", "environment", {"base", "environment", "business"}));
  s.tier = tier.value_or(Tier::kEnvironment);
  if (!m.has("images")) m.error("", "images is required (a list of image references)");
  std::set<std::string> seen;
  for (const auto& image : m.stringList("images")) {
    auto ref = parseImageRef(image);
    if (!ref) {
      m.error("images", ref.error().message());
      continue;
    }
    if (!seen.insert(ref->canonical()).second) {
      m.error("images", "image \"" + image + "\" is listed twice (as " + ref->canonical() + ")");
      continue;
    }
    s.images.push_back(ref->canonical());
  }
  if (m.has("images") && seen.empty() && m.errors().empty()) m.error("images", "must list at least one image");
  if (m.has("nodeSelector")) {
    auto sel = m.raw("nodeSelector");
    if (!sel.IsMap() && !sel.IsNull()) {
      m.error("nodeSelector", "must be a mapping of label keys to values, like a Pod's nodeSelector");
    } else if (sel.IsMap()) {
      for (const auto& kv : sel) {
        if (!kv.first.IsScalar() || !kv.second.IsScalar()) {
          m.error("nodeSelector", "label keys and values must be plain strings");
          continue;
        }
        auto key = kv.first.as<std::string>();
        auto value = kv.second.as<std::string>();
        if (!validLabelKey(key)) m.error("nodeSelector", "\"" + key + "\" is not a valid label key");
        else if (!validLabelValue(value))
          m.error("nodeSelector", "\"" + value + "\" (for " + key + ") is not a valid label value");
        else s.nodeSelector[key] = value;
      }
    }
  }
  if (m.has("deadline")) {
    auto text = m.string("deadline", "");
    s.deadline = parseRfc3339Utc(text);
    if (!s.deadline) m.error("deadline", "\"" + text + "\" is not an RFC 3339 UTC time like 2026-12-03T06:00:00Z");
  }
  if (m.has("imagePullSecrets")) {
    auto list = m.raw("imagePullSecrets");
    if (!list.IsSequence()) m.error("imagePullSecrets", "must be a list of Secret names");
    for (size_t i = 0; list.IsSequence() && i < list.size(); ++i) {
      auto item = list[i];
      std::string name;
      if (item.IsScalar()) name = item.Scalar();
      else if (item.IsMap() && item.size() == 1 && item["name"] && item["name"].IsScalar()) name = item["name"].Scalar();
      if (!validObjectName(name))
        m.error("imagePullSecrets", "entry " + std::to_string(i + 1) + " is not a Secret name (or {name: NAME})");
      else if (std::find(s.imagePullSecrets.begin(), s.imagePullSecrets.end(), name) == s.imagePullSecrets.end())
        s.imagePullSecrets.push_back(name);
    }
  }
  m.finish();
  return s;
}

}  // namespace

bool validObjectName(std::string_view name) {
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (name.empty() || name.size() > 253 || !alnum(name.front()) || !alnum(name.back())) return false;
  return std::all_of(name.begin(), name.end(), [&](char c) { return alnum(c) || c == '-' || c == '.'; });
}

bool validLabelKey(std::string_view key) {
  auto slash = key.find('/');
  if (slash == std::string_view::npos) return validName(key);
  return validSubdomain(key.substr(0, slash)) && validName(key.substr(slash + 1));
}

bool validLabelValue(std::string_view value) { return value.empty() || validName(value); }

std::optional<std::chrono::system_clock::time_point> parseRfc3339Utc(std::string_view text) {
  // YYYY-MM-DDTHH:MM:SS[.frac]Z
  if (text.size() < 20 || text.back() != 'Z') return std::nullopt;
  auto digits = [&](size_t at, size_t n, int& out) {
    out = 0;
    for (size_t i = at; i < at + n; ++i) {
      if (!std::isdigit(static_cast<unsigned char>(text[i]))) return false;
      out = out * 10 + (text[i] - '0');
    }
    return true;
  };
  std::tm tm{};
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  if (!digits(0, 4, y) || text[4] != '-' || !digits(5, 2, mo) || text[7] != '-' || !digits(8, 2, d) ||
      (text[10] != 'T' && text[10] != 't') || !digits(11, 2, h) || text[13] != ':' || !digits(14, 2, mi) ||
      text[16] != ':' || !digits(17, 2, sec))
    return std::nullopt;
  auto rest = text.substr(19, text.size() - 20);
  if (!rest.empty()) {
    if (rest.size() < 2 || rest[0] != '.') return std::nullopt;
    for (char c : rest.substr(1))
      if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  time_t t = ::timegm(&tm);
  return std::chrono::system_clock::from_time_t(t);
}

ParsedSets parsePrefetchSets(const std::map<std::string, std::string>& data, std::string_view where) {
  ParsedSets out;
  for (const auto& [name, text] : data) {
    ConfigErrors errors("configmap " + std::string(where) + ", set " + name);
    auto yaml = loadYaml(text, errors.file());
    if (!yaml) {
      out.rejected.push_back({name, yaml.error().message()});
      continue;
    }
    if (!yaml->IsMap()) {
      out.rejected.push_back({name, errors.file() + ": must be a mapping with tier, images and nodeSelector"});
      continue;
    }
    PrefetchSet s;
    {
      ConfigMap m(*yaml, "", errors);
      s = parseOne(m);
    }
    if (!errors.empty()) {
      std::string problem;
      for (const auto& e : errors.all()) problem += (problem.empty() ? "" : "; ") + e;
      out.rejected.push_back({name, problem});
      continue;
    }
    s.name = name;
    out.sets.push_back(std::move(s));
  }
  return out;
}

bool selects(const PrefetchSet& set, const Labels& labels) {
  return std::all_of(set.nodeSelector.begin(), set.nodeSelector.end(), [&](const auto& kv) {
    auto it = labels.find(kv.first);
    return it != labels.end() && it->second == kv.second;
  });
}

}  // namespace nodeagent::imagepull
