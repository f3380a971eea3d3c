#include "sysctl/tuner.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <algorithm>
#include <filesystem>

#include "common/fd.h"
#include "common/files.h"

namespace nodeagent::sysctl {

std::string_view keyErrorName(KeyError e) {
  switch (e) {
    case KeyError::kNone: return "none";
    case KeyError::kAbsent: return "absent";
    case KeyError::kReadOnly: return "read-only";
    case KeyError::kNotInNetns: return "not-in-netns";
    case KeyError::kRejected: return "rejected";
    case KeyError::kIo: return "io";
  }
  return "io";
}

KernelTree::KernelTree(std::string procRoot, std::string sysRoot, bool initialNetns)
    : procRoot_(std::move(procRoot)), sysRoot_(std::move(sysRoot)), initialNetns_(initialNetns) {}

std::string KernelTree::pathOf(std::string_view key) const {
  if (key.starts_with("/sys/")) return sysRoot_ + std::string(key.substr(4));
  // Dotted name to path; a '/' inside a part stands for a '.' (sysctl(8) convention).
  std::string p = procRoot_ + "/sys/";
  for (char c : key) p.push_back(c == '.' ? '/' : c == '/' ? '.' : c);
  return p;
}

Result<std::string> KernelTree::read(std::string_view key) const {
  // One read(2) holds any sysctl value; loop only when the buffer fills up.
  std::string path = pathOf(key);
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return failErrno("open " + path);
  std::string text;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return failErrno("read " + path);
    text.append(buf, size_t(n));
    if (size_t(n) < sizeof buf) break;
  }
  return normalize(text);
}

Result<void> KernelTree::write(std::string_view key, std::string_view value) const {
  std::string path = pathOf(key);
  Fd fd(::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC));
  if (!fd) return failErrno("open " + path + " for writing");
  std::string line = std::string(value) + "\n";
  ssize_t n;
  do n = ::write(fd.get(), line.data(), line.size());
  while (n < 0 && errno == EINTR);
  if (n < 0) return failErrno("write " + path);
  if (size_t(n) != line.size()) return failErrno(EIO, "short write to " + path);
  return {};
}

KeyError KernelTree::classify(std::string_view key, int err) const {
  // Keys a non-initial network namespace cannot hold or change: per-netns copies are
  // read-only (nf_conntrack_max, rmem_max), absent (netdev_max_backlog, neigh.default),
  // or the kernel refuses a global parameter from there (hashsize: EOPNOTSUPP).
  bool netScoped = key.starts_with("net.") || key.starts_with("/sys/module/nf_conntrack/");
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return netScoped && !initialNetns_ ? KeyError::kNotInNetns : KeyError::kAbsent;
    case EACCES:
    case EPERM:
    case EROFS:
      return netScoped && !initialNetns_ ? KeyError::kNotInNetns : KeyError::kReadOnly;
    case EOPNOTSUPP:
      return !initialNetns_ ? KeyError::kNotInNetns : KeyError::kRejected;
    case EINVAL:
    case ERANGE:
    case EOVERFLOW:
    case EBUSY:
      return KeyError::kRejected;
    default:
      return KeyError::kIo;
  }
}

bool detectInitialNetns() {
  struct stat self{}, init{};
  if (::stat("/proc/self/ns/net", &self) == 0 && ::stat("/proc/1/ns/net", &init) == 0)
    return self.st_ino == init.st_ino && self.st_dev == init.st_dev;
  // PID 1's namespace may be hidden from us (another user namespace, ptrace rules). The
  // kernel registers net.core's global table (netdev_max_backlog, ...) only in the initial
  // network namespace, so its presence tells the two apart.
  return ::access("/proc/sys/net/core/netdev_max_backlog", F_OK) == 0;
}

namespace {

std::string describe(KeyError e, const Error& err, bool writing) {
  switch (e) {
    case KeyError::kNotInNetns:
      return writing ? "not writable in this network namespace (a host-level key; set it on the host)"
                     : "not present in this network namespace (a host-level key, or its kernel module is not loaded)";
    case KeyError::kAbsent:
      return "absent: kernel module not loaded or key unknown to this kernel";
    case KeyError::kReadOnly:
      return "read-only: the kernel refuses writes to it";
    case KeyError::kRejected:
      return "rejected by the kernel: " + err.code().message();
    default:
      return err.message();
  }
}

}  // namespace

