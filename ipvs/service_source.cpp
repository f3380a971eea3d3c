#include "ipvs/service_source.h"

#include <linux/ip_vs.h>
#include <unistd.h>
#include <sys/inotify.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <streambuf>
#include <set>
#include <spanstream>

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/node/detail/iterator.h>
#include <yaml-cpp/node/detail/memory.h>
#include <yaml-cpp/node/detail/node.h>

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

// Services as parsed, before the final state is built: flat vectors only, so the many
// short-lived allocations of YAML parsing are not interleaved with long-lived ones (the heap
// would keep their holes: several MB on a large file).
struct ParsedService {
  Service service;
  bool masquerade = false;
  uint32_t index = 0;          // position in the services list
  YAML::Mark keyMark;          // of its address (fwmark) key, for a duplicate's error
  uint32_t firstDest = 0, destCount = 0;
};
struct Parsed {
  std::vector<ParsedService> services;
  std::vector<Destination> dests;
};

void parseService(ConfigMap m, uint32_t index, Parsed& out) {
  ParsedService ps;
  ps.firstDest = static_cast<uint32_t>(out.dests.size());
  Service& s = ps.service;
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
  ps.masquerade = m.boolean("masquerade", false);
  std::string fwd = m.choice("forward", "masq", {"masq", "tunnel", "route"});
  Forward forward = fwd == "tunnel" ? Forward::kTunnel : fwd == "route" ? Forward::kDirect : Forward::kMasq;
  std::set<DestKey> destSeen;
  for (auto& e : m.mapList("endpoints")) {
    Destination d;
    d.forward = forward;
    // Only tunnelling carries a packet of one family inside the other; the kernel refuses
    // (EINVAL) a masq or route endpoint of the other family, fwmark services included.
    auto a = address(e, "address", forward == Forward::kTunnel ? 0 : s.key.family);
    if (a) d.key.address = *a;
    if (s.key.fwmark == 0 && !e.has("port")) e.error("port", "is required");
    d.key.port = static_cast<uint16_t>(e.integer("port", 0, s.key.fwmark ? 0 : 1, 65535));
    // Direct routing and tunnelling forward the packet unchanged: they cannot rewrite the
    // port (ipvsadm silently forces the service's; here it is said).
    if (s.key.fwmark == 0 && forward != Forward::kMasq && e.has("port") && d.key.port != s.key.port)
      e.error("port", "must equal the service port " + std::to_string(s.key.port) + " with forward: " + fwd +
                          " (the packet is forwarded unchanged, its port cannot be rewritten)");
    d.weight = static_cast<uint32_t>(e.integer("weight", 1, 0, 65535));
    d.upperThreshold = static_cast<uint32_t>(e.integer("upper_threshold", 0, 0, 0x7fffffff));
    d.lowerThreshold = static_cast<uint32_t>(e.integer("lower_threshold", 0, 0, 0x7fffffff));
    // The kernel refuses (ERANGE) a lower threshold above the upper one, and an unset upper
    // threshold is 0.
    if (d.lowerThreshold > d.upperThreshold)
      e.error("lower_threshold",
              d.upperThreshold == 0 ? "needs an upper_threshold (the kernel refuses a lower threshold alone)"
                                    : "must not exceed upper_threshold (" + std::to_string(d.upperThreshold) + ")");
    if (a && !destSeen.insert(d.key).second) e.error("address", "duplicate endpoint " + d.key.toString());
    e.finish();
    out.dests.push_back(d);
  }
  ps.destCount = static_cast<uint32_t>(out.dests.size() - ps.firstDest);
  if (ok) {
    ps.index = index;
    ps.keyMark = m.markOf(s.key.fwmark ? "fwmark" : "address");
    out.services.push_back(std::move(ps));
  }
  m.finish();
}

