#include "sysctl/profile.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <sstream>

namespace nodeagent::sysctl {

std::string_view modeName(Mode m) {
  switch (m) {
    case Mode::kExact: return "exact";
    case Mode::kMin: return "min";
    case Mode::kMax: return "max";
  }
  return "exact";
}

Result<Mode> parseMode(std::string_view name) {
  if (name == "exact") return Mode::kExact;
  if (name == "min") return Mode::kMin;
  if (name == "max") return Mode::kMax;
  return failInvalid("mode must be exact, min or max, got \"" + std::string(name) + "\"");
}

uint64_t conntrackMaxFor(const ScaleInputs& in) {
  if (in.conntrackMax != 0) return in.conntrackMax;
  return std::max<uint64_t>(in.conntrackMin, in.conntrackMaxPerCore * std::max(1u, in.cpus));
}

std::vector<std::string> profileNames() { return {"large-cluster", "none"}; }

namespace {

KeySpec key(std::string k, std::string v, Mode m, std::string reason, bool numeric = true) {
  return KeySpec{std::move(k), std::move(v), m, std::move(reason), "profile large-cluster", numeric};
}

// Seed 001 section 3.2 plus kube-proxy's conntrack sizing (seeds 001 and 003).
std::vector<KeySpec> largeCluster(const ScaleInputs& in) {
  uint64_t ctMax = conntrackMaxFor(in);
  using M = Mode;
  return {
      key("fs.file-max", "2097152", M::kMin, "system-wide open files; avoids \"Too many open files\" with many pods"),
      key("fs.inotify.max_user_instances", "8192", M::kMin, "inotify instances per user; the runtime runs pods as one user (default 128)"),
      key("fs.inotify.max_user_watches", "524288", M::kMin, "inotify watches per user for ingress controllers, kubectl logs -f (default 8192)"),
      key("vm.max_map_count", "262144", M::kMin, "memory map areas per process, needed by Elasticsearch-like workloads"),
      key("vm.overcommit_memory", "1", M::kExact, "kubelet expects overcommit always (its own checks guard memory)"),
      key("kernel.panic", "10", M::kExact, "reboot 10 s after a panic so the node comes back instead of hanging"),
      key("kernel.panic_on_oops", "1", M::kExact, "an oops panics (then reboots) rather than leaving a half-broken node"),
      key("kernel.softlockup_panic", "1", M::kExact, "a soft lockup panics so a wedged node reboots"),
      key("kernel.softlockup_all_cpu_backtrace", "1", M::kExact, "soft lockup reports carry every CPU's backtrace"),
      key("net.ipv4.ip_local_reserved_ports", "30000-32767", M::kExact,
          "keep ephemeral ports out of the NodePort range", false),
      key("net.core.somaxconn", "32768", M::kMin, "longer accept queues for busy services"),
      key("net.core.rmem_max", "16777216", M::kMin, "maximum socket receive buffer (16 MiB)"),
      key("net.core.wmem_max", "16777216", M::kMin, "maximum socket send buffer (16 MiB)"),
      key("net.ipv4.tcp_rmem", "4096 87380 16777216", M::kMin, "TCP receive buffer min/default/max up to 16 MiB"),
      key("net.ipv4.tcp_wmem", "4096 87380 16777216", M::kMin, "TCP send buffer min/default/max up to 16 MiB"),
      key("net.ipv4.tcp_max_syn_backlog", "8096", M::kMin, "more outstanding SYNs before drops"),
      key("net.ipv4.tcp_slow_start_after_idle", "0", M::kExact, "persistent HTTP connections keep their window after idle"),
      key("net.ipv4.tcp_tw_reuse", "1", M::kExact, "reuse TIME_WAIT sockets for new outgoing connections when safe"),
      key("net.core.netdev_max_backlog", "16384", M::kMin, "packets queued per interface when the kernel falls behind"),
      key("net.ipv4.neigh.default.gc_thresh1", "8192", M::kMin, "ARP cache: no garbage collection below this many entries (default 128)"),
      key("net.ipv4.neigh.default.gc_thresh2", "32768", M::kMin, "ARP cache soft limit (default 512): thousands of pod and node neighbours"),
      key("net.ipv4.neigh.default.gc_thresh3", "65536", M::kMin, "ARP cache hard limit (default 1024): avoids \"neighbour table overflow\""),
      key("net.netfilter.nf_conntrack_max", std::to_string(ctMax), M::kMin,
          "conntrack entries: max(" + std::to_string(in.conntrackMin) + ", " + std::to_string(in.conntrackMaxPerCore) +
              " x " + std::to_string(in.cpus) + " CPUs), as kube-proxy sizes it; only raised"),
      key(std::string(kHashsizeKey), std::to_string(ctMax / 4), M::kMin,
          "conntrack hash buckets = max/4 for short chains; only raised"),
      key("net.netfilter.nf_conntrack_tcp_timeout_established", std::to_string(in.tcpEstablishedTimeout), M::kExact,
          "idle established TCP flows leave the table after 24 h, not 5 days"),
      key("net.netfilter.nf_conntrack_tcp_timeout_close_wait", std::to_string(in.tcpCloseWaitTimeout), M::kExact,
          "CLOSE_WAIT flows leave the table after 1 h"),
  };
}

std::vector<std::string_view> splitWords(std::string_view v) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < v.size()) {
    while (i < v.size() && std::isspace(static_cast<unsigned char>(v[i]))) ++i;
    size_t j = i;
    while (j < v.size() && !std::isspace(static_cast<unsigned char>(v[j]))) ++j;
    if (j > i) out.push_back(v.substr(i, j - i));
    i = j;
  }
  return out;
}

