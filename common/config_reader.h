// Strict YAML config reading: every key must be read by someone, every value is type- and
// range-checked, and every error names the file, line, column and key path.
#pragma once

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace nodeagent {

// Largest config file the daemon reads: a real config is a few KB; anything near this is
// a mistake (a wrong path, a generated file), rejected before parsing.
inline constexpr size_t kMaxConfigBytes = 1 << 20;

// Collects the errors of one config load, so a user sees every problem at once. Only the
// first kMaxErrors are kept (a wrong file would otherwise print one line per key); the
// rest are counted and summed up as "... and N more".
class ConfigErrors {
 public:
  static constexpr size_t kMaxErrors = 20;
  explicit ConfigErrors(std::string file) : file_(std::move(file)) {}
  void add(const YAML::Mark& mark, const std::string& keyPath, const std::string& message);
  bool empty() const { return errors_.empty(); }
  const std::vector<std::string>& all() const { return errors_; }
  size_t count() const { return errors_.size() + dropped_; }
  const std::string& file() const { return file_; }
  // Ok when empty, else one Error whose message lists the kept problems, one per line.
  [[nodiscard]] Result<void> toResult() const;

 private:
  std::string file_;
  std::vector<std::string> errors_;
  size_t dropped_ = 0;
};

// Parses a duration: "250ms", "10s", "5m", "1h", "1h30m", or a bare integer of seconds.
[[nodiscard]] Result<std::chrono::milliseconds> parseDuration(std::string_view text);
std::string formatDuration(std::chrono::milliseconds d);

// One YAML mapping being read. Getters mark keys as known; finish() reports the rest.
class ConfigMap {
 public:
  ConfigMap(YAML::Node node, std::string path, ConfigErrors& errors);
  ConfigMap(const ConfigMap&) = delete;
  ConfigMap(ConfigMap&&) = default;
  ~ConfigMap() = default;

  bool has(std::string_view key) const;
  int64_t integer(std::string_view key, int64_t dflt, int64_t min, int64_t max);
  double number(std::string_view key, double dflt, double min, double max);
  bool boolean(std::string_view key, bool dflt);
  std::string string(std::string_view key, std::string dflt);
  std::string choice(std::string_view key, std::string dflt,
                     std::initializer_list<std::string_view> allowed);
  std::chrono::milliseconds duration(std::string_view key, std::chrono::milliseconds dflt,
                                     std::chrono::milliseconds min, std::chrono::milliseconds max);
  std::vector<std::string> stringList(std::string_view key);
  // A nested mapping; an absent key yields an empty mapping (all defaults).
  ConfigMap map(std::string_view key);
  // A list of mappings.
  std::vector<ConfigMap> mapList(std::string_view key);
  // The raw node, for free-form content the caller validates itself (marks the key known).
  YAML::Node raw(std::string_view key);
  // Keys of this mapping, in file order.
  std::vector<std::string> keys() const;

  // Reports an error at `key` (or at the mapping itself when key is empty).
  void error(std::string_view key, const std::string& message);
  // Reports every key that no getter asked for as unknown. Call once, after reading.
  void finish();

  const std::string& path() const { return path_; }
  std::string keyPath(std::string_view key) const;
  YAML::Mark markOf(std::string_view key) const;
  ConfigErrors& errors() { return *errors_; }

 private:
  YAML::Node find(std::string_view key);
  YAML::Node node_;
  std::string path_;
  ConfigErrors* errors_;
  std::set<std::string, std::less<>> known_;
};

// Loads YAML text. Syntax errors are reported with line and column; an empty document
// becomes an empty mapping. A second document is an error at its `---` (yaml-cpp would
// silently drop it).
[[nodiscard]] Result<YAML::Node> loadYaml(const std::string& text, const std::string& file);

// Where the document after the one `parser` just read starts, if there is one. Reads
// that document (without keeping it).
std::optional<YAML::Mark> nextDocumentMark(YAML::Parser& parser);
// The error for a second document at `mark`.
std::string secondDocumentError(const std::string& file, const YAML::Mark& mark);

// Reads a whole config file: a regular file of at most `maxBytes` (a directory, a device
// or an oversized file is an error naming the path).
[[nodiscard]] Result<std::string> readConfigFile(const std::string& path, size_t maxBytes = kMaxConfigBytes);

}  // namespace nodeagent
