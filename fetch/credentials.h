// Registry credentials: `--creds USER:PASS` for every registry, else the user's Docker
// config ($DOCKER_CONFIG/config.json, else ~/.docker/config.json, `auths.<host>.auth`).
// The file is read again on every lookup, so a long-lived mount sees a `docker login`
// made after it started. Never logged. Thread-safe (immutable after construction).
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "graph/base/error.h"

namespace imagefs::fetch {

struct Credentials {
  std::string username;
  std::string password;
};

// Parses "USER:PASS" (the password may contain ':').
Result<Credentials> ParseCredsFlag(std::string_view flag);

class CredentialSource {
 public:
  CredentialSource() : config_path_(DefaultDockerConfig()) {}
  CredentialSource(std::optional<Credentials> fixed, std::filesystem::path docker_config)
      : fixed_(std::move(fixed)), config_path_(std::move(docker_config)) {}

  static std::filesystem::path DefaultDockerConfig();

  // Credentials for a registry host ("docker.io", "localhost:5000"); none when unknown.
  // A malformed config file is an error naming it.
  Result<std::optional<Credentials>> Lookup(const std::string& domain) const;

 private:
  std::optional<Credentials> fixed_;
  std::filesystem::path config_path_;
};

}  // namespace imagefs::fetch
