// ListWatch: list a collection, then watch from the list's resourceVersion with bookmarks.
// A dropped or timed-out watch resumes from the last version seen (no relist); 410 Gone
// (the version was compacted away) relists once. Reusable by every module that follows
// API objects; the first user is the reporter watching its own Node.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "kube/client.h"
#include "common/json.h"

namespace nodeagent::kube {

struct ListWatchOptions {
  std::string path;           // collection, e.g. /api/v1/nodes
  std::string fieldSelector;  // e.g. metadata.name=node-1 (URL-encoded by the caller? no: here)
  std::chrono::milliseconds watchTimeout{300'000};  // timeoutSeconds asked of the server
  std::chrono::milliseconds backoffBase{500};
  std::chrono::milliseconds backoffMax{30'000};
  int pageSize = 0;  // list in pages of this many items (limit/continue); 0: one request
};

// What a raw handler found in a list page or a watch event (it parses the text itself).
struct RawListPage {
  std::string resourceVersion;
  std::string continueToken;  // "": the last page
};
struct RawWatchEvent {
  std::string type;  // ADDED MODIFIED DELETED BOOKMARK ERROR
  std::string resourceVersion;
  int errorCode = 0;  // ERROR: the Status code
  std::string errorMessage;
};

struct ListWatchHandler {
  // The full set after a (re)list.
  std::function<void(const std::vector<Json>& items, const std::string& resourceVersion)> onList;
  // ADDED, MODIFIED or DELETED with the object.
  std::function<void(const std::string& type, const Json& object)> onEvent;
  // Raw mode, for large collections (set these instead of onList/onEvent): the handler
  // decodes the text straight into its own structs, so no JSON tree of the whole list is
  // ever built. A (re)list is onListPage for each page, then onListDone.
  std::function<Result<RawListPage>(std::string_view page, bool first)> onListPage;
  std::function<void(const std::string& resourceVersion)> onListDone;
  std::function<Result<RawWatchEvent>(std::string_view line)> onRawEvent;
};

struct ListWatchStats {
  uint64_t lists = 0;      // first list included
  uint64_t relists = 0;    // lists after 410 Gone
  uint64_t watches = 0;    // watch requests started
  uint64_t resumes = 0;    // watches restarted from a known version (drop or timeout)
  uint64_t events = 0;
  uint64_t bookmarks = 0;
  std::string resourceVersion;
  std::string lastError;
};

class ListWatch {
 public:
  ListWatch(Client& client, ListWatchOptions options, ListWatchHandler handler);
  // Runs until stop(). Errors are retried with backoff; call from its own thread.
  void run();
  void stop();
  ListWatchStats stats() const;

 private:
  enum class WatchEnd { kResume, kRelist, kStopped };
  bool list();
  bool listRaw();
  WatchEnd watchOnce();
  bool sleep(std::chrono::milliseconds d);

  Client& client_;
  ListWatchOptions opts_;
  ListWatchHandler handler_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  mutable std::mutex statsMu_;
  ListWatchStats stats_;
  std::string rv_;
  std::mt19937_64 rng_{std::random_device{}()};
};

// One line of a watch stream, decoded. ERROR events carry the API Status (code 410 means
// the version was compacted away); BOOKMARK events only move the resource version.
struct WatchEvent {
  std::string type;             // ADDED, MODIFIED, DELETED, BOOKMARK or ERROR
  Json object;                  // the object (a Status for ERROR)
  std::string resourceVersion;  // the object's metadata.resourceVersion, "" when absent
  int64_t errorCode = 0;        // ERROR: the Status code
  std::string errorMessage;     // ERROR: the Status message
};
[[nodiscard]] Result<WatchEvent> decodeWatchEvent(std::string_view line);

// Percent-encodes a query value.
std::string urlEncode(std::string_view s);

}  // namespace nodeagent::kube
