#include "kube/client.h"

#include "kube/curl_library.h"

#include <sys/stat.h>

#include <cstring>
#include <thread>

#include "common/files.h"
#include "common/log.h"

namespace nodeagent::kube {

namespace {

class HttpCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "http"; }
  std::string message(int c) const override { return "HTTP " + std::to_string(c); }
};

// Only called once Client::create() has loaded the library.
const CurlLibrary& curl() { return **curlLibrary(); }

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

struct Transfer {
  std::string* body;
  const std::function<bool(std::string_view)>* onLine;
  std::string lineBuf;
  bool stoppedByCaller = false;
  std::chrono::milliseconds retryAfter{0};
  const std::atomic<bool>* interrupted;
  const std::atomic<bool>* cancel;
};

size_t onWrite(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t len = size * n;
  if (!t->onLine) {
    t->body->append(data, len);
    return len;
  }
  t->lineBuf.append(data, len);
  size_t start = 0;
  for (;;) {
    auto nl = t->lineBuf.find('\n', start);
    if (nl == std::string::npos) break;
    std::string_view line(t->lineBuf.data() + start, nl - start);
    start = nl + 1;
    if (!line.empty() && !(*t->onLine)(line)) {
      t->stoppedByCaller = true;
      return 0;
    }
  }
  t->lineBuf.erase(0, start);
  if (t->lineBuf.size() > (16u << 20)) return 0;  // a 16 MiB line is not a watch event
  return len;
}

size_t onHeader(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string_view h(data, size * n);
  constexpr std::string_view kName = "retry-after:";
  if (h.size() > kName.size() && strncasecmp(h.data(), kName.data(), kName.size()) == 0) {
    std::string v = trim(std::string(h.substr(kName.size())));
    char* end = nullptr;
    long secs = std::strtol(v.c_str(), &end, 10);
    if (end && *end == '\0' && secs >= 0) t->retryAfter = std::chrono::seconds(secs);
  }
  return size * n;
}

int onProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  return t->interrupted->load() || (t->cancel && t->cancel->load()) ? 1 : 0;
}

bool retryableCurl(int code) {
  switch (code) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
      return true;
    default:
      return false;
  }
}

}  // namespace

// "reason: message" from an API Status body; the raw body (shortened) when it is not one.
std::string describeStatus(const std::string& body) {
  auto j = Json::parse(body);
  if (j && j->get("kind").asString() == "Status") {
    std::string reason = j->get("reason").asString();
    std::string msg = j->get("message").asString();
    if (reason.empty()) return msg;
    return msg.empty() ? reason : reason + ": " + msg;
  }
  std::string s = body.substr(0, 200);
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

RequestInfo requestInfo(std::string_view method, std::string_view path) {
  RequestInfo info;
  std::string_view query;
  if (auto q = path.find('?'); q != std::string_view::npos) {
    query = path.substr(q + 1);
    path = path.substr(0, q);
  }
  std::vector<std::string_view> parts;
  for (size_t i = 0; i < path.size();) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    if (j > i) parts.push_back(path.substr(i, j - i));
    i = j + 1;
  }
  // /api/v1/... (core group) or /apis/GROUP/VERSION/...
  std::string group;
  size_t at = 0;
  if (parts.size() >= 2 && parts[0] == "api") {
    at = 2;
  } else if (parts.size() >= 3 && parts[0] == "apis") {
    group = std::string(parts[1]);
    at = 3;
  } else {
    info.verb = method == "GET" ? "get" : method;
    info.resource = std::string(path);
    return info;
  }
  std::vector<std::string_view> rest(parts.begin() + static_cast<std::ptrdiff_t>(at), parts.end());
  if (rest.size() >= 3 && rest[0] == "namespaces") {  // namespaces/NS/RESOURCE[/NAME[/SUB]]
    info.ns = std::string(rest[1]);
    rest.erase(rest.begin(), rest.begin() + 2);
  }
  if (!rest.empty()) info.resource = std::string(rest[0]);
  if (!group.empty()) info.resource += "." + group;
  if (rest.size() >= 2) info.name = std::string(rest[1]);
  if (rest.size() >= 3) info.resource += "/" + std::string(rest[2]);

  bool watch = false;
  for (size_t i = 0; i < query.size();) {
    size_t j = query.find('&', i);
    if (j == std::string_view::npos) j = query.size();
    auto kv = query.substr(i, j - i);
    if (kv == "watch=true" || kv == "watch=1") watch = true;
    i = j + 1;
  }
  if (method == "GET") info.verb = watch ? "watch" : info.name.empty() ? "list" : "get";
  else if (method == "POST") info.verb = "create";
  else if (method == "PUT") info.verb = "update";
  else if (method == "PATCH") info.verb = "patch";
  else if (method == "DELETE") info.verb = info.name.empty() ? "deletecollection" : "delete";
  else info.verb = std::string(method);
  return info;
}

