// Tuner: plan, apply, verify, persist and revert desired sysctl keys against a kernel tree.
// The tree's roots are constructor parameters, so global keys are tested against a fake
// directory and namespaced keys against the real /proc/sys of a fresh network namespace.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/json.h"
#include "common/result.h"
#include "sysctl/profile.h"

namespace nodeagent::sysctl {

// Why a key could not be read or set. The module treats kNotInNetns as a property of where
// the agent runs (host-level keys a network namespace cannot change), not as a failure.
enum class KeyError {
  kNone,
  kAbsent,      // no such file: kernel module not loaded, or key unknown to this kernel
  kReadOnly,    // the kernel refuses writes to it (EACCES/EPERM/EROFS)
  kNotInNetns,  // absent or read-only because the agent runs in a non-initial network namespace
  kRejected,    // the kernel refused the value (EINVAL, ...) or kept another one
  kIo,          // any other read/write failure
};
std::string_view keyErrorName(KeyError e);

// Reads and writes keys under /proc/sys and /sys (module parameters).
class KernelTree {
 public:
  // `initialNetns`: whether the agent runs in the host's network namespace (see
  // detectInitialNetns); decides how refusals of net.* keys are reported.
  KernelTree(std::string procRoot, std::string sysRoot, bool initialNetns);
  std::string pathOf(std::string_view key) const;
  [[nodiscard]] Result<std::string> read(std::string_view key) const;
  // Writes the value directly (no `sysctl` process); one write(2) of "value\n".
  [[nodiscard]] Result<void> write(std::string_view key, std::string_view value) const;
  KeyError classify(std::string_view key, int err) const;
  bool initialNetns() const { return initialNetns_; }

 private:
  std::string procRoot_, sysRoot_;
  bool initialNetns_;
};

// True when /proc/self/ns/net is the same namespace as PID 1's (or cannot be compared).
bool detectInitialNetns();

enum class Action { kNone, kSet, kError };

struct PlanItem {
  KeySpec spec;
  std::optional<std::string> current;  // normalised; nullopt when unreadable
  std::string target;                  // what apply writes (kSet)
  Action action = Action::kNone;
  KeyError error = KeyError::kNone;
  std::string message;  // per-key error or note
};

// The outcome of applying one key.
struct ApplyItem {
  std::string key;
  std::optional<std::string> before;
  std::optional<std::string> after;  // read back
  bool changed = false;
  bool inSync = false;
  KeyError error = KeyError::kNone;
  std::string message;
};

// Original values saved before nodeagent first changed a key (state dir, JSON).
class Originals {
 public:
  explicit Originals(std::string path) : path_(std::move(path)) {}
  [[nodiscard]] Result<void> load();
  bool has(const std::string& key) const { return values_.count(key) > 0; }
  // Records the values of keys that have none saved yet, then writes the file atomically
  // (one write for a whole apply, not one per key).
  [[nodiscard]] Result<void> remember(const std::vector<std::pair<std::string, std::string>>& values);
  [[nodiscard]] Result<void> forget(const std::vector<std::string>& keys);
  const std::map<std::string, std::string>& values() const { return values_; }
  const std::string& path() const { return path_; }

 private:
  [[nodiscard]] Result<void> save() const;
  std::string path_;
  std::map<std::string, std::string> values_;
};

class Tuner {
 public:
  explicit Tuner(KernelTree tree) : tree_(std::move(tree)) {}

  // Reads every key and decides what to do; changes nothing.
  std::vector<PlanItem> plan(const std::vector<KeySpec>& keys) const;
  // Applies the kSet items of `plan`: saves originals first, writes, reads every key back
  // and compares normalised. A failing key does not stop the others.
  std::vector<ApplyItem> apply(const std::vector<PlanItem>& plan, Originals& originals) const;
  // Restores the saved originals (read back and verified); forgets the restored ones.
  std::vector<ApplyItem> revert(Originals& originals) const;

  const KernelTree& tree() const { return tree_; }

 private:
  KernelTree tree_;
};

// The sysctl.d text for the keys in sync (module parameters are not sysctls: skipped).
std::string renderDropIn(const std::vector<std::pair<KeySpec, std::string>>& keys, const std::string& header);
// Writes the drop-in atomically when its content differs; returns whether it changed.
[[nodiscard]] Result<bool> persistDropIn(const std::string& path, const std::string& content);

Json toJson(const PlanItem& item);
Json toJson(const ApplyItem& item);

}  // namespace nodeagent::sysctl
