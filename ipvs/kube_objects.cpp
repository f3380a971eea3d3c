#include "ipvs/kube_objects.h"

#include <sys/socket.h>

#include <charconv>
#include <ctime>

#include <simdjson.h>

namespace nodeagent::ipvs::k8s {

namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;

// Field access that tolerates absence: absent or null gives nullopt.
std::optional<element> field(element obj, std::string_view key) {
  if (!obj.is_object()) return std::nullopt;
  element v;
  if (obj.get_object().at_key(key).get(v) != simdjson::SUCCESS || v.is_null()) return std::nullopt;
  return v;
}

// Collects the first problem of an object: "spec.ports[1].port: must be 1 to 65535".
class Problems {
 public:
  void add(std::string where, std::string what) {
    if (first_.empty()) first_ = where + ": " + what;
  }
  std::string take() { return std::move(first_); }

 private:
  std::string first_;
};

std::string str(element obj, std::string_view key, Problems& p, const std::string& where) {
  auto v = field(obj, key);
  if (!v) return "";
  std::string_view s;
  if (v->get(s) != simdjson::SUCCESS) {
    p.add(where, "must be a string");
    return "";
  }
  return std::string(s);
}

std::optional<int64_t> integer(element obj, std::string_view key, Problems& p, const std::string& where) {
  auto v = field(obj, key);
  if (!v) return std::nullopt;
  int64_t i;
  if (v->get(i) != simdjson::SUCCESS) {
    p.add(where, "must be an integer");
    return std::nullopt;
  }
  return i;
}

std::optional<bool> boolean(element obj, std::string_view key, Problems& p, const std::string& where) {
  auto v = field(obj, key);
  if (!v) return std::nullopt;
  bool b;
  if (v->get(b) != simdjson::SUCCESS) {
    p.add(where, "must be true or false");
    return std::nullopt;
  }
  return b;
}

// Calls f(element, index) for every item of an array field (absent: none).
template <class F>
void each(element obj, std::string_view key, Problems& p, const std::string& where, F f) {
  auto v = field(obj, key);
  if (!v) return;
  simdjson::dom::array a;
  if (v->get(a) != simdjson::SUCCESS) {
    p.add(where, "must be a list");
    return;
  }
  size_t i = 0;
  for (element e : a) f(e, i++);
}

std::string at(const std::string& where, size_t i) { return where + "[" + std::to_string(i) + "]"; }

std::optional<Address> address(std::string_view text, Problems& p, const std::string& where) {
  auto a = Address::parse(text);
  if (!a) {
    p.add(where, "\"" + std::string(text) + "\" is not an IP address");
    return std::nullopt;
  }
  return *a;
}

std::optional<Protocol> protocol(element obj, Problems& p, const std::string& where) {
  std::string s = str(obj, "protocol", p, where + ".protocol");
  if (s.empty() || s == "TCP") return Protocol::kTcp;  // the API's default
  if (s == "UDP") return Protocol::kUdp;
  if (s == "SCTP") return Protocol::kSctp;
  p.add(where + ".protocol", "\"" + s + "\" is not TCP, UDP or SCTP");
  return std::nullopt;
}

std::optional<uint16_t> port(element obj, std::string_view key, bool required, Problems& p, const std::string& where) {
  auto v = integer(obj, key, p, where);
  if (!v) {
    if (required) p.add(where, "is required");
    return std::nullopt;
  }
  if (*v < (required ? 1 : 0) || *v > 65535) {
    p.add(where, std::to_string(*v) + " is not a port (1 to 65535)");
    return std::nullopt;
  }
  return static_cast<uint16_t>(*v);
}

struct Meta {
  std::string ns, name, uid, resourceVersion;
};

Result<Meta> metadata(element obj, Problems& p) {
  auto m = field(obj, "metadata");
  if (!m) return failInvalid("object without metadata");
  Meta out;
  out.name = str(*m, "name", p, "metadata.name");
  out.ns = str(*m, "namespace", p, "metadata.namespace");
  out.uid = str(*m, "uid", p, "metadata.uid");
  out.resourceVersion = str(*m, "resourceVersion", p, "metadata.resourceVersion");
  if (out.name.empty()) return failInvalid("object without metadata.name");
  return out;
}

std::string label(element obj, std::string_view key) {
  Problems ignored;
  auto m = field(obj, "metadata");
  if (!m) return "";
  auto l = field(*m, "labels");
  if (!l) return "";
  return str(*l, key, ignored, "");
}

std::optional<std::string> annotation(element obj, std::string_view key) {
  Problems ignored;
  auto m = field(obj, "metadata");
  if (!m) return std::nullopt;
  auto a = field(*m, "annotations");
  if (!a || !field(*a, key)) return std::nullopt;
  return str(*a, key, ignored, "");
}

Result<Service> serviceFrom(element obj) {
  Problems p;
  auto meta = metadata(obj, p);
  if (!meta) return fail(meta.error());
  Service s;
  s.ns = meta->ns;
  s.name = meta->name;
  s.uid = meta->uid;
  s.resourceVersion = meta->resourceVersion;
  s.proxyName = label(obj, "service.kubernetes.io/service-proxy-name");
  {
    Problems ignored;
    auto m = field(obj, "metadata");
    auto l = m ? field(*m, "labels") : std::nullopt;
    s.headlessLabel = l && field(*l, "service.kubernetes.io/headless").has_value();
  }
  auto mode = annotation(obj, "service.kubernetes.io/topology-mode");
  if (!mode) mode = annotation(obj, "service.kubernetes.io/topology-aware-hints");  // the older name
  if (mode && !mode->empty() && *mode != "Disabled" && *mode != "disabled") s.topologyAware = true;

  auto spec = field(obj, "spec");
  if (!spec) {
    s.error = "spec: is required";
    return s;
  }
  std::string type = str(*spec, "type", p, "spec.type");
  if (type.empty() || type == "ClusterIP") s.type = ServiceType::kClusterIP;
  else if (type == "NodePort") s.type = ServiceType::kNodePort;
  else if (type == "LoadBalancer") s.type = ServiceType::kLoadBalancer;
  else if (type == "ExternalName") s.type = ServiceType::kExternalName;
  else p.add("spec.type", "\"" + type + "\" is not ClusterIP, NodePort, LoadBalancer or ExternalName");

  std::vector<std::string> ips;
  each(*spec, "clusterIPs", p, "spec.clusterIPs", [&](element e, size_t i) {
    std::string_view v;
    if (e.get(v) != simdjson::SUCCESS) p.add(at("spec.clusterIPs", i), "must be a string");
    else ips.emplace_back(v);
  });
  if (ips.empty()) {
    std::string one = str(*spec, "clusterIP", p, "spec.clusterIP");
    if (!one.empty()) ips.push_back(one);
  }
  for (size_t i = 0; i < ips.size(); ++i) {
    if (ips[i] == "None") {
      s.headless = true;
      continue;
    }
    if (auto a = address(ips[i], p, at("spec.clusterIPs", i))) s.clusterIPs.push_back(*a);
  }
  each(*spec, "externalIPs", p, "spec.externalIPs", [&](element e, size_t i) {
    std::string_view v;
    if (e.get(v) != simdjson::SUCCESS) p.add(at("spec.externalIPs", i), "must be a string");
    else if (auto a = address(v, p, at("spec.externalIPs", i))) s.externalIPs.push_back(*a);
  });
  each(*spec, "loadBalancerSourceRanges", p, "spec.loadBalancerSourceRanges", [&](element e, size_t i) {
    std::string_view v;
    std::string where = at("spec.loadBalancerSourceRanges", i);
    if (e.get(v) != simdjson::SUCCESS) return p.add(where, "must be a string");
    // The API allows spaces around the CIDR (kube-proxy trims them).
    while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
    while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
    auto c = Cidr::parse(v);
    if (!c) p.add(where, c.error().message());
    else s.sourceRanges.push_back(*c);
  });
  each(*spec, "ports", p, "spec.ports", [&](element e, size_t i) {
    std::string where = at("spec.ports", i);
    ServicePort sp;
    sp.name = str(e, "name", p, where + ".name");
    auto proto = protocol(e, p, where);
    auto pt = port(e, "port", true, p, where + ".port");
    auto np = port(e, "nodePort", false, p, where + ".nodePort");
    if (!proto || !pt) return;
    sp.protocol = *proto;
    sp.port = *pt;
    sp.nodePort = np.value_or(0);
    s.ports.push_back(std::move(sp));
  });
  std::string affinity = str(*spec, "sessionAffinity", p, "spec.sessionAffinity");
  if (affinity == "ClientIP") {
    s.affinityClientIP = true;
    auto cfg = field(*spec, "sessionAffinityConfig");
    auto cip = cfg ? field(*cfg, "clientIP") : std::nullopt;
    if (cip) {
      auto t = integer(*cip, "timeoutSeconds", p, "spec.sessionAffinityConfig.clientIP.timeoutSeconds");
      if (t && (*t < 1 || *t > 86400))
        p.add("spec.sessionAffinityConfig.clientIP.timeoutSeconds", std::to_string(*t) + " is not 1 to 86400");
      else if (t)
        s.affinityTimeout = static_cast<uint32_t>(*t);
    }
  } else if (!affinity.empty() && affinity != "None") {
    p.add("spec.sessionAffinity", "\"" + affinity + "\" is not None or ClientIP");
  }
  s.externalLocal = str(*spec, "externalTrafficPolicy", p, "spec.externalTrafficPolicy") == "Local";
  s.internalLocal = str(*spec, "internalTrafficPolicy", p, "spec.internalTrafficPolicy") == "Local";
  if (auto h = port(*spec, "healthCheckNodePort", false, p, "spec.healthCheckNodePort")) s.healthCheckNodePort = *h;
  if (!str(*spec, "trafficDistribution", p, "spec.trafficDistribution").empty()) s.topologyAware = true;

  if (auto st = field(obj, "status")) {
    auto lb = field(*st, "loadBalancer");
    if (lb) {
      each(*lb, "ingress", p, "status.loadBalancer.ingress", [&](element e, size_t i) {
        std::string where = at("status.loadBalancer.ingress", i);
        std::string ip = str(e, "ip", p, where + ".ip");
        if (ip.empty()) return;  // hostname-only ingress: nothing to program
        // ipMode Proxy: the load balancer delivers to the node with its own address as
        // destination, so the node must not short-circuit the LB IP (KEP-1860).
        if (str(e, "ipMode", p, where + ".ipMode") == "Proxy") return;
        if (auto a = address(ip, p, where + ".ip")) s.loadBalancerIPs.push_back(*a);
      });
    }
  }
  s.error = p.take();
  return s;
}

Result<EndpointSlice> sliceFrom(element obj) {
  Problems p;
  auto meta = metadata(obj, p);
  if (!meta) return fail(meta.error());
  EndpointSlice es;
  es.ns = meta->ns;
  es.name = meta->name;
  es.serviceName = label(obj, "kubernetes.io/service-name");
  if (auto t = annotation(obj, "endpoints.kubernetes.io/last-change-trigger-time")) es.triggerTime = parseRfc3339(*t);
  std::string type = str(obj, "addressType", p, "addressType");
  if (type == "IPv4") es.family = AF_INET;
  else if (type == "IPv6") es.family = AF_INET6;
  each(obj, "ports", p, "ports", [&](element e, size_t i) {
    std::string where = at("ports", i);
    SlicePort sp;
    sp.name = str(e, "name", p, where + ".name");
    auto proto = protocol(e, p, where);
    auto pt = port(e, "port", false, p, where + ".port");
    if (!proto) return;
    sp.protocol = *proto;
    sp.port = pt.value_or(0);
    es.ports.push_back(std::move(sp));
  });
  if (es.family != 0) {
    each(obj, "endpoints", p, "endpoints", [&](element e, size_t i) {
      std::string where = at("endpoints", i);
      Endpoint ep;
      bool have = false;
      each(e, "addresses", p, where + ".addresses", [&](element a, size_t j) {
        std::string_view v;
        if (j > 0) return;  // kube-proxy uses the first address only
        if (a.get(v) != simdjson::SUCCESS) return p.add(at(where + ".addresses", j), "must be a string");
        if (auto addr = address(v, p, at(where + ".addresses", j))) {
          if (addr->family != es.family) return p.add(at(where + ".addresses", j), "is not of the slice's addressType");
          ep.address = *addr;
          have = true;
        }
      });
      if (!have) return;
      if (auto c = field(e, "conditions")) {
        // Unset conditions: ready and serving are taken as true, terminating as false
        // (the API's documented reading).
        auto ready = boolean(*c, "ready", p, where + ".conditions.ready");
        auto serving = boolean(*c, "serving", p, where + ".conditions.serving");
        auto terminating = boolean(*c, "terminating", p, where + ".conditions.terminating");
        ep.ready = ready.value_or(true);
        ep.serving = serving.value_or(ep.ready);
        ep.terminating = terminating.value_or(false);
      }
      ep.nodeName = str(e, "nodeName", p, where + ".nodeName");
      if (auto h = field(e, "hints")) {
        each(*h, "forZones", p, where + ".hints.forZones", [&](element z, size_t) {
          Problems ignored;
          ep.zoneHints.push_back(str(z, "name", ignored, ""));
        });
        each(*h, "forNodes", p, where + ".hints.forNodes", [&](element z, size_t) {
          Problems ignored;
          ep.nodeHints.push_back(str(z, "name", ignored, ""));
        });
      }
      es.endpoints.push_back(std::move(ep));
    });
  }
  es.error = p.take();
  return es;
}

Result<Node> nodeFrom(element obj) {
  Problems p;
  auto meta = metadata(obj, p);
  if (!meta) return fail(meta.error());
  Node n;
  n.name = meta->name;
  n.zone = label(obj, "topology.kubernetes.io/zone");
  if (auto st = field(obj, "status")) {
    each(*st, "addresses", p, "status.addresses", [&](element e, size_t) {
      Problems ignored;
      std::string type = str(e, "type", ignored, "");
      if (type != "InternalIP" && type != "ExternalIP") return;
      if (auto a = Address::parse(str(e, "address", ignored, ""))) n.addresses.push_back(*a);
    });
  }
  return n;
}

class Parser {
 public:
  Result<element> parse(std::string_view json) {
    padded_ = simdjson::padded_string(json);
    element doc;
    if (auto err = parser_.parse(padded_).get(doc); err)
      return failInvalid(std::string("invalid JSON: ") + simdjson::error_message(err));
    return doc;
  }

