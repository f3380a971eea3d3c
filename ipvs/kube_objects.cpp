#include "ipvs/kube_objects.h"

#include <sys/socket.h>

#include <charconv>
#include <ctime>
#include <type_traits>

#include <simdjson.h>

namespace nodeagent::ipvs::k8s {

bool EndpointSlice::hinted(size_t i, EndpointHint::Kind kind, std::string_view name, bool* any) const {
  bool found = false, some = false;
  for (const auto& h : hints) {
    if (h.endpoint != i || h.kind != kind) continue;
    some = true;
    if (h.name == name) found = true;
  }
  if (any) *any = some;
  return found;
}

namespace {

namespace od = simdjson::ondemand;
using simdjson::error_code;
constexpr error_code kOk = simdjson::SUCCESS;

// A JSON error ends the whole document; it goes up unchanged.
#define NA_TRY(expr)                                 \
  do {                                               \
    if (error_code e_ = (expr); e_ != kOk) return e_; \
  } while (0)

// Where a field is ("spec.ports[1].port"), spelled out only when a problem is reported:
// the decoders pass these small stack objects down instead of building strings.
class Path {
 public:
  explicit Path(std::string_view member) : member_(member) {}
  Path(const Path& parent, std::string_view member) : parent_(&parent), member_(member) {}
  Path(const Path& parent, size_t index) : parent_(&parent), index_(index), isIndex_(true) {}
  std::string str() const {
    std::string out = parent_ ? parent_->str() : "";
    if (isIndex_) return out + "[" + std::to_string(index_) + "]";
    if (!out.empty()) out += ".";
    return out.append(member_);
  }

 private:
  const Path* parent_ = nullptr;
  std::string_view member_;
  size_t index_ = 0;
  bool isIndex_ = false;
};

// Collects the first problem of an object: "spec.ports[1].port: must be 1 to 65535".
class Problems {
 public:
  void add(const Path& where, std::string_view what) {
    if (first_.empty()) first_ = where.str() + ": " + std::string(what);
  }
  void merge(Problems& other) {
    if (first_.empty()) first_ = std::move(other.first_);
  }
  std::string take() { return std::move(first_); }

