// A discovery.k8s.io/v1 EndpointSlice as the service proxy reads it from the API server
// (ipvs/kube_objects.h), then what a fixed dual-stack NodePort Service becomes on this
// node with it (ipvs/kube_translate.h). Properties: one object, a list page and a watch
// event decode the same bytes to the same slice; endpoints are of the slice's family; the
// translation keeps its promises (tests/fuzz/kube_objects_fuzz.h).
#include "tests/fuzz/kube_objects_fuzz.h"

using namespace nodeagent;
using namespace nodeagent::ipvs::k8s;

namespace {

const Service& fixedService() {
  static const Service svc = [] {
    auto s = decodeService(R"({"metadata":{"namespace":"default","name":"web","uid":"u1"},
      "spec":{"type":"NodePort","clusterIPs":["10.96.0.10","fd00:96::a"],"externalIPs":["203.0.113.7"],
              "ports":[{"name":"http","port":80,"nodePort":30080},{"name":"dns","protocol":"UDP","port":53}],
              "sessionAffinity":"ClientIP","externalTrafficPolicy":"Local","healthCheckNodePort":32000,
              "trafficDistribution":"PreferClose"}})");
    if (!s || !s->error.empty()) fuzz::violated("the fixed service does not decode", __FILE__, __LINE__);
    return *s;
  }();
  return svc;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::quietLogs();
  auto slice = fuzz::decodeThreeWays<EndpointSlice>(
      fuzz::text(data, size), [](std::string_view j) { return decodeEndpointSlice(j); },
      [](std::string_view j, std::vector<EndpointSlice>& out) { return decodeList(j, out); },
      [](std::string_view j) { return decodeSliceEvent(j); });
  if (!slice) return 0;
  if (slice->family == 0) FUZZ_CHECK(slice->endpoints.empty());
  for (const auto& e : slice->endpoints) FUZZ_CHECK(e.address.family == slice->family);
  const EndpointSlice* one[] = {&*slice};
  fuzz::checkProgram(fixedService(), one);
  return 0;
}