 private:
  simdjson::dom::parser parser_;
  simdjson::padded_string padded_;
};

template <class T, class F>
Result<ListMeta> listOf(std::string_view json, std::vector<T>& out, F decode) {
  Parser parser;
  auto doc = parser.parse(json);
  if (!doc) return fail(doc.error());
  Problems p;
  ListMeta meta;
  if (auto m = field(*doc, "metadata")) {
    meta.resourceVersion = str(*m, "resourceVersion", p, "metadata.resourceVersion");
    meta.continueToken = str(*m, "continue", p, "metadata.continue");
  }
  std::optional<Error> bad;
  each(*doc, "items", p, "items", [&](element e, size_t) {
    auto obj = decode(e);
    if (!obj) {
      if (!bad) bad = obj.error();
      return;
    }
    out.push_back(std::move(*obj));
  });
  if (bad) return fail(bad->wrap("list item"));
  if (auto problem = p.take(); !problem.empty()) return failInvalid("list: " + problem);
  return meta;
}

template <class T, class F>
Result<WatchEvent<T>> eventOf(std::string_view line, F decode) {
  Parser parser;
  auto doc = parser.parse(line);
  if (!doc) return fail(doc.error());
  Problems p;
  WatchEvent<T> ev;
  ev.type = str(*doc, "type", p, "type");
  auto obj = field(*doc, "object");
  if (ev.type.empty() || !obj) return failInvalid("watch event without type or object");
  if (ev.type == "ERROR") {
    ev.errorCode = static_cast<int>(integer(*obj, "code", p, "object.code").value_or(0));
    ev.errorMessage = str(*obj, "message", p, "object.message");
    return ev;
  }
  if (auto m = field(*obj, "metadata")) ev.resourceVersion = str(*m, "resourceVersion", p, "metadata.resourceVersion");
  if (ev.type == "BOOKMARK") return ev;
  auto o = decode(*obj);
  if (!o) return fail(o.error());
  ev.object = std::move(*o);
  return ev;
}

template <class F>
auto one(std::string_view json, F decode) -> decltype(decode(element{})) {
  Parser parser;
  auto doc = parser.parse(json);
  if (!doc) return fail(doc.error());
  return decode(*doc);
}

}  // namespace

