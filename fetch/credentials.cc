#include "fetch/credentials.h"

#include <openssl/evp.h>
#include <unistd.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "fetch/credential_helper.h"
#include "graph/base/fs_util.h"

namespace imagefs::fetch {
namespace {

using nlohmann::json;
using Found = std::optional<Credentials>;

// What Docker names Docker Hub by, in its config and to its helpers.
constexpr char kHubServer[] = "https://index.docker.io/v1/";
// A helper's Username for an identity token (docker/cli's tokenUsername).
constexpr char kTokenUsername[] = "<token>";

Result<std::string> Base64Decode(std::string_view in) {
  std::string clean;
  for (char c : in) {
    if (c != '\n' && c != '\r' && c != ' ') clean += c;
  }
  if (clean.size() % 4 != 0) return Fail(Code::kInvalid, "invalid base64");
  std::string out(clean.size() / 4 * 3 + 1, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(clean.data()),
                          static_cast<int>(clean.size()));
  if (n < 0) return Fail(Code::kInvalid, "invalid base64");
  size_t pad = 0;
  while (pad < 2 && pad < clean.size() && clean[clean.size() - 1 - pad] == '=') ++pad;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

std::string CanonicalHost(std::string host) {
  if (host == "index.docker.io" || host == "registry-1.docker.io") return "docker.io";
  return host;
}

// Docker keys its entries by the index URL for Docker Hub and by host otherwise, with or
// without a scheme and path.
std::string HostOfKey(std::string key) {
  if (auto p = key.find("://"); p != std::string::npos) key = key.substr(p + 3);
  return CanonicalHost(key.substr(0, key.find('/')));
}

// auth.json keys are "host" or "host/namespace[/repo]"; one with a scheme is Docker's
// (legacy) form and names its host only.
std::string ScopeOfAuthJsonKey(const std::string& key) {
  if (key.find("://") != std::string::npos) return HostOfKey(key);
  size_t slash = key.find('/');
  std::string host = CanonicalHost(key.substr(0, slash));
  return slash == std::string::npos ? host : host + key.substr(slash);
}

// The config as JSON; none when the file does not exist or this user may not read it (a
// HOME kept by sudo -u is no reason to refuse).
Result<std::optional<json>> ReadConfig(const std::filesystem::path& path) {
  if (path.empty()) return std::optional<json>();
  auto text = ReadFile(path, 16u << 20);
  if (!text) {
    int e = text.error().sys_errno;
    if (e == ENOENT || e == ENOTDIR || e == EACCES || e == EPERM) return std::optional<json>();
    return Fail(text.error());
  }
  auto config = json::parse(*text, nullptr, false);
  if (config.is_discarded() || !config.is_object())
    return Fail(Code::kInvalid, path.string() + ": not a JSON object");
  return std::optional<json>(std::move(config));
}

// A member that must be an object when present.
Result<const json*> ObjectMember(const json& config, const char* name, const std::string& what) {
  auto it = config.find(name);
  if (it == config.end() || it->is_null()) return nullptr;
  if (!it->is_object()) return Fail(Code::kInvalid, what + ": " + name + " is not an object");
  return &*it;
}

// One `auths` entry: auth (base64 USER:PASS) or username/password, and identitytoken;
// none when it holds nothing (as Docker leaves it when a helper keeps the secret).
Result<Found> DecodeEntry(const json& entry, const std::string& what) {
  if (!entry.is_object()) return Found();
  Credentials c;
  if (auto auth = entry.find("auth");
      auth != entry.end() && auth->is_string() && !auth->get<std::string>().empty()) {
    auto decoded = Base64Decode(auth->get<std::string>());
    if (!decoded) return Fail(Code::kInvalid, what + ".auth is not valid base64");
    auto creds = ParseCredsFlag(*decoded);
    if (!creds) return Fail(Code::kInvalid, what + ".auth is not USER:PASSWORD");
    c = *creds;
  } else if (entry.contains("username") && entry.contains("password") &&
             entry["username"].is_string() && entry["password"].is_string()) {
    c.username = entry["username"];
    c.password = entry["password"];
  }
  if (auto token = entry.find("identitytoken"); token != entry.end() && token->is_string())
    c.identity_token = *token;
  if (c.password.empty() && c.identity_token.empty()) return Found();
  return Found(std::move(c));
}

Result<Found> FromHelper(const std::string& helper, const std::string& server_url,
                         const HelperBounds& bounds) {
  ASSIGN_OR_RETURN(auto got, RunCredentialHelper(helper, server_url, bounds));
  if (!got) return Found();
  Credentials c;
  if (got->username == kTokenUsername) {
    c.identity_token = std::move(got->secret);
  } else {
    c.username = std::move(got->username);
    c.password = std::move(got->secret);
  }
  return Found(std::move(c));
}

// A credHelpers value for the host: the key Docker would look up (the server address)
// first, else any key naming the same host.
Result<std::optional<std::pair<std::string, std::string>>> HelperFor(const json& helpers,
                                                                     const std::string& domain,
                                                                     const std::string& server,
                                                                     const std::string& what) {
  std::optional<std::pair<std::string, std::string>> found;
  for (const auto& [key, value] : helpers.items()) {
    if (HostOfKey(key) != domain) continue;
    if (!value.is_string())
      return Fail(Code::kInvalid, what + ": credHelpers." + key + " is not a string");
    if (!found || key == server) found.emplace(key, value.get<std::string>());
  }
  return found;
}

// Docker's rules (docker/cli configfile GetCredentialsStore, GetAuthConfig):
// credHelpers[host], else credsStore, answers alone (its "not found" is anonymous, the
// file's auths are not consulted); with neither, the auths entry for the host.
Result<Found> LookupDocker(const json& config, const std::string& what, const std::string& domain,
                           const HelperBounds& bounds) {
  const std::string server = domain == "docker.io" ? kHubServer : domain;
  ASSIGN_OR_RETURN(const json* helpers, ObjectMember(config, "credHelpers", what));
  if (helpers != nullptr) {
    ASSIGN_OR_RETURN(auto helper, HelperFor(*helpers, domain, server, what));
    // Docker Hub's helpers are asked for the index URL whatever the key's spelling.
    if (helper)
      return FromHelper(helper->second, domain == "docker.io" ? server : helper->first, bounds);
  }
  if (auto store = config.find("credsStore"); store != config.end() && !store->is_null()) {
    if (!store->is_string()) return Fail(Code::kInvalid, what + ": credsStore is not a string");
    if (!store->get<std::string>().empty()) return FromHelper(*store, server, bounds);
  }
  ASSIGN_OR_RETURN(const json* auths, ObjectMember(config, "auths", what));
  if (auths == nullptr) return Found();
  // The exact server address first, as Docker's file store looks it up.
  if (auto exact = auths->find(server); exact != auths->end()) {
    ASSIGN_OR_RETURN(Found c, DecodeEntry(*exact, what + ": auths." + server));
    if (c) return c;
  }
  for (const auto& [key, entry] : auths->items()) {
    if (key == server || HostOfKey(key) != domain) continue;
    ASSIGN_OR_RETURN(Found c, DecodeEntry(entry, what + ": auths." + key));
    if (c) return c;
  }
  return Found();
}

// containers-auth.json(5): credHelpers[host] answers for this file; else the auths entry
// whose key is the longest of host, host/namespace, ... host/repository.
Result<Found> LookupAuthJson(const json& config, const std::string& what, const std::string& domain,
                             const std::string& repository, const HelperBounds& bounds) {
  ASSIGN_OR_RETURN(const json* helpers, ObjectMember(config, "credHelpers", what));
  if (helpers != nullptr) {
    ASSIGN_OR_RETURN(auto helper, HelperFor(*helpers, domain, domain, what));
    if (helper) return FromHelper(helper->second, domain, bounds);
  }
  ASSIGN_OR_RETURN(const json* auths, ObjectMember(config, "auths", what));
  if (auths == nullptr) return Found();
  const std::string full = repository.empty() ? domain : domain + "/" + repository;
  const json* best = nullptr;
  std::string best_key, best_scope;
  for (const auto& [key, entry] : auths->items()) {
    std::string scope = ScopeOfAuthJsonKey(key);
    bool covers = scope == full || (full.size() > scope.size() && full.starts_with(scope) &&
                                    full[scope.size()] == '/');
    if (!covers) continue;
    if (best == nullptr || scope.size() > best_scope.size()) {
      best = &entry;
      best_key = key;
      best_scope = scope;
    }
  }
  if (best == nullptr) return Found();
  return DecodeEntry(*best, what + ": auths." + best_key);
}

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

}  // namespace

Result<Credentials> ParseCredsFlag(std::string_view flag) {
  size_t colon = flag.find(':');
  if (colon == std::string_view::npos || colon == 0) {
    return Fail(Code::kInvalid, "invalid --creds: want USERNAME:PASSWORD");
  }
  return Credentials{std::string(flag.substr(0, colon)), std::string(flag.substr(colon + 1)), ""};
}

std::filesystem::path CredentialSource::DefaultDockerConfig() {
  if (std::string dir = Env("DOCKER_CONFIG"); !dir.empty())
    return std::filesystem::path(dir) / "config.json";
  std::string home = Env("HOME");
  return std::filesystem::path(home.empty() ? "/" : home) / ".docker" / "config.json";
}

CredentialLocations CredentialLocations::FromEnvironment() {
  CredentialLocations w;
  w.docker_config = CredentialSource::DefaultDockerConfig();
  // As GitLab and Docker read it: the content of a config.json.
  if (std::string env = Env("DOCKER_AUTH_CONFIG"); !env.empty()) w.docker_auth_config = env;
  // containers-auth.json(5), as containers/image's getAuthFilePaths: $REGISTRY_AUTH_FILE is
  // an explicit override and then the only auth.json; else the primary file
  // ($XDG_RUNTIME_DIR/containers/auth.json, /run/containers/$UID/auth.json without
  // XDG_RUNTIME_DIR), then ${XDG_CONFIG_HOME:-~/.config}/containers/auth.json. Its later
  // files are ~/.docker/config.json (Docker's step, already done; podman and skopeo also
  // take $DOCKER_CONFIG/config.json for their auth file when it is set) and ~/.dockercfg
  // (Docker before 1.7), which we do not read.
  if (std::string file = Env("REGISTRY_AUTH_FILE"); !file.empty()) {
    w.auth_files.push_back(file);
    return w;
  }
  if (std::string runtime = Env("XDG_RUNTIME_DIR"); !runtime.empty()) {
    w.auth_files.push_back(std::filesystem::path(runtime) / "containers" / "auth.json");
  } else {
    w.auth_files.push_back(std::filesystem::path("/run/containers") / std::to_string(getuid()) /
                           "auth.json");
  }
  std::string config_home = Env("XDG_CONFIG_HOME");
  if (config_home.empty() && !Env("HOME").empty())
    config_home = (std::filesystem::path(Env("HOME")) / ".config").string();
  if (!config_home.empty())
    w.auth_files.push_back(std::filesystem::path(config_home) / "containers" / "auth.json");
  return w;
}

Result<std::optional<Credentials>> CredentialSource::Lookup(const std::string& domain,
                                                            const std::string& repository,
                                                            std::function<bool()> stopped) const {
  if (fixed_) return fixed_;
  const HelperBounds bounds{where_.helper_timeout, std::move(stopped)};
  std::optional<json> docker;
  std::string what;
  if (where_.docker_auth_config) {
    what = "$DOCKER_AUTH_CONFIG";
    docker = json::parse(*where_.docker_auth_config, nullptr, false);
    if (docker->is_discarded() || !docker->is_object())
      return Fail(Code::kInvalid, what + ": not a JSON object");
  } else {
    what = where_.docker_config.string();
    ASSIGN_OR_RETURN(docker, ReadConfig(where_.docker_config));
  }
  if (docker) {
    ASSIGN_OR_RETURN(Found c, LookupDocker(*docker, what, domain, bounds));
    if (c) return c;
  }
  for (const std::filesystem::path& file : where_.auth_files) {
    ASSIGN_OR_RETURN(std::optional<json> config, ReadConfig(file));
    if (!config) continue;
    ASSIGN_OR_RETURN(Found c, LookupAuthJson(*config, file.string(), domain, repository, bounds));
    if (c) return c;
  }
  return Found();
}

}  // namespace imagefs::fetch