bool toInt(std::string_view s, int64_t& out) {
  auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

// Element-wise comparison of two numeric vectors of the same length; nullopt otherwise.
std::optional<std::vector<std::pair<int64_t, int64_t>>> pairs(std::string_view desired, std::string_view current) {
  auto d = splitWords(desired), c = splitWords(current);
  if (d.size() != c.size() || d.empty()) return std::nullopt;
  std::vector<std::pair<int64_t, int64_t>> out;
  for (size_t i = 0; i < d.size(); ++i) {
    int64_t a, b;
    if (!toInt(d[i], a) || !toInt(c[i], b)) return std::nullopt;
    out.emplace_back(a, b);
  }
  return out;
}

}  // namespace

Result<std::vector<KeySpec>> builtinProfile(std::string_view name, const ScaleInputs& in) {
  if (name == "large-cluster") return largeCluster(in);
  if (name == "none") return std::vector<KeySpec>{};
  return failInvalid("unknown profile \"" + std::string(name) + "\" (known: large-cluster, none)");
}

std::optional<std::string> keySyntaxError(std::string_view key) {
  static const std::vector<std::string_view> kTops = {"abi", "crypto", "debug", "dev", "fs", "kernel",
                                                      "net", "sunrpc", "user", "vm"};
  auto partOk = [](std::string_view p) {
    if (p.empty()) return false;
    return std::all_of(p.begin(), p.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '/' || c == ':' || c == '@' ||
             c == '+';
    });
  };
  if (key.starts_with("/")) {
    constexpr std::string_view kPrefix = "/sys/module/";
    if (!key.starts_with(kPrefix)) return "a path key must be /sys/module/<module>/parameters/<name>";
    auto rest = key.substr(kPrefix.size());
    auto slash = rest.find('/');
    if (slash == std::string_view::npos || !rest.substr(slash).starts_with("/parameters/"))
      return "a path key must be /sys/module/<module>/parameters/<name>";
    auto mod = rest.substr(0, slash), param = rest.substr(slash + std::string_view("/parameters/").size());
    if (!partOk(mod) || !partOk(param) || param.find('/') != std::string_view::npos || mod.find('/') != std::string_view::npos)
      return "a path key must be /sys/module/<module>/parameters/<name>";
    return std::nullopt;
  }
  std::vector<std::string_view> parts;
  size_t i = 0;
  while (true) {
    size_t dot = key.find('.', i);
    parts.push_back(key.substr(i, dot == std::string_view::npos ? std::string_view::npos : dot - i));
    if (dot == std::string_view::npos) break;
    i = dot + 1;
  }
  if (parts.size() < 2) return "not a sysctl name (expected dotted form such as net.core.somaxconn)";
  for (auto p : parts)
    if (!partOk(p) || p == "/" || p.find("..") != std::string_view::npos)
      return "invalid sysctl name (parts are letters, digits, _ - / : @ +, separated by single dots)";
  if (std::find(kTops.begin(), kTops.end(), parts.front()) == kTops.end())
    return "unknown sysctl tree \"" + std::string(parts.front()) + "\" (expected net, vm, fs, kernel, ...)";
  return std::nullopt;
}