 private:
  std::string first_;
};

bool isType(od::value& v, od::json_type want, error_code& err) {
  od::json_type t;
  err = v.type().get(t);
  return err == kOk && t == want;
}

// Calls f(key, value) for every member of `v`, front to back. Anything but an object has
// no members (as the API reads an absent or null field); f returns a JSON error to stop.
template <class F>
error_code members(od::value& v, F&& f) {
  error_code err;
  if (!isType(v, od::json_type::object, err)) return err;
  od::object obj;
  NA_TRY(v.get_object().get(obj));
  for (auto m : obj) {
    od::field field;
    NA_TRY(std::move(m).get(field));
    std::string_view key;
    NA_TRY(field.unescaped_key().get(key));
    NA_TRY(f(key, field.value()));
  }
  return kOk;
}

// Calls f(value) for the member at position `n` (0-based) of `obj`, from the start again:
// for a member that needs one read after it (an EndpointSlice's endpoints before its
// addressType). Keys are not unescaped a second time.
template <class F>
error_code memberAt(od::object& obj, size_t n, F&& f) {
  bool ignored;
  NA_TRY(obj.reset().get(ignored));
  size_t i = 0;
  for (auto m : obj) {
    od::field field;
    NA_TRY(std::move(m).get(field));
    if (i++ == n) return f(field.value());
  }
  return kOk;
}

// Whether `v` is of type `want` (`ok`). Null is an absent field, no problem, unless
// `nullIsWrong`; any other type is the problem `what`.
error_code expect(od::value& v, od::json_type want, const char* what, Problems& p, const Path& where, bool& ok,
                  bool nullIsWrong = false) {
  od::json_type t;
  NA_TRY(v.type().get(t));
  ok = t == want;
  if (!ok && (nullIsWrong || t != od::json_type::null)) p.add(where, what);
  return kOk;
}

// Calls f(item, index) for every item of an array field; null has none, another type is
// a problem.
template <class F>
error_code elements(od::value& v, Problems& p, const Path& where, F&& f) {
  bool ok;
  NA_TRY(expect(v, od::json_type::array, "must be a list", p, where, ok));
  if (!ok) return kOk;
  od::array a;
  NA_TRY(v.get_array().get(a));
  size_t i = 0;
  for (auto item : a) {
    od::value value;
    NA_TRY(std::move(item).get(value));
    NA_TRY(f(value, i++));
  }
  return kOk;
}

// A string field: null is "", another type a problem. The view lives as long as the
// document.
error_code string(od::value& v, std::string_view& out, Problems& p, const Path& where) {
  out = {};
  bool ok;
  NA_TRY(expect(v, od::json_type::string, "must be a string", p, where, ok));
  return ok ? v.get_string().get(out) : kOk;
}

// A list item that must be a string (null too is a problem); `ok` tells whether it was one.
error_code stringItem(od::value& v, std::string_view& out, bool& ok, Problems& p, const Path& where) {
  NA_TRY(expect(v, od::json_type::string, "must be a string", p, where, ok, true));
  return ok ? v.get_string().get(out) : kOk;
}

// Calls f(text, where) for every item of a list of strings; an item of another type is
// a problem.
template <class F>
error_code strings(od::value& v, Problems& p, const Path& where, F&& f) {
  return elements(v, p, where, [&](od::value& item, size_t i) -> error_code {
    std::string_view text;
    bool ok;
    Path at(where, i);
    NA_TRY(stringItem(item, text, ok, p, at));
    if (ok) f(text, at);
    return kOk;
  });
}

// A number or boolean field: null is absent; another type, a fraction, an exponent or a
// value beyond int64 is a problem (and the value stays unread).
template <class T>
error_code scalar(od::value& v, std::optional<T>& out, Problems& p, const Path& where) {
  constexpr bool isBool = std::is_same_v<T, bool>;
  const char* what = isBool ? "must be true or false" : "must be an integer";
  out.reset();
  bool ok;
  NA_TRY(expect(v, isBool ? od::json_type::boolean : od::json_type::number, what, p, where, ok));
  if (!ok) return kOk;
  T value{};
  if constexpr (isBool) ok = v.get_bool().get(value) == kOk;
  else ok = v.get_int64().get(value) == kOk;
  if (ok) out = value;
  else p.add(where, what);
  return kOk;
}
error_code integer(od::value& v, std::optional<int64_t>& out, Problems& p, const Path& where) {
  return scalar(v, out, p, where);
}
error_code boolean(od::value& v, std::optional<bool>& out, Problems& p, const Path& where) {
  return scalar(v, out, p, where);
}

std::optional<Address> address(std::string_view text, Problems& p, const Path& where) {
  auto a = Address::parse(text);
  if (!a) {
    p.add(where, "\"" + std::string(text) + "\" is not an IP address");
    return std::nullopt;
  }
  return *a;
}

std::optional<Protocol> protocol(std::string_view s, Problems& p, const Path& where) {
  if (s.empty() || s == "TCP") return Protocol::kTcp;  // the API's default
  if (s == "UDP") return Protocol::kUdp;
  if (s == "SCTP") return Protocol::kSctp;
  p.add(where, "\"" + std::string(s) + "\" is not TCP, UDP or SCTP");
  return std::nullopt;
}

std::optional<uint16_t> port(std::optional<int64_t> v, bool required, Problems& p, const Path& where) {
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

// A list of ports (a Service's, with nodePort, or an EndpointSlice's): f(name, protocol,
// port, nodePort) for each one with a valid protocol; port is required of a Service's.
template <class F>
error_code ports(od::value& v, Problems& p, const Path& where, bool service, F&& f) {
  return elements(v, p, where, [&](od::value& item, size_t i) -> error_code {
    Path at(where, i), wName(at, "name"), wProtocol(at, "protocol"), wPort(at, "port"), wNodePort(at, "nodePort");
    std::string_view name, proto;
    std::optional<int64_t> number, nodePort;
    NA_TRY(members(item, [&](std::string_view k, od::value& m) -> error_code {
      if (k == "name") return string(m, name, p, wName);
      if (k == "protocol") return string(m, proto, p, wProtocol);
      if (k == "port") return integer(m, number, p, wPort);
      if (k == "nodePort" && service) return integer(m, nodePort, p, wNodePort);
      return kOk;
    }));
    auto pr = protocol(proto, p, wProtocol);
    auto pt = port(number, service, p, wPort);
    auto np = port(nodePort, false, p, wNodePort);
    if (pr) f(Symbol(name), *pr, pt, np.value_or(0));
    return kOk;
  });
}

// metadata: the names, and each label and annotation handed to `label` / `annotation`
// (key, value; a non-string value is ""). `present`: the member was there and not null.
struct Meta {
  bool present = false;
  std::string_view name, ns, uid, resourceVersion;
};

error_code ignoreEntry(std::string_view, od::value&) { return kOk; }

template <class Label, class Annotation>
error_code metadata(od::value& v, Meta& m, Problems& p, Label&& label, Annotation&& annotation) {
  od::json_type t;
  NA_TRY(v.type().get(t));
  m.present = t != od::json_type::null;
  static const Path kName("metadata.name"), kNamespace("metadata.namespace"), kUid("metadata.uid"),
      kVersion("metadata.resourceVersion");
  return members(v, [&](std::string_view key, od::value& val) -> error_code {
    if (key == "name") return string(val, m.name, p, kName);
    if (key == "namespace") return string(val, m.ns, p, kNamespace);
    if (key == "uid") return string(val, m.uid, p, kUid);
    if (key == "resourceVersion") return string(val, m.resourceVersion, p, kVersion);
    if (key == "labels") return members(val, label);
    if (key == "annotations") return members(val, annotation);
    return kOk;
  });
}

// A label or annotation value: a string, else "" (they are strings by the API's schema).
error_code entryValue(od::value& v, std::string_view& out) {
  Problems ignored;
  return string(v, out, ignored, Path(""));
}

Result<void> named(const Meta& m) {
  if (!m.present) return failInvalid("object without metadata");
  if (m.name.empty()) return failInvalid("object without metadata.name");
  return {};
}

Error jsonError(error_code e) { return Error::invalid(std::string("invalid JSON: ") + simdjson::error_message(e)); }

// --- Service ---------------------------------------------------------------------------

error_code serviceFrom(od::value& obj, Service& s, Meta& m, Problems& p) {
  static const Path kSpec("spec"), kType(kSpec, "type"), kClusterIPs(kSpec, "clusterIPs"),
      kClusterIP(kSpec, "clusterIP"), kExternalIPs(kSpec, "externalIPs"),
      kSourceRanges(kSpec, "loadBalancerSourceRanges"), kPorts(kSpec, "ports"), kAffinity(kSpec, "sessionAffinity"),
      kTimeout("spec.sessionAffinityConfig.clientIP.timeoutSeconds"), kEtp(kSpec, "externalTrafficPolicy"),
      kItp(kSpec, "internalTrafficPolicy"), kHealth(kSpec, "healthCheckNodePort"),
      kDistribution(kSpec, "trafficDistribution"), kIngress("status.loadBalancer.ingress");
  bool spec = false;
  std::string_view type, clusterIP, affinity, proxyName;
  std::vector<std::string_view> clusterIPs;
  std::optional<std::string_view> topologyMode, topologyHints;
  std::optional<int64_t> timeout;
  Problems affinityProblems;  // only count when sessionAffinity is ClientIP
  auto label = [&](std::string_view key, od::value& v) -> error_code {
    if (key == "service.kubernetes.io/service-proxy-name") return entryValue(v, proxyName);
    if (key == "service.kubernetes.io/headless") {
      error_code err;
      s.headlessLabel = !isType(v, od::json_type::null, err);
      return err;
    }
    return kOk;
  };
  auto annotation = [&](std::string_view key, od::value& v) -> error_code {
    if (key == "service.kubernetes.io/topology-mode") return entryValue(v, topologyMode.emplace());
    if (key == "service.kubernetes.io/topology-aware-hints") return entryValue(v, topologyHints.emplace());  // older name
    return kOk;
  };
  auto specMember = [&](std::string_view key, od::value& v) -> error_code {
    if (key == "type") return string(v, type, p, kType);
    if (key == "clusterIP") return string(v, clusterIP, p, kClusterIP);
    if (key == "clusterIPs")
      return strings(v, p, kClusterIPs, [&](std::string_view ip, const Path&) { clusterIPs.push_back(ip); });
    if (key == "externalIPs")
      return strings(v, p, kExternalIPs, [&](std::string_view ip, const Path& where) {
        if (auto a = address(ip, p, where)) s.externalIPs.push_back(*a);
      });
    if (key == "loadBalancerSourceRanges")
      return strings(v, p, kSourceRanges, [&](std::string_view text, const Path& where) {
        // The API allows spaces around the CIDR (kube-proxy trims them).
        while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
        while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
        auto c = Cidr::parse(text);
        if (!c) p.add(where, c.error().message());
        else s.sourceRanges.push_back(*c);
      });
    if (key == "ports")
      return ports(v, p, kPorts, true, [&](Symbol name, Protocol proto, std::optional<uint16_t> number, uint16_t node) {
        if (number) s.ports.push_back(ServicePort{name, proto, *number, node});
      });
    if (key == "sessionAffinity") return string(v, affinity, p, kAffinity);
    if (key == "sessionAffinityConfig")
      return members(v, [&](std::string_view k, od::value& cfg) -> error_code {
        if (k != "clientIP") return kOk;
        return members(cfg, [&](std::string_view k2, od::value& t) -> error_code {
          return k2 == "timeoutSeconds" ? integer(t, timeout, affinityProblems, kTimeout) : kOk;
        });
      });
    if (key == "externalTrafficPolicy" || key == "internalTrafficPolicy") {
      std::string_view policy;
      bool external = key == "externalTrafficPolicy";
      NA_TRY(string(v, policy, p, external ? kEtp : kItp));
      (external ? s.externalLocal : s.internalLocal) = policy == "Local";
      return kOk;
    }
    if (key == "healthCheckNodePort") {
      std::optional<int64_t> h;
      NA_TRY(integer(v, h, p, kHealth));
      if (auto pt = port(h, false, p, kHealth)) s.healthCheckNodePort = *pt;
      return kOk;
    }
    if (key == "trafficDistribution") {
      std::string_view d;
      NA_TRY(string(v, d, p, kDistribution));
      if (!d.empty()) s.topologyAware = true;
      return kOk;
    }
    return kOk;
  };
  auto ingress = [&](od::value& item, size_t i) -> error_code {
    Path where(kIngress, i), wIp(where, "ip"), wMode(where, "ipMode");
    std::string_view ip, mode;
    NA_TRY(members(item, [&](std::string_view k, od::value& f) -> error_code {
      if (k == "ip") return string(f, ip, p, wIp);
      if (k == "ipMode") return string(f, mode, p, wMode);
      return kOk;
    }));
    if (ip.empty()) return kOk;  // hostname-only ingress: nothing to program
    // ipMode Proxy: the load balancer delivers to the node with its own address as
    // destination, so the node must not short-circuit the LB IP (KEP-1860).
    if (mode == "Proxy") return kOk;
    if (auto a = address(ip, p, wIp)) s.loadBalancerIPs.push_back(*a);
    return kOk;
  };
  NA_TRY(members(obj, [&](std::string_view key, od::value& v) -> error_code {
    if (key == "metadata") return metadata(v, m, p, label, annotation);
    if (key == "spec") {
      error_code err;
      spec = !isType(v, od::json_type::null, err);
      NA_TRY(err);
      return members(v, specMember);
    }
    if (key == "status")
      return members(v, [&](std::string_view k, od::value& st) -> error_code {
        if (k != "loadBalancer") return kOk;
        return members(st, [&](std::string_view k2, od::value& lb) -> error_code {
          return k2 == "ingress" ? elements(lb, p, kIngress, ingress) : kOk;
        });
      });
    return kOk;
  }));

  s.proxyName = Symbol(proxyName);
  auto mode = topologyMode ? topologyMode : topologyHints;
  if (mode && !mode->empty() && *mode != "Disabled" && *mode != "disabled") s.topologyAware = true;
  if (type.empty() || type == "ClusterIP") s.type = ServiceType::kClusterIP;
  else if (type == "NodePort") s.type = ServiceType::kNodePort;
  else if (type == "LoadBalancer") s.type = ServiceType::kLoadBalancer;
  else if (type == "ExternalName") s.type = ServiceType::kExternalName;
  else p.add(kType, "\"" + std::string(type) + "\" is not ClusterIP, NodePort, LoadBalancer or ExternalName");
  if (clusterIPs.empty() && !clusterIP.empty()) clusterIPs.push_back(clusterIP);
  for (size_t i = 0; i < clusterIPs.size(); ++i) {
    if (clusterIPs[i] == "None") {
      s.headless = true;
      continue;
    }
    if (auto a = address(clusterIPs[i], p, Path(kClusterIPs, i))) s.clusterIPs.push_back(*a);
  }
  if (affinity == "ClientIP") {
    s.affinityClientIP = true;
    p.merge(affinityProblems);
    if (timeout && (*timeout < 1 || *timeout > 86400)) p.add(kTimeout, std::to_string(*timeout) + " is not 1 to 86400");
    else if (timeout) s.affinityTimeout = static_cast<uint32_t>(*timeout);
  } else if (!affinity.empty() && affinity != "None") {
    p.add(kAffinity, "\"" + std::string(affinity) + "\" is not None or ClientIP");
  }
  if (!spec) p = Problems(), p.add(kSpec, "is required");  // nothing else counts then
  return kOk;
}

// --- EndpointSlice ---------------------------------------------------------------------

error_code sliceFrom(od::value& v, EndpointSlice& es, Meta& m, Problems& p) {
  static const Path kAddressType("addressType"), kPorts("ports"), kEndpoints("endpoints");
  error_code err;
  if (!isType(v, od::json_type::object, err)) return err;  // no metadata: the caller says so
  od::object obj;
  NA_TRY(v.get_object().get(obj));
  std::string_view serviceName, trigger;
  bool haveTrigger = false, typeSeen = false;
  std::optional<size_t> endpointsAt;  // endpoints came before addressType: read them after
  auto label = [&](std::string_view key, od::value& val) -> error_code {
    return key == "kubernetes.io/service-name" ? entryValue(val, serviceName) : kOk;
  };
  auto annotation = [&](std::string_view key, od::value& val) -> error_code {
    if (key != "endpoints.kubernetes.io/last-change-trigger-time") return kOk;
    haveTrigger = true;
    return entryValue(val, trigger);
  };
  auto endpoint = [&](od::value& item, size_t i) -> error_code {
    Path where(kEndpoints, i), wAddresses(where, "addresses"), wConditions(where, "conditions"),
        wReady(wConditions, "ready"), wServing(wConditions, "serving"), wTerminating(wConditions, "terminating"),
        wNode(where, "nodeName"), wHints(where, "hints"), wZones(wHints, "forZones"), wNodes(wHints, "forNodes");
    Endpoint ep;
    bool have = false;
    std::optional<bool> ready, serving, terminating;
    std::string_view node;
    size_t firstHint = es.hints.size();
    Problems mine;  // the endpoint's own fields: they count only when it has an address
    auto hint = [&](EndpointHint::Kind kind) {
      return [&, kind](od::value& h, size_t) -> error_code {
        std::string_view name;
        NA_TRY(members(h, [&](std::string_view k, od::value& f) -> error_code {
          return k == "name" ? entryValue(f, name) : kOk;
        }));
        es.hints.push_back(EndpointHint{static_cast<uint16_t>(es.endpoints.size()), kind, Symbol(name)});
        return kOk;
      };
    };
    NA_TRY(members(item, [&](std::string_view k, od::value& f) -> error_code {
      if (k == "addresses")
        return elements(f, p, wAddresses, [&](od::value& a, size_t j) -> error_code {
          if (j > 0) return kOk;  // kube-proxy uses the first address only
          std::string_view text;
          bool ok;
          Path wa(wAddresses, j);
          NA_TRY(stringItem(a, text, ok, p, wa));
          if (!ok) return kOk;
          if (auto addr = address(text, p, wa)) {
            if (addr->family != es.family) {
              p.add(wa, "is not of the slice's addressType");
              return kOk;
            }
            ep.address = *addr;
            have = true;
          }
          return kOk;
        });
      if (k == "conditions")
        return members(f, [&](std::string_view c, od::value& b) -> error_code {
          if (c == "ready") return boolean(b, ready, mine, wReady);
          if (c == "serving") return boolean(b, serving, mine, wServing);
          if (c == "terminating") return boolean(b, terminating, mine, wTerminating);
          return kOk;
        });
      if (k == "nodeName") return string(f, node, mine, wNode);
      if (k == "hints")
        return members(f, [&](std::string_view h, od::value& list) -> error_code {
          if (h == "forZones") return elements(list, mine, wZones, hint(EndpointHint::kZone));
          if (h == "forNodes") return elements(list, mine, wNodes, hint(EndpointHint::kNode));
          return kOk;
        });
      return kOk;
    }));
    if (!have) {
      es.hints.resize(firstHint);
      return kOk;
    }
    p.merge(mine);
    // Unset conditions: ready and serving are taken as true, terminating as false (the
    // API's documented reading).
    ep.ready = ready.value_or(true);
    ep.serving = serving.value_or(ep.ready);
    ep.terminating = terminating.value_or(false);
    ep.nodeName = Symbol(node);
    es.endpoints.push_back(ep);
    return kOk;
  };
  auto endpoints = [&](od::value& val) -> error_code {
    if (es.family == 0) return kOk;  // FQDN or unknown: kube-proxy ignores the slice
    return elements(val, p, kEndpoints, endpoint);
  };
  size_t n = 0;
  for (auto member : obj) {
    od::field field;
    NA_TRY(std::move(member).get(field));
    std::string_view key;
    NA_TRY(field.unescaped_key().get(key));
    od::value& val = field.value();
    size_t at = n++;
    if (key == "metadata") {
      NA_TRY(metadata(val, m, p, label, annotation));
    } else if (key == "addressType") {
      std::string_view type;
      NA_TRY(string(val, type, p, kAddressType));
      typeSeen = true;
      es.family = type == "IPv4" ? AF_INET : type == "IPv6" ? AF_INET6 : 0;
    } else if (key == "ports") {
      NA_TRY(ports(val, p, kPorts, false, [&](Symbol name, Protocol proto, std::optional<uint16_t> number, uint16_t) {
        es.ports.push_back(SlicePort{name, proto, number.value_or(0)});
      }));
    } else if (key == "endpoints") {
      if (typeSeen) NA_TRY(endpoints(val));
      else endpointsAt = at;
    }
  }
  if (endpointsAt) NA_TRY(memberAt(obj, *endpointsAt, endpoints));
  es.serviceName = serviceName;
  if (haveTrigger) es.triggerTime = parseRfc3339(trigger);
  es.endpoints.shrink_to_fit();
  es.hints.shrink_to_fit();
  return kOk;
}

// --- Node ------------------------------------------------------------------------------

error_code nodeFrom(od::value& obj, Node& n, Meta& m, Problems& p) {
  std::string_view zone;
  auto label = [&](std::string_view key, od::value& v) -> error_code {
    return key == "topology.kubernetes.io/zone" ? entryValue(v, zone) : kOk;
  };
  NA_TRY(members(obj, [&](std::string_view key, od::value& v) -> error_code {
    if (key == "metadata") return metadata(v, m, p, label, ignoreEntry);
    if (key != "status") return kOk;
    return members(v, [&](std::string_view k, od::value& st) -> error_code {
      if (k != "addresses") return kOk;
      Problems ignored;
      return elements(st, ignored, Path(""), [&](od::value& item, size_t) -> error_code {
        std::string_view type, text;
        NA_TRY(members(item, [&](std::string_view f, od::value& fv) -> error_code {
          if (f == "type") return entryValue(fv, type);
          if (f == "address") return entryValue(fv, text);
          return kOk;
        }));
        if (type != "InternalIP" && type != "ExternalIP") return kOk;
        if (auto a = Address::parse(text)) n.addresses.push_back(*a);
        return kOk;
      });
    });
  }));
  n.zone = zone;
  return kOk;
}

// One object of type T from `v`: the object, or why it cannot even be named.
template <class T, class F>
Result<T> decodeObject(od::value& v, F from, std::string* resourceVersion = nullptr) {
  T obj;
  Meta m;
  Problems p;
  if (error_code e = from(v, obj, m, p); e != kOk) return fail(jsonError(e));
  if (auto ok = named(m); !ok) return fail(ok.error());
  obj.name = m.name;
  if constexpr (requires { obj.ns; }) obj.ns = Symbol(m.ns);
  if constexpr (requires { obj.uid; }) obj.uid = m.uid;
  if constexpr (requires { obj.error; }) obj.error = p.take();
  if (resourceVersion) *resourceVersion = m.resourceVersion;
  return obj;
}

Result<Service> decodeOne(od::value& v, Service*, std::string* rv = nullptr) {
  return decodeObject<Service>(v, serviceFrom, rv);
}
Result<EndpointSlice> decodeOne(od::value& v, EndpointSlice*, std::string* rv = nullptr) {
  return decodeObject<EndpointSlice>(v, sliceFrom, rv);
}
Result<Node> decodeOne(od::value& v, Node*, std::string* rv = nullptr) { return decodeObject<Node>(v, nodeFrom, rv); }

// One JSON text, read front to back. The text is copied once with the padding simdjson
// reads past the end; the copy and the parser's index go when this goes.
class Document {
 public:
  // Opens `json` and gives its root, which must be an object (else `notObject`).
  Result<void> open(std::string_view json, od::value& root, const char* notObject) {
    padded_ = simdjson::padded_string(json);
    od::json_type t;
    error_code e = parser_.iterate(padded_).get(doc_);
    if (e == kOk) e = doc_.type().get(t);
    if (e != kOk) return fail(jsonError(e));
    if (t != od::json_type::object) return failInvalid(notObject);
    if (e = doc_.get_value().get(root); e != kOk) return fail(jsonError(e));
    return {};
  }

 private:
  od::parser parser_;
  simdjson::padded_string padded_;
  od::document doc_;
};

template <class T>
Result<ListMeta> listOf(std::string_view json, std::vector<T>& out) {
  static const Path kVersion("metadata.resourceVersion"), kContinue("metadata.continue"), kItems("items");
  Document d;
  od::value root;
  if (auto opened = d.open(json, root, "list: not a JSON object"); !opened) return fail(opened.error());
  Problems p;
  ListMeta meta;
  std::optional<Error> bad;
  std::string_view rv, cont;
  error_code e = members(root, [&](std::string_view key, od::value& v) -> error_code {
    if (key == "metadata")
      return members(v, [&](std::string_view k, od::value& f) -> error_code {
        if (k == "resourceVersion") return string(f, rv, p, kVersion);
        if (k == "continue") return string(f, cont, p, kContinue);
        return kOk;
      });
    if (key != "items") return kOk;
    return elements(v, p, kItems, [&](od::value& item, size_t) -> error_code {
      if (bad) return kOk;
      auto obj = decodeOne(item, static_cast<T*>(nullptr));
      if (!obj) bad = obj.error();
      else out.push_back(std::move(*obj));
      return kOk;
    });
  });
  if (e != kOk) return fail(jsonError(e));
  if (bad) return fail(bad->wrap("list item"));
  if (auto problem = p.take(); !problem.empty()) return failInvalid("list: " + problem);
  meta.resourceVersion = rv;
  meta.continueToken = cont;
  return meta;
}

template <class T>
Result<WatchEvent<T>> eventOf(std::string_view line) {
  static const Path kCode("object.code"), kMessage("object.message"), kType("type"),
      kVersion("metadata.resourceVersion");
  Document d;
  od::value root;
  if (auto opened = d.open(line, root, "watch event without type or object"); !opened) return fail(opened.error());
  Problems p;
  WatchEvent<T> ev;
  std::string_view type;
  bool haveObject = false;
  std::optional<Error> bad;
  // What the object is depends on the type: read it once the type is known.
  auto object = [&](od::value& v) -> error_code {
    error_code err;
    haveObject = !isType(v, od::json_type::null, err);
    NA_TRY(err);
    if (!haveObject || type.empty()) return kOk;
    if (type == "ERROR") {
      std::optional<int64_t> code;
      std::string_view message;
      NA_TRY(members(v, [&](std::string_view k, od::value& f) -> error_code {
        if (k == "code") return integer(f, code, p, kCode);
        if (k == "message") return string(f, message, p, kMessage);
        return kOk;
      }));
      ev.errorCode = static_cast<int>(code.value_or(0));
      ev.errorMessage = message;
      return kOk;
    }
    if (type == "BOOKMARK") {
      Meta m;
      NA_TRY(members(v, [&](std::string_view k, od::value& f) -> error_code {
        return k == "metadata" ? metadata(f, m, p, ignoreEntry, ignoreEntry) : kOk;
      }));
      ev.resourceVersion = m.resourceVersion;
      return kOk;
    }
    auto obj = decodeOne(v, static_cast<T*>(nullptr), &ev.resourceVersion);
    if (!obj) bad = obj.error();
    else ev.object = std::move(*obj);
    return kOk;
  };
  od::object top;
  if (error_code e = root.get_object().get(top); e != kOk) return fail(jsonError(e));
  std::optional<size_t> objectAt;
  size_t n = 0;
  for (auto member : top) {
    od::field field;
    if (error_code e = std::move(member).get(field); e != kOk) return fail(jsonError(e));
    std::string_view key;
    if (error_code e = field.unescaped_key().get(key); e != kOk) return fail(jsonError(e));
    size_t at = n++;
    error_code e = kOk;
    if (key == "type") e = string(field.value(), type, p, kType);
    else if (key == "object" && !type.empty()) e = object(field.value());
    else if (key == "object") objectAt = at;
    if (e != kOk) return fail(jsonError(e));
  }
  if (objectAt && !type.empty())
    if (error_code e = memberAt(top, *objectAt, object); e != kOk) return fail(jsonError(e));
  if (type.empty() || !haveObject) return failInvalid("watch event without type or object");
  if (bad) return fail(*bad);
  ev.type = type;
  return ev;
}

template <class T>
Result<T> one(std::string_view json) {
  Document d;
  od::value root;
  if (auto opened = d.open(json, root, "object without metadata"); !opened) return fail(opened.error());
  return decodeOne(root, static_cast<T*>(nullptr));
}

#undef NA_TRY

}  // namespace

Result<ListMeta> decodeList(std::string_view json, std::vector<Service>& out) { return listOf(json, out); }
Result<ListMeta> decodeList(std::string_view json, std::vector<EndpointSlice>& out) { return listOf(json, out); }
Result<ListMeta> decodeList(std::string_view json, std::vector<Node>& out) { return listOf(json, out); }

Result<WatchEvent<Service>> decodeServiceEvent(std::string_view line) { return eventOf<Service>(line); }
Result<WatchEvent<EndpointSlice>> decodeSliceEvent(std::string_view line) { return eventOf<EndpointSlice>(line); }
Result<WatchEvent<Node>> decodeNodeEvent(std::string_view line) { return eventOf<Node>(line); }

Result<Service> decodeService(std::string_view json) { return one<Service>(json); }
Result<EndpointSlice> decodeEndpointSlice(std::string_view json) { return one<EndpointSlice>(json); }
Result<Node> decodeNode(std::string_view json) { return one<Node>(json); }

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
