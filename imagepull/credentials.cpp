#include "imagepull/credentials.h"

#include "common/files.h"
#include "common/json.h"

namespace nodeagent::imagepull {

std::optional<std::string> decodeBase64(std::string_view in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  while (!in.empty() && in.back() == '=') in.remove_suffix(1);
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v = value(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  if (bits >= 6) return std::nullopt;  // one dangling character cannot encode a byte
  return out;
}

std::string normaliseRegistryHost(std::string key) {
  if (auto p = key.find("://"); p != std::string::npos) key = key.substr(p + 3);
  if (auto p = key.find('/'); p != std::string::npos) key = key.substr(0, p);
  if (key == "index.docker.io" || key == "registry-1.docker.io") key = "docker.io";
  return key;
}

Result<CredentialStore> CredentialStore::parse(const std::string& text, const std::string& source) {
  auto doc = Json::parse(text);
  // The parser's message may quote the input, which may hold secrets: name the file only.
  if (!doc) return failInvalid(source + ": not valid JSON");
  if (!doc->isObject()) return failInvalid(source + ": top level must be an object");
  const Json& auths = doc->has("auths") ? doc->get("auths") : *doc;
  if (!auths.isObject()) return failInvalid(source + ": \"auths\" must be an object");
  CredentialStore store;
  for (const auto& [key, entry] : auths.asObject()) {
    if (!entry.isObject()) return failInvalid(source + ": entry \"" + key + "\" must be an object");
    Credential c;
    c.username = entry.get("username").asString();
    c.password = entry.get("password").asString();
    c.identityToken = entry.get("identitytoken").asString();
    c.registryToken = entry.get("registrytoken").asString();
    if (const auto& auth = entry.get("auth").asString(); !auth.empty()) {
      auto plain = decodeBase64(auth);
      auto colon = plain ? plain->find(':') : std::string::npos;
      if (colon == std::string::npos)
        return failInvalid(source + ": entry \"" + key + "\": \"auth\" is not base64 of user:password");
      c.username = plain->substr(0, colon);
      c.password = plain->substr(colon + 1);
    }
    if (c.username.empty() && c.identityToken.empty() && c.registryToken.empty()) continue;
    store.byHost_[normaliseRegistryHost(key)] = std::move(c);
  }
  return store;
}

Result<CredentialStore> CredentialStore::load(const std::string& path) {
  auto text = readFile(path);
  if (!text) {
    if (text.error().code() == std::errc::no_such_file_or_directory) return CredentialStore{};
    return fail(text.error());
  }
  return parse(*text, path);
}

Result<CredentialStore> CredentialStore::fromSecret(const std::string& body, const std::string& where) {
  auto doc = Json::parse(body);
  if (!doc || !doc->isObject()) return failInvalid(where + ": not a Secret object");
  const auto& type = doc->get("type").asString();
  std::string key = type == "kubernetes.io/dockerconfigjson" ? ".dockerconfigjson"
                    : type == "kubernetes.io/dockercfg"      ? ".dockercfg"
                                                             : "";
  if (key.empty())
    return failInvalid(where + ": type is \"" + type + "\", not kubernetes.io/dockerconfigjson");
  const auto& encoded = doc->get("data").get(key).asString();
  if (encoded.empty()) return failInvalid(where + ": data." + key + " is missing or empty");
  auto text = decodeBase64(encoded);
  if (!text) return failInvalid(where + ": data." + key + " is not base64");
  return parse(*text, where + " data." + key);
}

void CredentialStore::merge(const CredentialStore& other) {
  for (const auto& [host, c] : other.byHost_) byHost_[host] = c;
}

std::optional<Credential> CredentialStore::lookup(const std::string& registryHost) const {
  auto it = byHost_.find(normaliseRegistryHost(registryHost));
  if (it == byHost_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> CredentialStore::hosts() const {
  std::vector<std::string> h;
  for (const auto& [k, v] : byHost_) h.push_back(k);
  return h;
}

}  // namespace nodeagent::imagepull
