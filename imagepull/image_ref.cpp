#include "imagepull/image_ref.h"

#include <algorithm>
#include <cctype>

namespace nodeagent::imagepull {

namespace {

bool isRepoChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' || c == '/';
}

bool validTag(std::string_view t) {
  if (t.empty() || t.size() > 128) return false;
  if (!(std::isalnum(static_cast<unsigned char>(t[0])) || t[0] == '_')) return false;
  return std::all_of(t.begin(), t.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
  });
}

bool validDigest(std::string_view d) {
  auto colon = d.find(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  auto hex = d.substr(colon + 1);
  if (d.substr(0, colon) == "sha256" && hex.size() != 64) return false;
  return hex.size() >= 32 && std::all_of(hex.begin(), hex.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

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
    if (!validDigest(ref.digest)) return bad("invalid digest \"" + ref.digest + "\"");
    text = text.substr(0, at);
  }
  // The registry is the first component when it looks like a host (has '.' or ':', or is
  // "localhost"), as docker and kubelet decide.
  std::string_view rest = text;
  if (auto slash = text.find('/'); slash != std::string_view::npos) {
    auto first = text.substr(0, slash);
    if (first.find('.') != std::string_view::npos || first.find(':') != std::string_view::npos ||
        first == "localhost") {
      ref.registry = std::string(first);
      rest = text.substr(slash + 1);
    }
  }
  if (ref.registry.empty()) ref.registry = "docker.io";
  if (ref.registry == "index.docker.io" || ref.registry == "registry-1.docker.io") ref.registry = "docker.io";
  // A tag is after the last ':' that follows the last '/'.
  auto lastSlash = rest.rfind('/');
  auto colon = rest.rfind(':');
  if (colon != std::string_view::npos && (lastSlash == std::string_view::npos || colon > lastSlash)) {
    ref.tag = std::string(rest.substr(colon + 1));
    if (!validTag(ref.tag)) return bad("invalid tag \"" + ref.tag + "\"");
    rest = rest.substr(0, colon);
  }
  if (rest.empty()) return bad("empty repository");
  if (!std::all_of(rest.begin(), rest.end(), isRepoChar))
    return bad("repository \"" + std::string(rest) + "\" must be lower case letters, digits, '.', '_', '-', '/'");
  if (rest.front() == '/' || rest.back() == '/' || rest.find("//") != std::string_view::npos)
    return bad("empty path component in \"" + std::string(rest) + "\"");
  ref.repository = std::string(rest);
  if (ref.registry == "docker.io" && ref.repository.find('/') == std::string::npos)
    ref.repository = "library/" + ref.repository;
  if (ref.tag.empty() && ref.digest.empty()) ref.tag = "latest";
  return ref;
}

}  // namespace nodeagent::imagepull