std::string forbiddenMessage(std::string_view method, std::string_view path, std::string_view serverText) {
  RequestInfo r = requestInfo(method, path);
  std::string s = std::string(method) + " " + std::string(path) + ": 403 Forbidden: cannot " + r.verb + " " + r.resource;
  if (!r.name.empty()) s += " \"" + r.name + "\"";
  if (!r.ns.empty()) s += " in namespace " + r.ns;
  s += " (check the RBAC rules of deploy/rbac.yaml): ";
  s += serverText;
  return s;
}

const std::error_category& httpCategory() {
  static HttpCategory c;
  return c;
}

int httpStatus(const Error& e) { return e.code().category() == httpCategory() ? e.code().value() : 0; }

Client::Client(ClusterConfig cluster, ClientOptions options)
    : cluster_(std::move(cluster)),
      opts_(std::move(options)),
      bucket_(opts_.qps, opts_.burst),
      rng_(std::random_device{}()) {}

Client::~Client() {
  if (handle_) curl().easyCleanup(static_cast<CURL*>(handle_));
}

Result<std::unique_ptr<Client>> Client::create(ClusterConfig cluster, ClientOptions options) {
  if (auto lib = curlLibrary(); !lib) return fail(lib.error());
  if (cluster.server.rfind("https://", 0) != 0) return failInvalid("API server must be https://, got " + cluster.server);
  while (!cluster.server.empty() && cluster.server.back() == '/') cluster.server.pop_back();
  std::unique_ptr<Client> c(new Client(std::move(cluster), std::move(options)));
  c->handle_ = curl().easyInit();
  if (!c->handle_) return failInvalid("curl_easy_init failed");
  if (!c->cluster_.tokenFile.empty()) {
    auto t = readFile(c->cluster_.tokenFile);
    if (!t) return fail(t.error().wrap("read service-account token"));
  }
  return c;
}

void Client::interrupt() {
  interrupted_ = true;
  std::lock_guard l(waitMu_);
  waitCv_.notify_all();
}

bool Client::waitFor(std::chrono::steady_clock::duration d) {
  std::unique_lock l(waitMu_);
  waitCv_.wait_for(l, d, [&] { return interrupted_.load(); });
  return !interrupted_;
}

bool Client::limit() {
  std::chrono::steady_clock::duration wait;
  {
    std::lock_guard l(waitMu_);
    wait = bucket_.reserve(std::chrono::steady_clock::now());
  }
  if (wait > std::chrono::steady_clock::duration::zero()) {
    std::lock_guard s(statsMu_);
    throttledWaits_++;
    throttledSeconds_ += std::chrono::duration<double>(wait).count();
  }
  return wait == wait.zero() ? !interrupted_ : waitFor(wait);
}

