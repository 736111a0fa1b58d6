// Registry credentials as Docker and Podman keep them. `--creds USER:PASS` serves every
// registry; otherwise, per registry host:
//   1. Docker's config: $DOCKER_AUTH_CONFIG (the JSON itself) if set, else
//      $DOCKER_CONFIG/config.json or ~/.docker/config.json. As docker/cli's
//      GetCredentialsStore: credHelpers[host], else credsStore, runs that helper
//      (docker-credential-<name> get); without either, `auths` (auth, username/password,
//      identitytoken).
//   2. When Docker's config has nothing for the host, containers-auth.json(5) files in order
//      (credHelpers, then `auths`, whose keys may name a namespace: the most specific wins).
// The files are read again (and helpers run again) on every lookup, so a long-lived mount
// sees a `docker login` made after it started. Never logged. Thread-safe (immutable after
// construction; helpers run in their own processes).
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "graph/base/error.h"

namespace imagefs::fetch {

struct Credentials {
  std::string username;
  std::string password;
  // Docker's identity token: an OAuth2 refresh token, exchanged at a token server
  // (Bearer); no use for Basic auth.
  std::string identity_token;
};

// Parses "USER:PASS" (the password may contain ':').
Result<Credentials> ParseCredsFlag(std::string_view flag);

// Where credentials are looked for (see the comment at the top).
struct CredentialLocations {
  std::filesystem::path docker_config;            // empty: none
  std::optional<std::string> docker_auth_config;  // used in place of docker_config
  std::vector<std::filesystem::path> auth_files;  // containers-auth.json(5), in order
  std::chrono::milliseconds helper_timeout = std::chrono::seconds(30);

  // From $DOCKER_AUTH_CONFIG, $DOCKER_CONFIG, $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR,
  // $XDG_CONFIG_HOME and $HOME, read now.
  static CredentialLocations FromEnvironment();
};

class CredentialSource {
 public:
  CredentialSource() : CredentialSource(std::nullopt, CredentialLocations::FromEnvironment()) {}
  CredentialSource(std::optional<Credentials> fixed, CredentialLocations where)
      : fixed_(std::move(fixed)), where_(std::move(where)) {}
  // Only this Docker config file (empty: no credentials but fixed).
  CredentialSource(std::optional<Credentials> fixed, std::filesystem::path docker_config)
      : fixed_(std::move(fixed)) {
    where_.docker_config = std::move(docker_config);
  }

  static std::filesystem::path DefaultDockerConfig();

  // Credentials for a registry host ("docker.io", "localhost:5000") and, for auth.json's
  // per-namespace keys, a repository path ("library/debian"); none when unknown (or a
  // helper says it has none). A malformed file is an error naming it; a failed helper is
  // an error naming the helper. A helper still running when `stopped` (empty: never) turns
  // true is killed within 100 ms, and the lookup ends with kCancelled.
  Result<std::optional<Credentials>> Lookup(const std::string& domain,
                                            const std::string& repository = "",
                                            std::function<bool()> stopped = {}) const;

 private:
  std::optional<Credentials> fixed_;
  CredentialLocations where_;
};

}  // namespace imagefs::fetch