// Sorts the services by key and reports each one whose key came before.
void checkDuplicates(Parsed& p, ConfigErrors& errors) {
  std::stable_sort(p.services.begin(), p.services.end(),
                   [](const ParsedService& a, const ParsedService& b) { return a.service.key < b.service.key; });
  for (size_t i = 1; i < p.services.size(); ++i) {
    const auto& first = p.services[i - 1];
    const auto& dup = p.services[i];
    if (!(dup.service.key == first.service.key)) continue;
    size_t f = i - 1;
    while (f > 0 && p.services[f - 1].service.key == dup.service.key) --f;
    errors.add(dup.keyMark,
               "services[" + std::to_string(dup.index) + "]." + (dup.service.key.fwmark ? "fwmark" : "address"),
               "duplicate service " + dup.service.key.toString() + " (first at services[" +
                   std::to_string(p.services[f].index) + "])");
  }
}

// The final state from a valid parse (services sorted by key). Entries equal to those of
// `reuse` are shared.
DesiredState build(Parsed& p, const DesiredState* reuse) {
  auto byKey = [](const Destination& a, const Destination& b) { return a.key < b.key; };
  DesiredState out;
  for (const auto& ps : p.services) {
    std::span<Destination> dests(p.dests.data() + ps.firstDest, ps.destCount);
    std::sort(dests.begin(), dests.end(), byKey);
    if (reuse) {
      auto old = reuse->find(ps.service.key);
      if (old != reuse->end() && old->second->service == ps.service && old->second->masquerade == ps.masquerade &&
          std::equal(dests.begin(), dests.end(), old->second->dests.begin(), old->second->dests.end())) {
        out.emplace_hint(out.end(), ps.service.key, old->second);
        continue;
      }
    }
    auto ds = std::make_shared<DesiredService>();
    ds->service = ps.service;
    ds->masquerade = ps.masquerade;
    ds->dests = Dests(std::vector<Destination>(dests.begin(), dests.end()));
    out.emplace_hint(out.end(), ps.service.key, std::move(ds));
  }
  return out;
}

// Builds yaml-cpp nodes from parser events as YAML::Load does (same marks, so the same
// file:line:col errors), except that each item of the top-level `services` list is handed
// to `onItem` as soon as it is complete and then dropped: memory follows one service, not
// the whole file (a 110,000-line file as one node tree takes hundreds of MB).
class ServiceStream final : public YAML::EventHandler {
 public:
  using ItemFn = std::function<void(const YAML::Node& item, uint32_t index)>;
  explicit ServiceStream(ItemFn onItem) : onItem_(std::move(onItem)) {}

