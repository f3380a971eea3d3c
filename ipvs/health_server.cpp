#include "ipvs/health_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "common/json.h"
#include "common/log.h"

namespace nodeagent::ipvs {

std::string healthResponse(const HealthTarget& t, bool proxyHealthy) {
  bool ok = t.localEndpoints > 0 && proxyHealthy;
  // kube-proxy's body, tab-indented as it prints it.
  std::string body = "{\n\t\"service\": {\n\t\t\"namespace\": " + jsonQuote(t.ns) + ",\n\t\t\"name\": " +
                     jsonQuote(t.name) + "\n\t},\n\t\"localEndpoints\": " + std::to_string(t.localEndpoints) +
                     ",\n\t\"serviceProxyHealthy\": " + (proxyHealthy ? "true" : "false") + "\n}";
  return std::string(ok ? "HTTP/1.1 200 OK\r\n" : "HTTP/1.1 503 Service Unavailable\r\n") +
         "Content-Type: application/json\r\n"
         "X-Content-Type-Options: nosniff\r\n"
         "X-Load-Balancing-Endpoint-Weight: " +
         std::to_string(t.localEndpoints) + "\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nConnection: close\r\n\r\n" + body;
}

namespace {

Result<Fd> listenOn(const std::string& bindAddress, uint16_t port) {
  sockaddr_in6 a6{};
  sockaddr_in a4{};
  const sockaddr* sa;
  socklen_t len;
  int family = AF_INET6;
  if (bindAddress.empty()) {
    a6.sin6_family = AF_INET6;
    a6.sin6_addr = in6addr_any;
    a6.sin6_port = htons(port);
    sa = reinterpret_cast<const sockaddr*>(&a6);
    len = sizeof a6;
  } else if (inet_pton(AF_INET, bindAddress.c_str(), &a4.sin_addr) == 1) {
    family = AF_INET;
    a4.sin_family = AF_INET;
    a4.sin_port = htons(port);
    sa = reinterpret_cast<const sockaddr*>(&a4);
    len = sizeof a4;
  } else if (inet_pton(AF_INET6, bindAddress.c_str(), &a6.sin6_addr) == 1) {
    a6.sin6_family = AF_INET6;
    a6.sin6_port = htons(port);
    sa = reinterpret_cast<const sockaddr*>(&a6);
    len = sizeof a6;
  } else {
    return failInvalid("health check bind address \"" + bindAddress + "\" is not an IP address");
  }
  Fd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return failErrno("socket for health check port " + std::to_string(port));
  int one = 1, zero = 0;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  // One IPv6 socket serves IPv4 too, where the node has no IPv6 only setting.
  if (family == AF_INET6 && bindAddress.empty()) ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
  if (::bind(fd.get(), sa, len) != 0) return failErrno("bind health check port " + std::to_string(port));
  if (::listen(fd.get(), 64) != 0) return failErrno("listen on health check port " + std::to_string(port));
  return fd;
}

}  // namespace

Result<void> HealthCheckServer::update(const std::map<uint16_t, HealthTarget>& targets) {
  std::optional<Error> firstError;
  {
    std::lock_guard l(mu_);
    targets_ = targets;
    for (auto it = sockets_.begin(); it != sockets_.end();) {
      if (targets.contains(it->first)) {
        ++it;
        continue;
      }
      // The poll thread may still hold the socket until it wakes; shutdown stops the
      // listening at once, so the port refuses connections as soon as update() returns.
      ::shutdown(it->second.get(), SHUT_RDWR);
      it = sockets_.erase(it);
    }
    for (const auto& [port, _] : targets) {
      if (sockets_.contains(port)) continue;
      auto fd = listenOn(bindAddress_, port);
      if (!fd) {
        if (!firstError) firstError = fd.error();
        continue;
      }
      sockets_.emplace(port, std::move(*fd));
    }
    if (!wake_) wake_ = Fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  }
  if (!thread_.joinable() && !targets.empty()) thread_ = std::thread([this] { run(); });
  uint64_t one = 1;
  if (wake_) (void)!::write(wake_.get(), &one, sizeof one);
  if (firstError) return fail(*firstError);
  return {};
}

size_t HealthCheckServer::listeners() const {
  std::lock_guard l(mu_);
  return sockets_.size();
}

void HealthCheckServer::stop() {
  stop_ = true;
  uint64_t one = 1;
  if (wake_) (void)!::write(wake_.get(), &one, sizeof one);
  if (thread_.joinable()) thread_.join();
  std::lock_guard l(mu_);
  sockets_.clear();
}

void HealthCheckServer::run() {
  while (!stop_) {
    std::vector<pollfd> fds;
    std::vector<uint16_t> ports;
    {
      std::lock_guard l(mu_);
      fds.push_back({wake_.get(), POLLIN, 0});
      for (const auto& [port, fd] : sockets_) {
        fds.push_back({fd.get(), POLLIN, 0});
        ports.push_back(port);
      }
    }
    int n = ::poll(fds.data(), fds.size(), 1000);
    if (n < 0 && errno != EINTR) break;
    if (fds[0].revents) {
      uint64_t v;
      (void)!::read(wake_.get(), &v, sizeof v);
    }
    for (size_t i = 1; i < fds.size(); ++i) {
      if (!(fds[i].revents & POLLIN)) continue;
      Fd conn(::accept4(fds[i].fd, nullptr, nullptr, SOCK_CLOEXEC));
      if (!conn) continue;
      // Probes are small and quick: one read (bounded by a short timeout), one answer.
      timeval tv{1, 0};
      ::setsockopt(conn.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      ::setsockopt(conn.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
      char buf[2048];
      (void)!::recv(conn.get(), buf, sizeof buf, 0);
      std::string resp;
      {
        std::lock_guard l(mu_);
        auto it = targets_.find(ports[i - 1]);
        if (it == targets_.end()) continue;  // removed meanwhile: the socket is gone too
        resp = healthResponse(it->second);
      }
      (void)!::send(conn.get(), resp.data(), resp.size(), MSG_NOSIGNAL);
    }
  }
}

}  // namespace nodeagent::ipvs