std::string Client::currentToken(bool force) {
  std::lock_guard l(tokenMu_);
  if (cluster_.tokenFile.empty()) return cluster_.token;
  struct stat st {};
  auto now = std::chrono::steady_clock::now();
  bool changed = ::stat(cluster_.tokenFile.c_str(), &st) == 0 &&
                 (st.st_ino != tokenIno_ || st.st_mtim.tv_sec != tokenMtime_.tv_sec ||
                  st.st_mtim.tv_nsec != tokenMtime_.tv_nsec);
  // Re-read on change, on a 401, and at least every minute (as client-go does).
  if (changed || force || token_.empty() || now - tokenReadAt_ > std::chrono::minutes(1)) {
    auto t = readFile(cluster_.tokenFile);
    if (t) {
      std::string fresh = trim(*t);
      if (!token_.empty() && fresh != token_) log::get("kube")->info("service-account token rotated ({})", cluster_.tokenFile);
      token_ = std::move(fresh);
      tokenIno_ = st.st_ino;
      tokenMtime_ = st.st_mtim;
      tokenReadAt_ = now;
    } else {
      log::get("kube")->warn("cannot re-read token: {}", t.error().message());
    }
  }
  return token_;
}

Result<void> Client::applyTls(void* h) {
  CURL* c = static_cast<CURL*>(h);
  if (!cluster_.caData.empty()) {
    curl_blob blob{cluster_.caData.data(), cluster_.caData.size(), CURL_BLOB_COPY};
    curl().easySetopt(c, CURLOPT_CAINFO_BLOB, &blob);
  } else if (!cluster_.caFile.empty()) {
    curl().easySetopt(c, CURLOPT_CAINFO, cluster_.caFile.c_str());
  }
  if (cluster_.insecureSkipVerify) {
    curl().easySetopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
    curl().easySetopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (!cluster_.certData.empty()) {
    curl_blob blob{cluster_.certData.data(), cluster_.certData.size(), CURL_BLOB_COPY};
    curl().easySetopt(c, CURLOPT_SSLCERT_BLOB, &blob);
    curl().easySetopt(c, CURLOPT_SSLCERTTYPE, "PEM");
  } else if (!cluster_.certFile.empty()) {
    curl().easySetopt(c, CURLOPT_SSLCERT, cluster_.certFile.c_str());
  }
  if (!cluster_.keyData.empty()) {
    curl_blob blob{cluster_.keyData.data(), cluster_.keyData.size(), CURL_BLOB_COPY};
    curl().easySetopt(c, CURLOPT_SSLKEY_BLOB, &blob);
    curl().easySetopt(c, CURLOPT_SSLKEYTYPE, "PEM");
  } else if (!cluster_.keyFile.empty()) {
    curl().easySetopt(c, CURLOPT_SSLKEY, cluster_.keyFile.c_str());
  }
  return {};
}

Client::Attempt Client::perform(void* h, const std::string& method, const std::string& url, const std::string& body,
                                const std::string& contentType, const std::function<bool(std::string_view)>* onLine,
                                std::chrono::milliseconds timeout, const std::atomic<bool>* cancel) {
  CURL* c = static_cast<CURL*>(h);
  curl().easyReset(c);  // keeps the connection cache
  Attempt a;
  Transfer t{&a.body, onLine, {}, false, std::chrono::milliseconds(0), &interrupted_, cancel};
  curl().easySetopt(c, CURLOPT_URL, url.c_str());
  curl().easySetopt(c, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS);
  curl().easySetopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl().easySetopt(c, CURLOPT_NOSIGNAL, 1L);
  curl().easySetopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(opts_.connectTimeout.count()));
  curl().easySetopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl().easySetopt(c, CURLOPT_USERAGENT, opts_.userAgent.c_str());
  curl().easySetopt(c, CURLOPT_WRITEFUNCTION, onWrite);
  curl().easySetopt(c, CURLOPT_WRITEDATA, &t);
  curl().easySetopt(c, CURLOPT_HEADERFUNCTION, onHeader);
  curl().easySetopt(c, CURLOPT_HEADERDATA, &t);
  curl().easySetopt(c, CURLOPT_NOPROGRESS, 0L);
  curl().easySetopt(c, CURLOPT_XFERINFOFUNCTION, onProgress);
  curl().easySetopt(c, CURLOPT_XFERINFODATA, &t);
  curl().easySetopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
  if (method == "GET") {
    curl().easySetopt(c, CURLOPT_HTTPGET, 1L);
  } else if (!body.empty() || method != "DELETE") {
    curl().easySetopt(c, CURLOPT_POSTFIELDS, body.c_str());
    curl().easySetopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }
  (void)applyTls(h);
  curl_slist* headers = nullptr;
  headers = curl().slistAppend(headers, "Accept: application/json");
  if (method != "GET") headers = curl().slistAppend(headers, ("Content-Type: " + contentType).c_str());
  std::string token = currentToken(false);
  std::string auth;
  if (!token.empty()) {
    auth = "Authorization: Bearer " + token;
    headers = curl().slistAppend(headers, auth.c_str());
  }
  curl().easySetopt(c, CURLOPT_HTTPHEADER, headers);
  char errbuf[CURL_ERROR_SIZE] = {};
  curl().easySetopt(c, CURLOPT_ERRORBUFFER, errbuf);
  CURLcode rc = curl().easyPerform(c);
  curl().slistFreeAll(headers);
  std::fill(auth.begin(), auth.end(), '\0');
  if (rc == CURLE_WRITE_ERROR && t.stoppedByCaller) rc = CURLE_OK;
  a.curlCode = rc;
  if (rc != CURLE_OK) a.curlError = errbuf[0] ? errbuf : curl().easyStrerror(rc);
  long status = 0;
  curl().easyGetinfo(c, CURLINFO_RESPONSE_CODE, &status);
  a.status = rc == CURLE_OK ? status : 0;
  a.retryAfter = t.retryAfter;
  return a;
}