std::vector<PlanItem> Tuner::plan(const std::vector<KeySpec>& keys) const {
  std::vector<PlanItem> out;
  out.reserve(keys.size());
  for (const auto& spec : keys) {
    PlanItem item;
    item.spec = spec;
    auto cur = tree_.read(spec.key);
    if (!spec.unavailable.empty()) {
      if (cur) item.current = *cur;
      item.action = Action::kError;
      item.error = KeyError::kIo;
      item.message = spec.unavailable;
    } else if (!cur) {
      item.action = Action::kError;
      item.error = tree_.classify(spec.key, cur.error().errnoValue());
      item.message = describe(item.error, cur.error(), false);
    } else {
      item.current = *cur;
      if (satisfies(spec, *cur)) {
        item.action = Action::kNone;
      } else if (::access(tree_.pathOf(spec.key).c_str(), W_OK) != 0) {
        // procfs answers access(2) from the entry's own mode, even for root: a key that is
        // read-only (or read-only in this network namespace) shows up in the plan already.
        item.action = Action::kError;
        item.error = tree_.classify(spec.key, errno);
        item.message = describe(item.error, Error::fromErrno("access"), true);
      } else {
        item.action = Action::kSet;
        item.target = targetValue(spec, *cur);
      }
    }
    out.push_back(std::move(item));
  }
  return out;
}

std::vector<ApplyItem> Tuner::apply(const std::vector<PlanItem>& plan, Originals& originals) const {
  // Save the originals of every key about to change first, in one write, so revert can
  // always restore them. If that fails nothing is changed.
  std::vector<std::pair<std::string, std::string>> before;
  std::vector<std::string> newlySaved;
  for (const auto& p : plan)
    if (p.action == Action::kSet) {
      before.emplace_back(p.spec.key, *p.current);
      if (!originals.has(p.spec.key)) newlySaved.push_back(p.spec.key);
    }
  auto saved = originals.remember(before);
  std::vector<ApplyItem> out;
  std::vector<std::string> unchanged;  // saved now but never changed: not ours to restore
  for (const auto& p : plan) {
    ApplyItem a;
    a.key = p.spec.key;
    a.before = p.current;
    if (p.action == Action::kError) {
      a.error = p.error;
      a.message = p.message;
    } else if (p.action == Action::kNone) {
      a.after = p.current;
      a.inSync = true;
    } else if (!saved) {
      a.error = KeyError::kIo;
      a.message = "not changed: cannot save the original value: " + saved.error().message();
    } else {
      if (auto w = tree_.write(p.spec.key, p.target); !w) {
        a.error = tree_.classify(p.spec.key, w.error().errnoValue());
        a.message = describe(a.error, w.error(), true);
        if (std::find(newlySaved.begin(), newlySaved.end(), p.spec.key) != newlySaved.end())
          unchanged.push_back(p.spec.key);
      }
      auto back = tree_.read(p.spec.key);
      if (back) a.after = *back;
      if (a.error == KeyError::kNone) {
        if (!back) {
          a.error = KeyError::kIo;
          a.message = "written but cannot be read back: " + back.error().message();
        } else if (!satisfies(p.spec, *back)) {
          a.error = KeyError::kRejected;
          a.message = "written \"" + p.target + "\" but the kernel kept \"" + *back + "\"";
        } else {
          a.changed = true;
          a.inSync = true;
        }
      }
    }
    out.push_back(std::move(a));
  }
  if (!unchanged.empty()) (void)originals.forget(unchanged);
  return out;
}