Result<ListMeta> decodeList(std::string_view json, std::vector<Service>& out) { return listOf(json, out, serviceFrom); }
Result<ListMeta> decodeList(std::string_view json, std::vector<EndpointSlice>& out) {
  return listOf(json, out, sliceFrom);
}
Result<ListMeta> decodeList(std::string_view json, std::vector<Node>& out) { return listOf(json, out, nodeFrom); }

Result<WatchEvent<Service>> decodeServiceEvent(std::string_view line) { return eventOf<Service>(line, serviceFrom); }
Result<WatchEvent<EndpointSlice>> decodeSliceEvent(std::string_view line) {
  return eventOf<EndpointSlice>(line, sliceFrom);
}
Result<WatchEvent<Node>> decodeNodeEvent(std::string_view line) { return eventOf<Node>(line, nodeFrom); }

Result<Service> decodeService(std::string_view json) { return one(json, serviceFrom); }
Result<EndpointSlice> decodeEndpointSlice(std::string_view json) { return one(json, sliceFrom); }
Result<Node> decodeNode(std::string_view json) { return one(json, nodeFrom); }

std::optional<std::chrono::system_clock::time_point> parseRfc3339(std::string_view s) {
  // 2026-12-02T03:04:05Z, 2026-12-02T03:04:05.123456Z, 2026-12-02T03:04:05+01:00
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':')
    return std::nullopt;
  auto num = [&](size_t pos, size_t len, int& out) {
    auto [ptr, ec] = std::from_chars(s.data() + pos, s.data() + pos + len, out);
    return ec == std::errc() && ptr == s.data() + pos + len;
  };
  int y, mo, d, h, mi, sec;
  if (!num(0, 4, y) || !num(5, 2, mo) || !num(8, 2, d) || !num(11, 2, h) || !num(14, 2, mi) || !num(17, 2, sec))
    return std::nullopt;
  size_t i = 19;
  int64_t nanos = 0;
  if (i < s.size() && s[i] == '.') {
    int64_t scale = 100'000'000;
    for (++i; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i, scale /= 10)
      if (scale > 0) nanos += (s[i] - '0') * scale;
  }
  int offset = 0;
  if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
    ++i;
  } else if (i + 6 == s.size() && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
    int oh, om;
    if (!num(i + 1, 2, oh) || !num(i + 4, 2, om)) return std::nullopt;
    offset = (oh * 60 + om) * 60 * (s[i] == '-' ? -1 : 1);
    i += 6;
  } else {
    return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  int64_t secs = static_cast<int64_t>(::timegm(&tm)) - offset;
  // system_clock counts nanoseconds in 64 bits (years 1678 to 2261): a time outside that
  // would overflow the conversion, and is no trigger time anyway.
  constexpr int64_t kLimit =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::duration::max()).count() - 1;
  if (secs > kLimit || secs < -kLimit) return std::nullopt;
  return std::chrono::system_clock::time_point(std::chrono::seconds(secs)) + std::chrono::nanoseconds(nanos);
}

}  // namespace nodeagent::ipvs::k8s