  // The document with the services list emptied (its type and mark kept).
  YAML::Node root() {
    if (!root_) return YAML::Node(YAML::NodeType::Map);
    return wrap(*root_, rootMem_);
  }

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    push(mark, anchor).set_null();
    pop();
  }
  void OnAlias(const YAML::Mark&, YAML::anchor_t anchor) override {
    if (anchor >= anchors_.size() || !anchors_[anchor].first) throw YAML::Exception(YAML::Mark(), "unknown alias");
    auto& [node, mem] = anchors_[anchor];
    if (mem != memory()) memory()->merge(*mem);  // the alias's owner lives as long as this item
    pushNode(*node);
    pop();
  }
  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    auto& n = push(mark, anchor);
    n.set_scalar(value);
    n.set_tag(tag);
    pop();
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value style) override {
    bool services = stack_.size() == 1 && stack_[0]->type() == YAML::NodeType::Map && !keys_.empty() &&
                    keys_.back().second && keys_.back().first->type() == YAML::NodeType::Scalar &&
                    keys_.back().first->scalar() == "services";
    auto& n = push(mark, anchor);
    n.set_type(YAML::NodeType::Sequence);
    n.set_tag(tag);
    n.set_style(style);
    if (services) stream_ = &n;
  }
  void OnSequenceEnd() override { pop(); }
  void OnMapStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value style) override {
    auto& n = push(mark, anchor);
    n.set_type(YAML::NodeType::Map);
    n.set_tag(tag);
    n.set_style(style);
    ++mapDepth_;
  }
  void OnMapEnd() override {
    --mapDepth_;
    pop();
  }

 private:
  using Memory = YAML::detail::shared_memory_holder;
  const Memory& memory() const { return itemMem_ ? itemMem_ : rootMem_; }

  // There is no public constructor of a Node from a detail::node; an iterator over a
  // one-element sequence yields one.
  static YAML::Node wrap(YAML::detail::node& n, const Memory& mem) {
    auto& holder = mem->create_node();
    holder.set_type(YAML::NodeType::Sequence);
    holder.push_back(n, mem);
    return YAML::Node(*YAML::iterator(holder.begin(), mem));
  }

  YAML::detail::node& push(const YAML::Mark& mark, YAML::anchor_t anchor) {
    if (!stack_.empty() && stack_.back() == stream_) itemMem_ = std::make_shared<YAML::detail::memory_holder>();
    auto& n = memory()->create_node();
    n.set_mark(mark);
    if (anchor) {
      if (anchors_.size() <= anchor) anchors_.resize(anchor + 1);
      anchors_[anchor] = {&n, memory()};
    }
    pushNode(n);
    return n;
  }
  void pushNode(YAML::detail::node& n) {
    if (!stack_.empty() && stack_.back() == stream_ && !itemMem_) itemMem_ = rootMem_;  // an alias as the item
    bool needsKey = !stack_.empty() && stack_.back()->type() == YAML::NodeType::Map && keys_.size() < mapDepth_;
    stack_.push_back(&n);
    if (needsKey) keys_.emplace_back(&n, false);
  }
  void pop() {
    YAML::detail::node& n = *stack_.back();
    stack_.pop_back();
    if (stack_.empty()) {
      root_ = &n;
      return;
    }
    YAML::detail::node& parent = *stack_.back();
    if (&parent == stream_) {
      onItem_(wrap(n, memory()), index_++);
      itemMem_.reset();
    } else if (parent.type() == YAML::NodeType::Sequence) {
      parent.push_back(n, memory());
    } else if (parent.type() == YAML::NodeType::Map) {
      auto& key = keys_.back();
      if (key.second) {
        parent.insert(*key.first, n, memory());
        keys_.pop_back();
      } else {
        key.second = true;
      }
    }
  }

  ItemFn onItem_;
  Memory rootMem_ = std::make_shared<YAML::detail::memory_holder>();
  Memory itemMem_;
  YAML::detail::node* root_ = nullptr;
  YAML::detail::node* stream_ = nullptr;
  std::vector<YAML::detail::node*> stack_;
  std::vector<std::pair<YAML::detail::node*, bool>> keys_;
  size_t mapDepth_ = 0;
  std::vector<std::pair<YAML::detail::node*, Memory>> anchors_;
  uint32_t index_ = 0;
};

// A read-only stream over a file descriptor that stops at a byte limit and keeps the read
// error, instead of throwing from the middle of the YAML parser as std::ifstream does
// (reading a directory).
class LimitedFdBuf final : public std::streambuf {
 public:
  LimitedFdBuf(int fd, size_t limit) : fd_(fd), limit_(limit) {}
  bool overLimit() const { return overLimit_; }
  int error() const { return error_; }

 protected:
  int_type underflow() override {
    if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
    if (overLimit_ || error_) return traits_type::eof();
    ssize_t n;
    do n = ::read(fd_, buf_, sizeof buf_);
    while (n < 0 && errno == EINTR);
    if (n < 0) error_ = errno;
    if (n <= 0) return traits_type::eof();
    total_ += static_cast<size_t>(n);
    if (total_ > limit_) {
      overLimit_ = true;
      return traits_type::eof();
    }
    setg(buf_, buf_, buf_ + n);
    return traits_type::to_int_type(*gptr());
  }

 private:
  int fd_;
  size_t limit_;
  size_t total_ = 0;
  bool overLimit_ = false;
  int error_ = 0;
  char buf_[16384];
};

}  // namespace