std::vector<ApplyItem> Tuner::revert(Originals& originals) const {
  std::vector<ApplyItem> out;
  std::vector<std::string> restored;
  for (const auto& [key, value] : originals.values()) {
    ApplyItem a;
    a.key = key;
    if (auto cur = tree_.read(key)) a.before = *cur;
    if (a.before && *a.before == normalize(value)) {
      a.after = a.before;
      a.inSync = true;
      restored.push_back(key);
      out.push_back(std::move(a));
      continue;
    }
    if (auto w = tree_.write(key, value); !w) {
      a.error = tree_.classify(key, w.error().errnoValue());
      a.message = describe(a.error, w.error(), true);
    } else if (auto back = tree_.read(key); !back || *back != normalize(value)) {
      a.error = KeyError::kRejected;
      a.message = "original \"" + value + "\" written but read back \"" + (back ? *back : back.error().message()) + "\"";
      if (back) a.after = *back;
    } else {
      a.after = *back;
      a.changed = true;
      a.inSync = true;
      restored.push_back(key);
    }
    out.push_back(std::move(a));
  }
  if (auto r = originals.forget(restored); !r)
    out.push_back(ApplyItem{.key = originals.path(), .error = KeyError::kIo, .message = r.error().message()});
  return out;
}

Result<void> Originals::load() {
  values_.clear();
  if (!pathExists(path_)) return {};
  auto text = readFile(path_);
  if (!text) return fail(text.error());
  auto j = Json::parse(*text);
  if (!j) return fail(j.error().wrap("parse " + path_));
  for (const auto& [k, v] : j->get("originals").asObject()) values_[k] = v.asString();
  return {};
}

Result<void> Originals::save() const {
  Json o = Json::object();
  for (const auto& [k, v] : values_) o.set(k, v);
  auto dir = std::filesystem::path(path_).parent_path().string();
  if (auto r = makeDirs(dir, 0750); !r) return r;
  return writeFileAtomic(path_, Json::object().set("originals", o).dump(2) + "\n", 0640);
}

Result<void> Originals::remember(const std::vector<std::pair<std::string, std::string>>& values) {
  std::vector<std::string> added;
  for (const auto& [k, v] : values)
    if (values_.emplace(k, v).second) added.push_back(k);
  if (added.empty()) return {};
  if (auto r = save(); !r) {
    for (const auto& k : added) values_.erase(k);
    return r;
  }
  return {};
}

Result<void> Originals::forget(const std::vector<std::string>& keys) {
  for (const auto& k : keys) values_.erase(k);
  if (values_.empty()) {
    if (::unlink(path_.c_str()) != 0 && errno != ENOENT) return failErrno("remove " + path_);
    return {};
  }
  return save();
}

std::string renderDropIn(const std::vector<std::pair<KeySpec, std::string>>& keys, const std::string& header) {
  std::string out = header;
  for (const auto& [spec, value] : keys) {
    if (spec.key.starts_with("/")) continue;  // module parameters are not sysctls
    out += "\n# " + spec.reason + " [" + spec.source + ", " + std::string(modeName(spec.mode)) + "]\n";
    out += spec.key + " = " + value + "\n";
  }
  return out;
}

Result<bool> persistDropIn(const std::string& path, const std::string& content) {
  if (auto old = readFile(path); old && *old == content) return false;
  auto dir = std::filesystem::path(path).parent_path().string();
  if (!dir.empty())
    if (auto r = makeDirs(dir, 0755); !r) return fail(r.error());
  if (auto r = writeFileAtomic(path, content, 0644); !r) return fail(r.error());
  return true;
}

static Json optText(const std::optional<std::string>& v) { return v ? Json(*v) : Json(); }

Json toJson(const PlanItem& i) {
  static constexpr const char* kActions[] = {"none", "set", "error"};
  return Json::object()
      .set("key", i.spec.key)
      .set("current", optText(i.current))
      .set("desired", normalize(i.spec.value))
      .set("mode", modeName(i.spec.mode))
      .set("action", kActions[int(i.action)])
      .set("write", i.action == Action::kSet ? Json(i.target) : Json())
      .set("source", i.spec.source)
      .set("error", i.error == KeyError::kNone ? Json() : Json(keyErrorName(i.error)))
      .set("note", i.message.empty() ? Json(i.spec.reason) : Json(i.message));
}

Json toJson(const ApplyItem& a) {
  return Json::object()
      .set("key", a.key)
      .set("before", optText(a.before))
      .set("after", optText(a.after))
      .set("changed", a.changed)
      .set("in_sync", a.inSync)
      .set("error", a.error == KeyError::kNone ? Json() : Json(keyErrorName(a.error)))
      .set("message", a.message);
}

}  // namespace nodeagent::sysctl