bool isNumericValue(std::string_view value) {
  auto words = splitWords(value);
  if (words.empty()) return false;
  int64_t v;
  return std::all_of(words.begin(), words.end(), [&](std::string_view w) { return toInt(w, v); });
}

std::optional<KeySpec> catalogueEntry(std::string_view k) {
  static const auto kCatalogue = largeCluster(ScaleInputs{});
  for (const auto& s : kCatalogue)
    if (s.key == k) return s;
  return std::nullopt;
}

std::string normalize(std::string_view value) {
  std::string out;
  for (auto w : splitWords(value)) {
    if (!out.empty()) out.push_back(' ');
    out.append(w);
  }
  return out;
}

bool satisfies(const KeySpec& spec, std::string_view current) {
  std::string cur = normalize(current), want = normalize(spec.value);
  if (cur == want) return true;
  if (spec.mode == Mode::kExact) return false;
  auto ps = pairs(want, cur);
  if (!ps) return false;
  return std::all_of(ps->begin(), ps->end(), [&](const auto& p) {
    return spec.mode == Mode::kMin ? p.second >= p.first : p.second <= p.first;
  });
}

std::string targetValue(const KeySpec& spec, std::string_view current) {
  std::string want = normalize(spec.value);
  if (spec.mode == Mode::kExact) return want;
  auto ps = pairs(want, normalize(current));
  if (!ps) return want;
  std::string out;
  for (const auto& [d, c] : *ps) {
    int64_t v = spec.mode == Mode::kMin ? std::max(d, c) : std::min(d, c);
    out += (out.empty() ? "" : " ") + std::to_string(v);
  }
  return out;
}

std::vector<KeySpec> mergeKeys(std::vector<KeySpec> out, const std::vector<KeySpec>& contributed,
                               const std::vector<KeySpec>& user, const std::vector<std::string>& drop) {
  auto upsert = [&](const KeySpec& k) {
    auto it = std::find_if(out.begin(), out.end(), [&](const KeySpec& o) { return o.key == k.key; });
    if (it == out.end()) {
      out.push_back(k);
      return;
    }
    KeySpec merged = k;
    if (merged.reason.empty()) merged.reason = it->reason;
    *it = merged;
  };
  for (const auto& k : contributed) upsert(k);
  for (const auto& k : user) upsert(k);
  std::erase_if(out, [&](const KeySpec& k) { return std::find(drop.begin(), drop.end(), k.key) != drop.end(); });
  return out;
}

Result<void> validateKeys(const std::vector<KeySpec>& keys) {
  std::string errors;
  for (const auto& k : keys) {
    if (auto e = keySyntaxError(k.key)) errors += "\n" + k.key + " (" + k.source + "): " + *e;
    else if (k.numeric && !isNumericValue(k.value))
      errors += "\n" + k.key + " (" + k.source + "): value \"" + k.value + "\" is not numeric";
    else if (!k.numeric && k.mode != Mode::kExact)
      errors += "\n" + k.key + " (" + k.source + "): mode " + std::string(modeName(k.mode)) + " needs a numeric value";
  }
  if (!errors.empty()) return failInvalid("invalid sysctl keys:" + errors);
  return {};
}

}  // namespace nodeagent::sysctl
