#include "kube/list_watch.h"

#include "kube/rate.h"
#include "common/log.h"

namespace nodeagent::kube {

std::string urlEncode(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  return out;
}

Result<WatchEvent> decodeWatchEvent(std::string_view line) {
  auto ev = Json::parse(line);
  if (!ev) return fail(ev.error());
  if (!ev->isObject()) return failInvalid("watch event is not a JSON object");
  WatchEvent out;
  out.type = ev->get("type").asString();
  if (out.type.empty()) return failInvalid("watch event without a type");
  out.object = ev->get("object");
  if (out.type == "ERROR") {
    out.errorCode = out.object.get("code").asInt();
    out.errorMessage = out.object.get("message").asString();
  } else {
    out.resourceVersion = out.object.get("metadata").get("resourceVersion").asString();
  }
  return out;
}

ListWatch::ListWatch(Client& client, ListWatchOptions options, ListWatchHandler handler)
    : client_(client), opts_(std::move(options)), handler_(std::move(handler)) {}

void ListWatch::stop() {
  stop_ = true;
  std::lock_guard l(mu_);
  cv_.notify_all();
}

bool ListWatch::sleep(std::chrono::milliseconds d) {
  std::unique_lock l(mu_);
  cv_.wait_for(l, d, [&] { return stop_.load(); });
  return !stop_;
}

ListWatchStats ListWatch::stats() const {
  std::lock_guard l(statsMu_);
  return stats_;
}

bool ListWatch::listRaw() {
  std::string cont;
  bool first = true;
  std::string rv;
  do {
    std::string path = opts_.path;
    char sep = '?';
    auto param = [&](const std::string& k, const std::string& v) {
      path += sep + k + "=" + urlEncode(v);
      sep = '&';
    };
    if (!opts_.fieldSelector.empty()) param("fieldSelector", opts_.fieldSelector);
    if (opts_.pageSize > 0) param("limit", std::to_string(opts_.pageSize));
    if (!cont.empty()) param("continue", cont);
    auto r = client_.request("GET", path);
    if (!r) {
      std::lock_guard l(statsMu_);
      stats_.lastError = r.error().message();
      log::get("kube")->debug("list {}: {}", opts_.path, r.error().message());
      return false;  // a continue token that expired (410) restarts the list as well
    }
    auto page = handler_.onListPage(r->body, first);
    if (!page) {
      std::lock_guard l(statsMu_);
      stats_.lastError = "list " + opts_.path + ": " + page.error().message();
      return false;
    }
    first = false;
    cont = page->continueToken;
    if (rv.empty() || cont.empty()) rv = page->resourceVersion;  // a list's version is its first page's
  } while (!cont.empty() && !stop_);
  if (stop_) return false;
  rv_ = rv;
  {
    std::lock_guard l(statsMu_);
    stats_.lists++;
    stats_.resourceVersion = rv_;
  }
  if (handler_.onListDone) handler_.onListDone(rv_);
  return true;
}

bool ListWatch::list() {
  if (handler_.onListPage) return listRaw();
  std::string path = opts_.path;
  if (!opts_.fieldSelector.empty()) path += "?fieldSelector=" + urlEncode(opts_.fieldSelector);
  auto r = client_.request("GET", path);
  if (!r) {
    std::lock_guard l(statsMu_);
    stats_.lastError = r.error().message();
    log::get("kube")->debug("list {}: {}", opts_.path, r.error().message());
    return false;
  }
  auto j = Json::parse(r->body);
  if (!j) {
    std::lock_guard l(statsMu_);
    stats_.lastError = "list " + opts_.path + ": " + j.error().message();
    return false;
  }
  rv_ = j->get("metadata").get("resourceVersion").asString();
  {
    std::lock_guard l(statsMu_);
    stats_.lists++;
    stats_.resourceVersion = rv_;
  }
  if (handler_.onList) handler_.onList(j->get("items").asArray(), rv_);
  return true;
}

ListWatch::WatchEnd ListWatch::watchOnce() {
  auto timeoutSec = std::max<int64_t>(1, std::chrono::duration_cast<std::chrono::seconds>(opts_.watchTimeout).count());
  std::string path = opts_.path + "?watch=1&allowWatchBookmarks=true&resourceVersion=" + urlEncode(rv_) +
                     "&timeoutSeconds=" + std::to_string(timeoutSec);
  if (!opts_.fieldSelector.empty()) path += "&fieldSelector=" + urlEncode(opts_.fieldSelector);
  {
    std::lock_guard l(statsMu_);
    stats_.watches++;
  }
  bool gone = false;
  // What every event shares, raw or decoded: ERROR ends the stream (410: relist), the
  // version moves on, the counters count. False when the stream should end.
  auto record = [&](const auto& ev) {
    if (ev.type == "ERROR") {
      if (ev.errorCode == 410) gone = true;
      std::lock_guard l(statsMu_);
      stats_.lastError = "watch " + opts_.path + ": " + ev.errorMessage;
      return false;
    }
    if (!ev.resourceVersion.empty()) rv_ = ev.resourceVersion;
    std::lock_guard l(statsMu_);
    stats_.resourceVersion = rv_;
    if (ev.type == "BOOKMARK") stats_.bookmarks++;
    else stats_.events++;
    return true;
  };
  auto undecodable = [&](const Error& e) {
    log::get("kube")->debug("watch {}: undecodable event: {}", opts_.path, e.message());
    return false;  // resume from the last good version
  };
  auto onRawLine = [&](std::string_view line) {
    auto ev = handler_.onRawEvent(line);
    if (!ev) return undecodable(ev.error());
    return record(*ev) && !stop_.load();
  };
  auto onLine = [&](std::string_view line) {
    auto ev = decodeWatchEvent(line);
    if (!ev) return undecodable(ev.error());
    if (!record(*ev)) return false;
    if (ev->type != "BOOKMARK" && handler_.onEvent) handler_.onEvent(ev->type, ev->object);
    return !stop_.load();
  };
  // The client gives up a little after the server should have ended the stream, so a
  // silently dead connection cannot hold the watch forever.
  auto streamTimeout = std::chrono::seconds(timeoutSec) + std::chrono::seconds(30);
  auto r = handler_.onRawEvent ? client_.stream(path, onRawLine, streamTimeout, &stop_)
                               : client_.stream(path, onLine, streamTimeout, &stop_);
  if (stop_) return WatchEnd::kStopped;
  if (gone) return WatchEnd::kRelist;
  if (!r) {
    if (httpStatus(r.error()) == 410) return WatchEnd::kRelist;
    std::lock_guard l(statsMu_);
    stats_.lastError = r.error().message();
    log::get("kube")->debug("{}", r.error().message());
    return WatchEnd::kResume;  // with backoff by the caller
  }
  return WatchEnd::kResume;
}

void ListWatch::run() {
  int failures = 0;
  bool needList = true;
  while (!stop_) {
    if (needList) {
      if (!list()) {
        if (!sleep(backoffDelay(++failures, opts_.backoffBase, opts_.backoffMax, rng_))) return;
        continue;
      }
      needList = false;
      failures = 0;
    }
    auto started = std::chrono::steady_clock::now();
    auto end = watchOnce();
    if (end == WatchEnd::kStopped) return;
    if (end == WatchEnd::kRelist) {
      log::get("kube")->info("watch {}: resource version {} expired (410 Gone), relisting", opts_.path, rv_);
      std::lock_guard l(statsMu_);
      stats_.relists++;
      needList = true;
      continue;
    }
    {
      std::lock_guard l(statsMu_);
      stats_.resumes++;
    }
    // A watch that lasted a while ended normally (server timeout or a drop after useful
    // work): resume at once. One that failed quickly backs off.
    if (std::chrono::steady_clock::now() - started > std::chrono::seconds(2)) {
      failures = 0;
    } else if (!sleep(backoffDelay(++failures, opts_.backoffBase, opts_.backoffMax, rng_))) {
      return;
    }
  }
}

}  // namespace nodeagent::kube