void Client::count(const std::string& verb, long code) {
  std::lock_guard l(statsMu_);
  requests_[{verb, code ? std::to_string(code) : "<error>"}]++;
}

Result<Response> Client::request(const std::string& method, const std::string& path, const std::string& body,
                                 const std::string& contentType, RequestOptions ro) {
  int maxAttempts = ro.maxAttempts > 0 ? ro.maxAttempts : opts_.maxAttempts;
  std::string what = method + " " + path;
  std::string url = cluster_.server + path;
  bool reauthed = false;
  if (ro.retryAfter) *ro.retryAfter = std::chrono::milliseconds(0);
  for (int attempt = 1;; ++attempt) {
    if (!limit()) return failErrno(ECANCELED, what + ": client shutting down");
    Attempt a;
    {
      std::lock_guard l(handleMu_);
      a = perform(handle_, method, url, body, contentType, nullptr, opts_.requestTimeout);
    }
    count(method, a.status);
    if (ro.retryAfter) *ro.retryAfter = std::min(a.retryAfter, opts_.maxRetryAfter);
    if (a.curlCode == CURLE_OK && a.status >= 200 && a.status < 300) return Response{a.status, std::move(a.body)};
    if (interrupted_) return failErrno(ECANCELED, what + ": client shutting down");

    // A 401 with a token file: the token may have rotated under us; re-read once.
    if (a.status == 401 && !reauthed && !cluster_.tokenFile.empty()) {
      reauthed = true;
      std::string before;
      {
        std::lock_guard l(tokenMu_);
        before = token_;
      }
      if (currentToken(true) != before) {
        --attempt;
        continue;
      }
    }
    bool retryable = a.curlCode != CURLE_OK ? retryableCurl(a.curlCode) : (a.status >= 500 || a.status == 429);
    Error err;
    if (a.curlCode != CURLE_OK) {
      err = Error(std::make_error_code(std::errc::io_error), what + ": " + a.curlError);
    } else if (a.status == 401) {
      err = Error(std::error_code(401, httpCategory()),
                  what + ": 401 Unauthorized: the API server rejected the credentials from " + cluster_.source +
                      (cluster_.tokenFile.empty() ? "" : " (token file " + cluster_.tokenFile + ")"));
    } else if (a.status == 403) {
      err = Error(std::error_code(403, httpCategory()), forbiddenMessage(method, path, describeStatus(a.body)));
    } else {
      err = Error(std::error_code(static_cast<int>(a.status), httpCategory()),
                  what + ": " + std::to_string(a.status) + " " + describeStatus(a.body));
    }
    {
      std::lock_guard l(statsMu_);
      lastError_ = err.message();
    }
    if (!retryable || attempt >= maxAttempts) return fail(err);
    auto delay = backoffDelay(attempt, opts_.backoffBase, opts_.backoffMax, rng_);
    if (a.retryAfter > std::chrono::milliseconds(0)) delay = std::max(delay, std::min(a.retryAfter, opts_.maxRetryAfter));
    log::get("kube")->debug("{}; retry {} of {} in {} ms", err.message(), attempt, maxAttempts - 1, delay.count());
    {
      std::lock_guard l(statsMu_);
      retries_++;
    }
    if (!waitFor(delay)) return failErrno(ECANCELED, what + ": client shutting down");
  }
}

