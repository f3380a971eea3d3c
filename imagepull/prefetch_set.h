// Prefetch sets: lists of images the cluster asks nodes to hold, read from one ConfigMap
// in the agent's namespace (one data key per set). Pure: parsing, validation and the
// node-selector match; the watch lives in cluster_sets.h.
//
//   data:
//     gpu-runtime: |
//       tier: environment            # base | environment | business
//       images: [registry.example.com/cuda:12.4]
//       nodeSelector: {node.kubernetes.io/instance-type: g5.xlarge}   # all must match; {} = every node
//       deadline: "2026-12-03T06:00:00Z"                              # optional, RFC 3339 UTC
//       imagePullSecrets: [regcred]   # optional: kubernetes.io/dockerconfigjson Secrets in the agent's namespace
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "imagepull/policy.h"

namespace nodeagent::imagepull {

using Labels = std::map<std::string, std::string>;

struct PrefetchSet {
  std::string name;  // the ConfigMap data key
  Tier tier = Tier::kEnvironment;
  std::vector<std::string> images;  // canonical references, no duplicates
  Labels nodeSelector;              // equality on every pair; empty selects every node
  // When the set should be present on its nodes; past it, a set still missing images is
  // reported overdue (pulls go on: the deadline is a promise to watch, not a cut-off).
  std::optional<std::chrono::system_clock::time_point> deadline;
  // Secret names (kubernetes.io/dockerconfigjson, in the agent's namespace) whose registry
  // credentials the set's pulls use; a Pod's `[{name: x}]` form is accepted too.
  std::vector<std::string> imagePullSecrets;
  bool operator==(const PrefetchSet&) const = default;
};

// A set refused whole: its name, and each problem with the field it is in
// ("configmap kube-system/nodeagent-prefetch, set gpu:3:9: tier: must be one of ...").
struct RejectedSet {
  std::string name;
  std::string problem;
  bool operator==(const RejectedSet&) const = default;
};

struct ParsedSets {
  std::vector<PrefetchSet> sets;  // by name
  std::vector<RejectedSet> rejected;
};

// Parses every data entry of the ConfigMap `where` names ("kube-system/nodeagent-prefetch").
// A bad entry is rejected with every problem it has; the others are kept.
ParsedSets parsePrefetchSets(const std::map<std::string, std::string>& data, std::string_view where);

// Whether `labels` (the Node's) satisfy the set's selector.
bool selects(const PrefetchSet& set, const Labels& labels);

// Kubernetes label syntax: a key is [prefix/]name (prefix a DNS subdomain of at most 253
// characters, name at most 63 of [A-Za-z0-9._-] beginning and ending alphanumeric); a
// value is empty or such a name.
bool validLabelKey(std::string_view key);
bool validLabelValue(std::string_view value);

// A DNS subdomain name (a Secret's): lowercase alphanumerics, '-' and '.', at most 253,
// beginning and ending alphanumeric.
bool validObjectName(std::string_view name);

// "2026-12-03T06:00:00Z" (UTC, optional fraction); other offsets are refused.
std::optional<std::chrono::system_clock::time_point> parseRfc3339Utc(std::string_view text);

}  // namespace nodeagent::imagepull
