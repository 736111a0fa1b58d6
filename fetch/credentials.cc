#include "fetch/credentials.h"

#include <openssl/evp.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace imagefs::fetch {
namespace {

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

// Docker keys its entries by the index URL for Docker Hub and by host otherwise, with or
// without a scheme and path.
std::string HostOfKey(std::string key) {
  if (auto p = key.find("://"); p != std::string::npos) key = key.substr(p + 3);
  key = key.substr(0, key.find('/'));
  if (key == "index.docker.io" || key == "registry-1.docker.io") return "docker.io";
  return key;
}

}  // namespace

Result<Credentials> ParseCredsFlag(std::string_view flag) {
  size_t colon = flag.find(':');
  if (colon == std::string_view::npos || colon == 0) {
    return Fail(Code::kInvalid, "invalid --creds: want USERNAME:PASSWORD");
  }
  return Credentials{std::string(flag.substr(0, colon)), std::string(flag.substr(colon + 1))};
}

std::filesystem::path CredentialSource::DefaultDockerConfig() {
  if (const char* dir = std::getenv("DOCKER_CONFIG"); dir != nullptr && *dir != '\0') {
    return std::filesystem::path(dir) / "config.json";
  }
  const char* home = std::getenv("HOME");
  return std::filesystem::path(home != nullptr ? home : "/") / ".docker" / "config.json";
}

Result<std::optional<Credentials>> CredentialSource::Lookup(const std::string& domain) const {
  if (fixed_) return fixed_;
  std::ifstream in(config_path_);
  if (!in) return std::optional<Credentials>();
  std::stringstream text;
  text << in.rdbuf();
  std::string what = config_path_.string();
  auto config = nlohmann::json::parse(text.str(), nullptr, false);
  if (config.is_discarded() || !config.is_object())
    return Fail(Code::kInvalid, what + ": not a JSON object");
  auto auths = config.find("auths");
  if (auths == config.end() || !auths->is_object()) return std::optional<Credentials>();
  for (const auto& [key, entry] : auths->items()) {
    if (HostOfKey(key) != domain || !entry.is_object()) continue;
    if (auto auth = entry.find("auth");
        auth != entry.end() && auth->is_string() && !auth->get<std::string>().empty()) {
      auto decoded = Base64Decode(auth->get<std::string>());
      if (!decoded)
        return Fail(Code::kInvalid, what + ": auths." + key + ".auth is not valid base64");
      auto creds = ParseCredsFlag(*decoded);
      if (!creds)
        return Fail(Code::kInvalid, what + ": auths." + key + ".auth is not USER:PASSWORD");
      return std::optional<Credentials>(*creds);
    }
    if (entry.contains("username") && entry.contains("password") && entry["username"].is_string() &&
        entry["password"].is_string()) {
      return std::optional<Credentials>(Credentials{entry["username"], entry["password"]});
    }
  }
  return std::optional<Credentials>();
}

}  // namespace imagefs::fetch
