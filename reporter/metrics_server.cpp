#include "reporter/metrics_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <set>

#include "common/log.h"

namespace nodeagent::reporter {

namespace {

bool validName(const std::string& n, bool allowColon) {
  if (n.empty()) return false;
  for (size_t i = 0; i < n.size(); ++i) {
    char c = n[i];
    bool ok = std::isalpha(static_cast<unsigned char>(c)) || c == '_' || (allowColon && c == ':') ||
              (i > 0 && std::isdigit(static_cast<unsigned char>(c)));
    if (!ok) return false;
  }
  return true;
}

std::string escape(const std::string& s, bool quotes) {
  std::string out;
  for (char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '"' && quotes) out += "\\\"";
    else out += c;
  }
  return out;
}

std::string formatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return std::to_string(static_cast<int64_t>(v));
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

}  // namespace

std::string renderPrometheus(const std::vector<core::Metric>& metrics) {
  struct Family {
    const core::Metric* first;
    std::vector<const core::Metric*> samples;
  };
  std::vector<std::string> order;
  std::map<std::string, Family> families;
  std::set<std::string> series;
  for (const auto& m : metrics) {
    if (!validName(m.name, true)) continue;
    bool badLabel = false;
    std::string key = m.name + "{";
    for (const auto& [k, v] : m.labels) {
      if (!validName(k, false) || k.rfind("__", 0) == 0) badLabel = true;
      key += k + "=" + v + ",";
    }
    if (badLabel || !series.insert(key).second) continue;
    auto it = families.find(m.name);
    if (it == families.end()) {
      order.push_back(m.name);
      it = families.emplace(m.name, Family{&m, {}}).first;
    }
    if (it->second.first->type != m.type) continue;
    it->second.samples.push_back(&m);
  }
  std::string out;
  for (const auto& name : order) {
    const auto& f = families[name];
    out += "# HELP " + name + " " + escape(f.first->help.empty() ? name : f.first->help, false) + "\n";
    out += "# TYPE " + name + (f.first->type == core::Metric::Type::kCounter ? " counter\n" : " gauge\n");
    for (const auto* s : f.samples) {
      out += name;
      if (!s->labels.empty()) {
        out += "{";
        for (size_t i = 0; i < s->labels.size(); ++i)
          out += (i ? "," : "") + s->labels[i].first + "=\"" + escape(s->labels[i].second, true) + "\"";
        out += "}";
      }
      out += " " + formatValue(s->value) + "\n";
    }
  }
  return out;
}

std::vector<core::Metric> storeMetrics(const std::vector<core::ModuleSnapshot>& modules) {
  using T = core::Metric::Type;
  std::vector<core::Metric> out;
  for (const auto& m : modules)
    for (core::Health h : {core::Health::kStarting, core::Health::kHealthy, core::Health::kDegraded, core::Health::kFailed, core::Health::kDisabled})
      out.push_back({"nodeagent_module_health", "1 for the module's current health state", T::kGauge,
                     {{"module", m.state.name}, {"state", std::string(core::healthName(h))}}, m.state.health == h ? 1.0 : 0.0});
  for (const auto& m : modules) {
    out.push_back({"nodeagent_module_reconciles_total", "Reconcile passes", T::kCounter, {{"module", m.state.name}},
                   double(m.runner.reconciles)});
    out.push_back({"nodeagent_module_reconcile_failures_total", "Failed reconcile passes", T::kCounter,
                   {{"module", m.state.name}}, double(m.runner.failures)});
    out.push_back({"nodeagent_module_reconcile_duration_seconds", "Duration of the last reconcile pass", T::kGauge,
                   {{"module", m.state.name}}, std::chrono::duration<double>(m.runner.lastDuration).count()});
  }
  for (const auto& m : modules)
    for (const auto& c : m.state.conditions)
      out.push_back({"nodeagent_condition", "1 when the module's condition holds (status True)", T::kGauge,
                     {{"module", m.state.name}, {"condition", c.type}}, c.status ? 1.0 : 0.0});
  for (const auto& m : modules)
    for (const auto& metric : m.state.metrics) out.push_back(metric);
  return out;
}

