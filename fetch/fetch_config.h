// FetchConfig: how imagefs talks to registries, read from a JSON file (`--registries`,
// else $IMAGEFS_REGISTRIES, else $XDG_CONFIG_HOME/imagefs/registries.json, else
// ~/.config/imagefs/registries.json; a missing file means the defaults):
//
//   { "registries": {
//       "docker.io":       { "mirrors": ["http://127.0.0.1:5001"] },
//       "reg.example:5000": { "ca_file": "/etc/ssl/reg.pem" },
//       "10.0.0.5:5000":    { "insecure": true } },
//     "concurrency": 3, "retries": 4, "retry_base_ms": 250,
//     "tag_cache_seconds": 60, "quota_bytes": 0, "lazy_files": true, "lazy_complete": true,
//     "stream_unverified": false }
//
// `insecure` means plain http. Loopback registries (127.0.0.0/8, localhost, ::1) use plain
// http without configuration, as Docker allows. Mirrors are tried first, in order, and
// fallen back from. Immutable after Load.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "graph/base/error.h"

namespace imagefs::fetch {

struct RegistryConfig {
  std::vector<std::string> mirrors;  // "http://host:port", "https://host", or "host:port"
  std::string ca_file;               // extra CA bundle for this registry's TLS
  bool insecure = false;             // plain http
};

// One base URL to send requests to, and how.
struct Endpoint {
  std::string base_url;  // "https://registry-1.docker.io", "http://127.0.0.1:5000"
  std::string host;      // "registry-1.docker.io": credentials and tokens are per host
  std::string ca_file;
  bool mirror = false;
};

struct FetchConfig {
  std::map<std::string, RegistryConfig> registries;  // by registry domain
  unsigned concurrency = 3;                          // layer downloads at once
  unsigned retries = 4;                              // further attempts after a failure
  unsigned retry_base_ms = 250;                      // backoff: base * 2^attempt, capped at 10 s
  double tag_cache_seconds = 60;                     // how long the mount trusts a tag lookup
  uint64_t quota_bytes = 0;                          // store size that evicts lazy pulls; 0: none
  // registry/ serves eStargz images by Range, file by file, before they are pulled...
  bool lazy_files = true;
  // ...and completes and registers them in the background meanwhile.
  bool lazy_complete = true;
  // registry/ serves an image of plain layers while they download, before their digests
  // are checked (a mismatch found at the end makes the layer's files EIO). Off by default.
  bool stream_unverified = false;

  static std::filesystem::path DefaultPath();
  // Reads the file; a missing file gives the defaults, a malformed one an error naming it.
  static Result<FetchConfig> Load(const std::filesystem::path& path);
  static Result<FetchConfig> Parse(const std::string& text, const std::string& what);

  // Where to send a registry's requests: its mirrors first, then the registry itself.
  std::vector<Endpoint> EndpointsFor(const std::string& domain) const;
};

bool IsLoopbackHost(const std::string& domain);

}  // namespace imagefs::fetch
