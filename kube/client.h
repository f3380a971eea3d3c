// Client: a small Kubernetes API client over libcurl (TLS, HTTP/2 when offered).
// Adds the bearer token (re-read when its file rotates) or client certificate, limits
// requests with a token bucket, retries connection errors, 5xx and 429 (honouring
// Retry-After) with jittered backoff, and decodes API `Status` errors.
#pragma once

#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "kube/cluster.h"
#include "kube/rate.h"
#include "core/module.h"
#include "common/result.h"

namespace nodeagent::kube {

// Errors from the API server carry the HTTP status in this category.
const std::error_category& httpCategory();
// The HTTP status of an API error, 0 for transport and other errors.
int httpStatus(const Error& e);
// "reason: message" from an API Status body; the raw body (shortened, one line) when the
// body is not a Status.
std::string describeStatus(const std::string& body);

// A request in RBAC's terms, for messages that say what was refused: the verb (get, list,
// watch, create, update, patch, delete, deletecollection), the resource with its API group
// and subresource ("nodes/status", "endpointslices.discovery.k8s.io"), the object's name
// and namespace when the path names them.
struct RequestInfo {
  std::string verb;
  std::string resource;
  std::string name;
  std::string ns;
};
RequestInfo requestInfo(std::string_view method, std::string_view path);
// The error text of a 403: "GET /api/v1/nodes/n1: 403 Forbidden: cannot get nodes "n1"
// (check the RBAC rules of deploy/rbac.yaml): <the server's reason: message>".
std::string forbiddenMessage(std::string_view method, std::string_view path, std::string_view serverText);

struct ClientOptions {
  double qps = 5;
  int burst = 10;
  std::chrono::milliseconds connectTimeout{5000};
  std::chrono::milliseconds requestTimeout{30000};
  int maxAttempts = 5;
  std::chrono::milliseconds backoffBase{250};
  std::chrono::milliseconds backoffMax{30000};
  std::chrono::milliseconds maxRetryAfter{120000};  // a larger Retry-After is capped
  std::string userAgent = "nodeagent";
};

struct Response {
  long status = 0;
  std::string body;
};

struct RequestOptions {
  int maxAttempts = 0;  // 0: ClientOptions::maxAttempts
  // Set to the server's Retry-After of the last attempt (0 when none), so callers that
  // retry on their own (with newer content) can honour it.
  std::chrono::milliseconds* retryAfter = nullptr;
};

class Client {
 public:
  [[nodiscard]] static Result<std::unique_ptr<Client>> create(ClusterConfig cluster, ClientOptions options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // One API call. Non-2xx answers are errors (httpStatus() tells the code) with the
  // server's Status reason and message.
  [[nodiscard]] Result<Response> request(const std::string& method, const std::string& path,
                                         const std::string& body = "",
                                         const std::string& contentType = "application/json",
                                         RequestOptions opts = {});
  [[nodiscard]] Result<Response> get(const std::string& path) { return request("GET", path); }

  // A long-running GET (watch): calls onLine for every newline-terminated line until the
  // server ends the stream (Ok), onLine returns false (Ok), or an error. `timeout` bounds
  // the whole stream. Rate-limited like any request; not retried (the caller resumes).
  [[nodiscard]] Result<void> stream(const std::string& path, const std::function<bool(std::string_view)>& onLine,
                                    std::chrono::milliseconds timeout, const std::atomic<bool>* cancel = nullptr);

  // Makes every wait and stream return soon (shutdown). Irreversible.
  void interrupt();
  bool interrupted() const { return interrupted_; }

  // Prometheus samples: requests by verb and code, retries, rate-limiter waits.
  std::vector<core::Metric> metrics() const;
  Json figures() const;
  const ClusterConfig& cluster() const { return cluster_; }

 private:
  Client(ClusterConfig cluster, ClientOptions options);
  struct Attempt {
    long status = 0;
    int curlCode = 0;
    std::string curlError;
    std::string body;
    std::chrono::milliseconds retryAfter{0};
  };
  Attempt perform(void* handle, const std::string& method, const std::string& url, const std::string& body,
                  const std::string& contentType, const std::function<bool(std::string_view)>* onLine,
                  std::chrono::milliseconds timeout, const std::atomic<bool>* cancel = nullptr);
  Result<void> applyTls(void* handle);
  std::string currentToken(bool forceReread);
  bool waitFor(std::chrono::steady_clock::duration d);  // false when interrupted
  bool limit();                                          // token bucket; false when interrupted
  void count(const std::string& verb, long code);

  ClusterConfig cluster_;
  ClientOptions opts_;
  std::atomic<bool> interrupted_{false};

  std::mutex waitMu_;
  std::condition_variable waitCv_;
  TokenBucket bucket_;
  std::mt19937_64 rng_;

  std::mutex handleMu_;  // serializes plain requests on one keep-alive connection
  void* handle_ = nullptr;

  std::mutex tokenMu_;
  std::string token_;
  struct timespec tokenMtime_ {};
  ino_t tokenIno_ = 0;
  std::chrono::steady_clock::time_point tokenReadAt_{};

  mutable std::mutex statsMu_;
  std::map<std::pair<std::string, std::string>, uint64_t> requests_;  // (verb, code) -> n
  uint64_t retries_ = 0;
  uint64_t throttledWaits_ = 0;
  double throttledSeconds_ = 0;
  std::string lastError_;
};

}  // namespace nodeagent::kube
