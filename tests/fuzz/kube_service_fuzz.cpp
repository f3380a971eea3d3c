// A v1 Service as the service proxy reads it from the API server (ipvs/kube_objects.h),
// then what it becomes on this node (ipvs/kube_translate.h) with two fixed EndpointSlices.
// Properties: one object, a list page and a watch event decode the same bytes to the same
// Service; the translation keeps its promises (tests/fuzz/kube_objects_fuzz.h).
#include "tests/fuzz/kube_objects_fuzz.h"

using namespace nodeagent;
using namespace nodeagent::ipvs::k8s;

namespace {

const std::vector<EndpointSlice>& fixedSlices() {
  static const std::vector<EndpointSlice> slices = [] {
    std::vector<EndpointSlice> out;
    for (const char* json : {
             R"({"metadata":{"namespace":"default","name":"web-v4","labels":{"kubernetes.io/service-name":"web"}},
                "addressType":"IPv4","ports":[{"name":"http","port":8080},{"name":"dns","protocol":"UDP","port":5353},{"port":9090}],
                "endpoints":[{"addresses":["10.244.1.5"],"nodeName":"node-a","conditions":{"ready":true}},
                             {"addresses":["10.244.2.5"],"nodeName":"node-b","conditions":{"ready":false,"serving":true,"terminating":true},
                              "hints":{"forZones":[{"name":"zone-1"}]}}]})",
             R"({"metadata":{"namespace":"default","name":"web-v6","labels":{"kubernetes.io/service-name":"web"}},
                "addressType":"IPv6","ports":[{"name":"http","port":8080}],
                "endpoints":[{"addresses":["fd00:244::5"],"nodeName":"node-a"}]})"}) {
      auto s = decodeEndpointSlice(json);
      if (!s || !s->error.empty()) fuzz::violated("a fixed slice does not decode", __FILE__, __LINE__);
      out.push_back(*s);
    }
    return out;
  }();
  return slices;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::quietLogs();
  auto svc = fuzz::decodeThreeWays<Service>(
      fuzz::text(data, size), [](std::string_view j) { return decodeService(j); },
      [](std::string_view j, std::vector<Service>& out) { return decodeList(j, out); },
      [](std::string_view j) { return decodeServiceEvent(j); });
  if (!svc) return 0;
  for (const auto& p : svc->ports) FUZZ_CHECK(p.port != 0);
  std::vector<const EndpointSlice*> slices;
  for (const auto& s : fixedSlices()) slices.push_back(&s);
  fuzz::checkProgram(*svc, slices);
  return 0;
}