Result<void> Client::stream(const std::string& path, const std::function<bool(std::string_view)>& onLine,
                            std::chrono::milliseconds timeout, const std::atomic<bool>* cancel) {
  std::string what = "WATCH " + path;
  if (!limit()) return failErrno(ECANCELED, what + ": client shutting down");
  CURL* h = curl().easyInit();
  if (!h) return failInvalid("curl_easy_init failed");
  Attempt a = perform(h, "GET", cluster_.server + path, "", "", &onLine, timeout, cancel);
  if (cancel && cancel->load()) {
    curl().easyCleanup(h);
    return {};
  }
  curl().easyCleanup(h);
  count("WATCH", a.status);
  if (interrupted_) return failErrno(ECANCELED, what + ": client shutting down");
  if (a.curlCode != CURLE_OK) return fail(Error(std::make_error_code(std::errc::io_error), what + ": " + a.curlError));
  if (a.status == 403)  // named as GET ...?watch=true, which requestInfo reads as the verb watch
    return fail(Error(std::error_code(403, httpCategory()), forbiddenMessage("GET", path, describeStatus(a.body))));
  if (a.status < 200 || a.status >= 300)
    return fail(Error(std::error_code(static_cast<int>(a.status), httpCategory()),
                      what + ": " + std::to_string(a.status) + " " + describeStatus(a.body)));
  return {};
}

std::vector<core::Metric> Client::metrics() const {
  std::lock_guard l(statsMu_);
  std::vector<core::Metric> out;
  for (const auto& [key, n] : requests_)
    out.push_back({"nodeagent_kube_requests_total", "Kubernetes API requests by verb and HTTP code",
                   core::Metric::Type::kCounter, {{"verb", key.first}, {"code", key.second}}, static_cast<double>(n)});
  out.push_back({"nodeagent_kube_request_retries_total", "Kubernetes API requests retried after an error",
                 core::Metric::Type::kCounter, {}, static_cast<double>(retries_)});
  out.push_back({"nodeagent_kube_rate_limiter_wait_seconds_total", "Time requests waited for the client-side rate limiter",
                 core::Metric::Type::kCounter, {}, throttledSeconds_});
  return out;
}

Json Client::figures() const {
  std::lock_guard l(statsMu_);
  uint64_t total = 0;
  for (const auto& [_, n] : requests_) total += n;
  return Json::object()
      .set("server", cluster_.server)
      .set("credentials", cluster_.source)
      .set("requests", total)
      .set("retries", retries_)
      .set("last_error", lastError_);
}

}  // namespace nodeagent::kube
