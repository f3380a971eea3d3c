#include "imagepull/image_ref.h"

#include <algorithm>
#include <cctype>

namespace nodeagent::imagepull {

namespace {

// The grammar of github.com/distribution/reference (the one containerd and kubelet apply),
// written out as small matchers:
//   reference      := name [ ":" tag ] [ "@" digest ]
//   name           := [domain '/'] path-component ['/' path-component]*
//   domain         := host [':' port]      host := domain-component ['.' domain-component]*
//                                                | '[' IPv6 ']'
//   domain-component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
//   path-component := [a-z0-9]+ (separator [a-z0-9]+)*
//   separator      := [_.] | "__" | "-"+
//   tag            := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
//   digest         := algorithm ":" hex, of a registered algorithm and its exact length
// and the name is at most 255 characters once normalised ("docker.io/library/" added), as
// ParseNormalizedNamed checks it: a short name can be too long for containerd.

bool lowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool alnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

bool validPathComponent(std::string_view c) {
  if (c.empty() || !lowerAlnum(c.front()) || !lowerAlnum(c.back())) return false;
  size_t i = 0;
  while (i < c.size()) {
    if (lowerAlnum(c[i])) {
      ++i;
      continue;
    }
    // A separator: one '.', one '_', "__", or a run of '-'; then an alphanumeric.
    size_t start = i;
    if (c[i] == '-') {
      while (i < c.size() && c[i] == '-') ++i;
    } else if (c[i] == '_') {
      ++i;
      if (i < c.size() && c[i] == '_') ++i;
    } else if (c[i] == '.') {
      ++i;
    } else {
      return false;
    }
    if (i == start || i >= c.size() || !lowerAlnum(c[i])) return false;
  }
  return true;
}

bool validDomainComponent(std::string_view c) {
  if (c.empty() || !alnum(c.front()) || !alnum(c.back())) return false;
  return std::all_of(c.begin(), c.end(), [](char ch) { return alnum(ch) || ch == '-'; });
}

bool validDomain(std::string_view d) {
  std::string_view host = d;
  if (!d.empty() && d.front() == '[') {
    auto close = d.find(']');
    if (close == std::string_view::npos || close < 3) return false;
    auto v6 = d.substr(1, close - 1);
    if (!std::all_of(v6.begin(), v6.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) || c == ':'; }))
      return false;
    auto rest = d.substr(close + 1);
    if (rest.empty()) return true;
    if (rest.front() != ':') return false;
    auto port = rest.substr(1);
    return !port.empty() && std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
  }
  if (auto colon = d.find(':'); colon != std::string_view::npos) {
    auto port = d.substr(colon + 1);
    if (port.empty() || !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return false;
    host = d.substr(0, colon);
  }
  size_t start = 0;
  for (;;) {
    auto dot = host.find('.', start);
    if (!validDomainComponent(host.substr(start, dot == std::string_view::npos ? dot : dot - start))) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

bool validTag(std::string_view t) {
  if (t.empty() || t.size() > 128) return false;
  if (!(alnum(t[0]) || t[0] == '_')) return false;
  return std::all_of(t.begin(), t.end(), [](char c) { return alnum(c) || c == '_' || c == '.' || c == '-'; });
}

// The algorithms the runtime can verify (go-digest's registered ones), lower-case hex of
// exactly their length: anything else is refused by containerd anyway.
std::string digestProblem(std::string_view d) {
  auto colon = d.find(':');
  if (colon == std::string_view::npos) return "must be ALGORITHM:HEX";
  auto algo = d.substr(0, colon);
  auto hex = d.substr(colon + 1);
  size_t want = algo == "sha256" ? 64 : algo == "sha384" ? 96 : algo == "sha512" ? 128 : 0;
  if (want == 0) return "unsupported algorithm \"" + std::string(algo) + "\" (sha256, sha384, sha512)";
  if (hex.size() != want ||
      !std::all_of(hex.begin(), hex.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }))
    return std::string(algo) + " needs " + std::to_string(want) + " lower-case hex digits";
  return "";
}

constexpr size_t kMaxNameLength = 255;

}  // namespace

std::string ImageRef::canonical() const {
  std::string s = registry + "/" + repository;
  if (!tag.empty()) s += ":" + tag;
  if (!digest.empty()) s += "@" + digest;
  return s;
}

Result<ImageRef> parseImageRef(std::string_view text) {
  std::string in(text);
  auto bad = [&](const std::string& why) { return failInvalid("image \"" + in + "\": " + why); };
  if (text.empty()) return bad("empty reference");
  if (std::any_of(text.begin(), text.end(), [](char c) { return std::isspace(static_cast<unsigned char>(c)); }))
    return bad("contains white space");
  ImageRef ref;
  if (auto at = text.find('@'); at != std::string_view::npos) {
    ref.digest = std::string(text.substr(at + 1));
    if (auto why = digestProblem(ref.digest); !why.empty()) return bad("invalid digest \"" + ref.digest + "\": " + why);
    text = text.substr(0, at);
  }
  // The registry is the first component when it looks like a host (has '.' or ':', or is
  // "localhost"), as docker and kubelet decide.
  std::string_view rest = text;
  if (auto slash = text.find('/'); slash != std::string_view::npos) {
    auto first = text.substr(0, slash);
    if (first.find('.') != std::string_view::npos || first.find(':') != std::string_view::npos ||
        first == "localhost") {
      if (!validDomain(first)) return bad("invalid registry host \"" + std::string(first) + "\"");
      ref.registry = std::string(first);
      rest = text.substr(slash + 1);
    }
  }
  // A tag is after the last ':' of the path (the host's port was split off above).
  if (auto colon = rest.rfind(':'); colon != std::string_view::npos) {
    ref.tag = std::string(rest.substr(colon + 1));
    if (!validTag(ref.tag)) return bad("invalid tag \"" + ref.tag + "\"");
    rest = rest.substr(0, colon);
  }
  if (rest.empty()) return bad("empty repository");
  size_t start = 0;
  for (;;) {
    auto slash = rest.find('/', start);
    auto component = rest.substr(start, slash == std::string_view::npos ? slash : slash - start);
    if (!validPathComponent(component))
      return bad("invalid path component \"" + std::string(component) +
                 "\" (lower-case letters and digits, separated by one '.', one or two '_', or '-')");
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  if (ref.registry.empty()) ref.registry = "docker.io";
  if (ref.registry == "index.docker.io" || ref.registry == "registry-1.docker.io") ref.registry = "docker.io";
  ref.repository = std::string(rest);
  if (ref.registry == "docker.io" && ref.repository.find('/') == std::string::npos)
    ref.repository = "library/" + ref.repository;
  if (ref.registry.size() + 1 + ref.repository.size() > kMaxNameLength)
    return bad("name longer than " + std::to_string(kMaxNameLength) + " characters (" + ref.registry + "/" +
               ref.repository.substr(0, 20) + "...)");
  if (ref.tag.empty() && ref.digest.empty()) ref.tag = "latest";
  return ref;
}

}  // namespace nodeagent::imagepull