Result<DesiredState> parseServices(std::istream& in, const std::string& source, const DesiredState* reuse) {
  ConfigErrors errors(source);
  Parsed parsed;
  ServiceStream stream([&](const YAML::Node& item, uint32_t i) {
    parseService(ConfigMap(item, "services[" + std::to_string(i) + "]", errors), i, parsed);
  });
  try {
    YAML::Parser parser(in);
    parser.HandleNextDocument(stream);
    if (auto second = nextDocumentMark(parser)) return failInvalid(secondDocumentError(source, *second));
  } catch (const YAML::Exception& e) {
    std::string where = source;
    if (e.mark.line >= 0) where += ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1);
    return failInvalid(where + ": " + e.msg);
  }
  YAML::Node doc = stream.root();
  if (doc.IsNull()) doc = YAML::Node(YAML::NodeType::Map);
  ConfigMap top(doc, "", errors);
  top.mapList("services");  // type checks only: the items went through the stream
  top.finish();
  checkDuplicates(parsed, errors);
  if (auto r = errors.toResult(); !r) return fail(r.error());
  return build(parsed, reuse);
}

Result<DesiredState> parseServiceFile(const std::string& text, const std::string& source, const DesiredState* reuse) {
  std::ispanstream in(std::span<const char>(text.data(), text.size()));
  return parseServices(in, source, reuse);
}

Result<DesiredState> FileServiceSource::load(const DesiredState* reuse) {
  auto fd = openRegularFile(path_, kMaxServicesFileBytes);
  if (!fd) return fail(fd.error().wrap("read services file"));
  LimitedFdBuf buf(fd->get(), kMaxServicesFileBytes);
  std::istream in(&buf);
  auto parsed = parseServices(in, path_, reuse);
  // The parser saw an early end of file: say why rather than what it made of the rest.
  if (buf.error()) return failErrno(buf.error(), "read services file " + path_);
  if (buf.overLimit())
    return failInvalid("read services file: " + path_ + ": larger than the limit of " +
                       std::to_string(kMaxServicesFileBytes) + " bytes");
  return parsed;
}

// Shared by the source and the loop's thread: the inotify descriptor, the callback and
// (loop thread only) the loop's reader of it.
struct FileServiceSource::Watch {
  Fd inotify;
  std::string name;  // the file's name in its directory
  std::function<void()> onChange;
  std::atomic<bool> live{true};
  std::unique_ptr<EventLoop::Reader> reader;

  // Loop thread: drains the events; the callback runs once if one named the file.
  void readable() {
    alignas(inotify_event) char buf[4096];
    bool relevant = false;
    for (;;) {
      ssize_t n = ::read(inotify.get(), buf, sizeof buf);
      if (n <= 0) break;
      for (char* p = buf; p < buf + n;) {
        auto* ev = reinterpret_cast<inotify_event*>(p);
        if (ev->len && name == ev->name) relevant = true;
        p += sizeof(inotify_event) + ev->len;
      }
    }
    if (relevant && live) onChange();
  }
};

void FileServiceSource::watch(std::function<void()> onChange) {
  if (watch_ || !loop_.valid()) return;
  auto w = std::make_shared<Watch>();
  w->inotify.reset(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
  if (!w->inotify) {
    log::get("ipvs")->warn("cannot watch {} for changes ({}); SIGHUP still reloads", path_, std::strerror(errno));
    return;
  }
  // Watch the directory: editors and atomic writers replace the file by rename.
  std::string dir = std::filesystem::path(path_).parent_path().string();
  if (::inotify_add_watch(w->inotify.get(), dir.c_str(),
                          IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MOVED_FROM) < 0) {
    log::get("ipvs")->warn("cannot watch {} for changes ({}); SIGHUP still reloads", dir, std::strerror(errno));
    return;
  }
  w->name = std::filesystem::path(path_).filename().string();
  w->onChange = std::move(onChange);
  watch_ = w;
  loop_.post([w](EventLoop& loop) {
    if (!w->live) return;
    auto r = loop.reader(w->inotify.get(), [raw = w.get()] { raw->readable(); });
    if (!r) {
      log::get("ipvs")->warn("cannot watch the services file for changes ({}); SIGHUP still reloads",
                             r.error().message());
      return;
    }
    w->reader = std::move(*r);
  });
}

void FileServiceSource::stop() {
  if (!watch_) return;
  // From now on the callback is not called; the loop's thread drops its reader (and the
  // descriptor with it) when it next runs, or with the loop.
  watch_->live = false;
  loop_.post([w = std::move(watch_)](EventLoop&) { w->reader.reset(); });
}

}  // namespace nodeagent::ipvs