Result<void> MetricsServer::start(const std::string& address) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos) return failInvalid("metrics address must be HOST:PORT, got " + address);
  std::string host = address.substr(0, colon);
  int port = std::atoi(address.c_str() + colon + 1);
  sockaddr_storage ss{};
  socklen_t len;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), &a->sin6_addr) != 1)
      return failInvalid("metrics address: bad IPv6 address " + host);
    len = sizeof *a;
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET, host.c_str(), &a->sin_addr) != 1)
      return failInvalid("metrics address: bad IPv4 address " + host + " (use an address, not a name)");
    len = sizeof *a;
  }
  Fd s(::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!s) return failErrno("metrics socket");
  int one = 1;
  setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(s.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) return failErrno("bind metrics address " + address);
  if (::listen(s.get(), 16) != 0) return failErrno("listen on " + address);
  sockaddr_storage bound{};
  socklen_t blen = sizeof bound;
  getsockname(s.get(), reinterpret_cast<sockaddr*>(&bound), &blen);
  port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  wake_ = Fd(eventfd(0, EFD_CLOEXEC));
  if (!wake_) return failErrno("eventfd");
  listen_ = std::move(s);
  thread_ = std::thread([this] { serve(); });
  return {};
}

void MetricsServer::stop() {
  if (!thread_.joinable()) return;
  uint64_t one = 1;
  (void)!::write(wake_.get(), &one, sizeof one);
  thread_.join();
  listen_.reset();
}

void MetricsServer::serve() {
  for (;;) {
    pollfd fds[2] = {{listen_.get(), POLLIN, 0}, {wake_.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents) return;
    Fd c(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!c) continue;
    handle(c.get());
  }
}

void MetricsServer::handle(int fd) {
  // Read the request head (up to 8 KiB) within 2 s.
  std::string req;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  char buf[2048];
  while (req.find("\r\n\r\n") == std::string::npos && req.size() < 8192) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) return;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) return;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return;
    req.append(buf, static_cast<size_t>(n));
  }
  requests_++;
  std::string line = req.substr(0, req.find("\r\n"));
  std::string status = "200 OK", type = "text/plain; version=0.0.4; charset=utf-8", body;
  auto sp1 = line.find(' '), sp2 = line.rfind(' ');
  std::string method = line.substr(0, sp1);
  std::string target = sp1 != std::string::npos && sp2 > sp1 ? line.substr(sp1 + 1, sp2 - sp1 - 1) : "";
  std::string path = target.substr(0, target.find('?'));
  bool head = method == "HEAD";
  if (sp1 == std::string::npos || line.compare(sp2 + 1, 5, "HTTP/") != 0) {
    status = "400 Bad Request";
    type = "text/plain";
    body = "bad request\n";
  } else if (method != "GET" && !head) {
    status = "405 Method Not Allowed";
    type = "text/plain";
    body = "only GET\n";
  } else if (path == "/metrics") {
    body = render_();
  } else if (path == "/healthz") {
    type = "text/plain";
    body = "ok\n";
  } else {
    status = "404 Not Found";
    type = "text/plain";
    body = "try /metrics\n";
  }
  std::string out = "HTTP/1.1 " + status + "\r\nContent-Type: " + type + "\r\nContent-Length: " +
                    std::to_string(body.size()) + "\r\nConnection: close\r\n" +
                    (status.rfind("405", 0) == 0 ? "Allow: GET, HEAD\r\n" : "") + "\r\n";
  if (!head) out += body;
  size_t off = 0;
  while (off < out.size()) {
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, 2000) <= 0) return;
    ssize_t n = ::send(fd, out.data() + off, out.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

}  // namespace nodeagent::reporter
