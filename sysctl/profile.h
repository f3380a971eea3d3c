// Desired sysctl state: keys, modes, the built-in `large-cluster` profile and how a
// profile, other modules' contributions and the user's config merge into one key list.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace nodeagent::sysctl {

// How a desired value is compared with the kernel's.
enum class Mode {
  kExact,  // the value must equal the desired one
  kMin,    // only ever raise: a larger current value is left alone (element-wise for vectors)
  kMax,    // only ever lower
};
std::string_view modeName(Mode m);
[[nodiscard]] Result<Mode> parseMode(std::string_view name);

// One desired key. `key` is a dotted sysctl name ("net.core.somaxconn") or a kernel module
// parameter path ("/sys/module/nf_conntrack/parameters/hashsize").
struct KeySpec {
  std::string key;
  std::string value;
  Mode mode = Mode::kExact;
  std::string reason;  // one line: why the node needs it
  std::string source;  // "profile large-cluster", "config", "ipvs", ...
  bool numeric = true;  // value is whitespace-separated integers
  // Set when the value cannot be computed on this node (conntrack sizing without the
  // node's facts): the key is planned as an error with this message and never written.
  std::string unavailable;
  friend bool operator==(const KeySpec&, const KeySpec&) = default;
};

// Inputs the scale-aware values depend on.
struct ScaleInputs {
  unsigned cpus = 1;
  uint64_t conntrackMax = 0;              // 0: max(conntrackMin, conntrackMaxPerCore x cpus)
  uint64_t conntrackMaxPerCore = 32768;   // kube-proxy --conntrack-max-per-core
  uint64_t conntrackMin = 131072;         // kube-proxy --conntrack-min
  uint64_t tcpEstablishedTimeout = 86400; // kube-proxy --conntrack-tcp-timeout-established (24h)
  uint64_t tcpCloseWaitTimeout = 3600;    // kube-proxy --conntrack-tcp-timeout-close-wait (1h)
};

// The conntrack table size kube-proxy would choose.
uint64_t conntrackMaxFor(const ScaleInputs& in);

inline constexpr std::string_view kHashsizeKey = "/sys/module/nf_conntrack/parameters/hashsize";

// Profile names the config may pick ("none" means: only the keys the config lists).
std::vector<std::string> profileNames();
// The keys of a built-in profile, values scaled for the node. Error for unknown names.
[[nodiscard]] Result<std::vector<KeySpec>> builtinProfile(std::string_view name, const ScaleInputs& in);

// Key syntax: dotted names under a known top-level tree (net, vm, fs, kernel, ...), each
// part [A-Za-z0-9_-/:@+] (a '/' stands for a '.' inside a part, as sysctl(8) has it), or
// /sys/module/<module>/parameters/<name>. Returns an error message, or nullopt when valid.
std::optional<std::string> keySyntaxError(std::string_view key);
// A value made only of integers separated by whitespace ("4096 87380 16777216").
bool isNumericValue(std::string_view value);
// The built-in catalogue's entry for a key (every profile key), for its mode and type.
std::optional<KeySpec> catalogueEntry(std::string_view key);

// Whitespace-normalised value: runs of spaces, tabs and newlines become one space,
// leading and trailing whitespace go ("4096\t87380\t6291456\n" -> "4096 87380 6291456").
std::string normalize(std::string_view value);

// Whether `current` satisfies `spec` (normalised; element-wise for min/max vectors).
bool satisfies(const KeySpec& spec, std::string_view current);
// The value to write so that `spec` holds, given `current` (min: element-wise max, ...).
std::string targetValue(const KeySpec& spec, std::string_view current);

// Merges, in order of precedence (later wins): the profile, keys other modules contribute,
// the user's keys; then removes dropped keys. Keys keep the profile's order, new ones follow.
std::vector<KeySpec> mergeKeys(std::vector<KeySpec> profile, const std::vector<KeySpec>& contributed,
                               const std::vector<KeySpec>& user, const std::vector<std::string>& drop);

// Checks a merged list: key syntax, numeric values where numbers are required.
[[nodiscard]] Result<void> validateKeys(const std::vector<KeySpec>& keys);

}  // namespace nodeagent::sysctl
