#include "ipvs/service_source.h"

#include <linux/ip_vs.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/socket.h>

#include <filesystem>
#include <set>

#include "common/config_reader.h"
#include "common/files.h"
#include "common/log.h"

namespace nodeagent::ipvs {

namespace {

const std::initializer_list<std::string_view> kSchedulers = {"rr",  "wrr", "lc", "wlc", "lblc", "lblcr", "dh",
                                                             "sh",  "sed", "nq", "fo",  "ovf",  "mh"};

std::optional<Address> address(ConfigMap& m, std::string_view key, int wantFamily) {
  std::string text = m.string(key, "");
  if (text.empty()) {
    m.error(key, "is required");
    return std::nullopt;
  }
  auto a = Address::parse(text);
  if (!a) {
    m.error(key, a.error().message());
    return std::nullopt;
  }
  if (wantFamily && a->family != wantFamily) {
    m.error(key, "\"" + text + "\" is not of the service's address family");
    return std::nullopt;
  }
  return *a;
}

void parseService(ConfigMap m, DesiredState& out, std::map<ServiceKey, std::string>& seen) {
  DesiredService ds;
  Service& s = ds.service;
  bool ok = true;
  if (m.has("fwmark")) {
    s.key.fwmark = static_cast<uint32_t>(m.integer("fwmark", 1, 1, 0xffffffffLL));
    s.key.family = m.choice("family", "inet", {"inet", "inet6"}) == "inet6" ? AF_INET6 : AF_INET;
    for (const char* k : {"address", "port", "protocol"})
      if (m.has(k)) m.error(k, "not allowed with fwmark");
  } else {
    auto a = address(m, "address", 0);
    ok = ok && a.has_value();
    if (a) {
      s.key.address = *a;
      s.key.family = a->family;
    }
    if (!m.has("port")) m.error("port", "is required");
    s.key.port = static_cast<uint16_t>(m.integer("port", 1, 1, 65535));
    auto proto = parseProtocol(m.choice("protocol", "tcp", {"tcp", "udp", "sctp"}));
    if (proto) s.key.protocol = *proto;
  }
  s.scheduler = m.choice("scheduler", "rr", kSchedulers);
  for (const auto& f : m.stringList("scheduler_flags")) {
    if (f == "sh-fallback" || f == "mh-fallback") s.flags |= IP_VS_SVC_F_SCHED1;
    else if (f == "sh-port" || f == "mh-port") s.flags |= IP_VS_SVC_F_SCHED2;
    else m.error("scheduler_flags", "unknown flag \"" + f + "\" (sh-fallback, sh-port, mh-fallback, mh-port)");
  }
  auto persist = m.duration("persistence", std::chrono::milliseconds(0), std::chrono::milliseconds(0),
                            std::chrono::hours(24 * 30));
  if (persist.count() > 0) {
    s.flags |= IP_VS_SVC_F_PERSISTENT;
    s.timeout = static_cast<uint32_t>(std::max<int64_t>(1, persist.count() / 1000));
  }
  ds.masquerade = m.boolean("masquerade", false);
  std::string fwd = m.choice("forward", "masq", {"masq", "tunnel", "route"});
  Forward forward = fwd == "tunnel" ? Forward::kTunnel : fwd == "route" ? Forward::kDirect : Forward::kMasq;
  std::set<DestKey> destSeen;
  for (auto& e : m.mapList("endpoints")) {
    Destination d;
    d.forward = forward;
    auto a = address(e, "address", forward == Forward::kMasq && s.key.fwmark == 0 ? s.key.family : 0);
    if (a) d.key.address = *a;
    if (s.key.fwmark == 0 && !e.has("port")) e.error("port", "is required");
    d.key.port = static_cast<uint16_t>(e.integer("port", 0, s.key.fwmark ? 0 : 1, 65535));
    d.weight = static_cast<uint32_t>(e.integer("weight", 1, 0, 65535));
    d.upperThreshold = static_cast<uint32_t>(e.integer("upper_threshold", 0, 0, 0x7fffffff));
    d.lowerThreshold = static_cast<uint32_t>(e.integer("lower_threshold", 0, 0, 0x7fffffff));
    if (a && !destSeen.insert(d.key).second) e.error("address", "duplicate endpoint " + d.key.toString());
    e.finish();
    ds.dests.emplace(d.key, d);
  }
  std::string where = m.keyPath("");
  if (ok) {
    auto [it, inserted] = seen.emplace(s.key, m.path());
    if (!inserted)
      m.error(s.key.fwmark ? "fwmark" : "address", "duplicate service " + s.key.toString() + " (first at " + it->second + ")");
    else
      out.emplace(s.key, std::move(ds));
  }
  m.finish();
}

}  // namespace

Result<DesiredState> parseServiceFile(const std::string& text, const std::string& source) {
  auto doc = loadYaml(text, source);
  if (!doc) return fail(doc.error());
  ConfigErrors errors(source);
  ConfigMap top(*doc, "", errors);
  DesiredState out;
  std::map<ServiceKey, std::string> seen;
  for (auto& s : top.mapList("services")) parseService(std::move(s), out, seen);
  top.finish();
  if (auto r = errors.toResult(); !r) return fail(r.error());
  return out;
}

Result<DesiredState> FileServiceSource::load() {
  auto text = readFile(path_);
  if (!text) return fail(text.error().wrap("read services file"));
  return parseServiceFile(*text, path_);
}

void FileServiceSource::watch(std::function<void()> onChange) {
  if (thread_.joinable()) return;
  inotify_.reset(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
  wake_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!inotify_ || !wake_) return;
  // Watch the directory: editors and atomic writers replace the file by rename.
  std::string dir = std::filesystem::path(path_).parent_path().string();
  if (::inotify_add_watch(inotify_.get(), dir.c_str(),
                          IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MOVED_FROM) < 0) {
    log::get("ipvs")->warn("cannot watch {} for changes ({}); SIGHUP still reloads", dir, std::strerror(errno));
    return;
  }
  thread_ = std::thread([this, cb = std::move(onChange)] { run(cb); });
}

void FileServiceSource::run(std::function<void()> onChange) {
  std::string name = std::filesystem::path(path_).filename().string();
  alignas(inotify_event) char buf[4096];
  for (;;) {
    pollfd fds[2] = {{inotify_.get(), POLLIN, 0}, {wake_.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents) return;
    bool relevant = false;
    for (;;) {
      ssize_t n = ::read(inotify_.get(), buf, sizeof buf);
      if (n <= 0) break;
      for (char* p = buf; p < buf + n;) {
        auto* ev = reinterpret_cast<inotify_event*>(p);
        if (ev->len && name == ev->name) relevant = true;
        p += sizeof(inotify_event) + ev->len;
      }
    }
    if (relevant) onChange();
  }
}

void FileServiceSource::stop() {
  if (!thread_.joinable()) return;
  uint64_t one = 1;
  (void)!::write(wake_.get(), &one, sizeof one);
  thread_.join();
}

}  // namespace nodeagent::ipvs
