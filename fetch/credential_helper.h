// Docker credential helpers: `docker-credential-<name> get` (found on PATH) with the server
// URL on stdin, answering JSON {"ServerURL", "Username", "Secret"} on stdout, as
// docker-credential-helpers' client does. Run without a shell (posix_spawnp), bounded by a
// timeout after which it is killed, or killed sooner when the caller stops waiting (a
// mount stopping). Stateless and thread-safe: every pipe is O_CLOEXEC, so
// a helper started by one thread never inherits another's.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include "graph/base/error.h"

namespace imagefs::fetch {

struct HelperCredentials {
  std::string username;  // "<token>": secret is an identity token
  std::string secret;
};

// How long a helper may run. `stopped` (empty: never) is asked every 100 ms; once true the
// helper is killed and the lookup ends with kCancelled.
struct HelperBounds {
  std::chrono::milliseconds timeout = std::chrono::seconds(30);
  std::function<bool()> stopped;
};

// The helper's credentials for server_url; none when it says "credentials not found in
// native keychain". Any other failure is an error naming the helper, its exit status and
// its stderr (trimmed, bounded); never its stdout, which may hold the secret.
Result<std::optional<HelperCredentials>> RunCredentialHelper(const std::string& helper,
                                                             const std::string& server_url,
                                                             const HelperBounds& bounds = {});

}  // namespace imagefs::fetch
