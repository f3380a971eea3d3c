// Shared by the fuzz targets of the service proxy's Kubernetes decoders (kube_service,
// kube_endpoint_slice): the same bytes reach ipvs/kube_objects.h three ways (one object, a
// list page, a watch event), and all three must decode them to the same object.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/json.h"
#include "ipvs/kube_objects.h"
#include "ipvs/kube_translate.h"
#include "tests/fuzz/fuzz.h"

namespace nodeagent::fuzz {

// simdjson's nesting limit: the list and the event wrap the object two levels deeper, so
// an object just under the limit is valid alone and too deep inside them.
inline bool tooDeep(const Error& e) { return e.message().find("too deep") != std::string::npos; }

// Whether `json` is one well-formed JSON document, checked whole (Json::parse reads every
// byte). The decoders read On-Demand: they validate what they read, and a malformed part
// inside a field they skip may pass unseen in one object yet break the list or event
// around it.
inline bool wellFormed(std::string_view json) { return Json::parse(json).has_value(); }

// Decodes `json` as one object with `one`; when that succeeds and the bytes are well-formed
// JSON, a list page and a watch event holding the same bytes (decoded with `list` and
// `event`) must give the same object.
template <class T, class One, class List, class Event>
std::optional<T> decodeThreeWays(std::string_view json, One one, List list, Event event) {
  Result<T> obj = one(json);
  if (!obj) return std::nullopt;
  FUZZ_CHECK(!obj->name.empty());
  FUZZ_CHECK(obj->error.empty() || obj->error.find(": ") != std::string::npos);  // "field: problem"
  if (!wellFormed(json)) return std::move(*obj);

  std::string page = R"({"kind":"List","metadata":{"resourceVersion":"7"},"items":[)" + std::string(json) + "]}";
  std::vector<T> items;
  auto meta = list(page, items);
  if (meta || !tooDeep(meta.error())) {
    FUZZ_CHECK(meta.has_value());
    FUZZ_CHECK(meta->resourceVersion == "7");
    FUZZ_CHECK(items.size() == 1 && items[0] == *obj);
  }
  auto ev = event(R"({"type":"MODIFIED","object":)" + std::string(json) + "}");
  if (ev || !tooDeep(ev.error())) {
    FUZZ_CHECK(ev.has_value());
    FUZZ_CHECK(ev->type == "MODIFIED" && ev->object.has_value() && *ev->object == *obj);
  }
  return std::move(*obj);
}

// The translation's promises: virtual servers sorted by key without duplicates, the
// endpoint count their destinations' sum, and the first program's own objects when it is
// lent (nothing changed).
inline void checkProgram(const ipvs::k8s::Service& svc, std::span<const ipvs::k8s::EndpointSlice* const> slices) {
  ipvs::k8s::NodeView node{"node-a", "zone-1", {*ipvs::Address::parse("192.168.1.10"), *ipvs::Address::parse("fd00::10")}};
  ipvs::k8s::ProxyOptions options;
  options.clusterCidrs.push_back(*ipvs::Cidr::parse("10.244.0.0/16"));
  auto program = ipvs::k8s::translate(svc, slices, node, options);
  size_t dests = 0;
  for (size_t i = 0; i < program.servers.size(); ++i) {
    FUZZ_CHECK(program.servers[i].second != nullptr);
    if (i > 0) FUZZ_CHECK(program.servers[i - 1].first < program.servers[i].first);
    dests += program.servers[i].second->dests.size();
  }
  FUZZ_CHECK(dests == program.endpoints);
  if (!svc.error.empty()) FUZZ_CHECK(program.servers.empty());
  auto again = ipvs::k8s::translate(svc, slices, node, options, &program);
  FUZZ_CHECK(again.skip == program.skip && again.servers.size() == program.servers.size());
  for (size_t i = 0; i < again.servers.size(); ++i) {
    FUZZ_CHECK(again.servers[i].first == program.servers[i].first);
    FUZZ_CHECK(again.servers[i].second == program.servers[i].second);  // the same object
  }
}

}  // namespace nodeagent::fuzz
