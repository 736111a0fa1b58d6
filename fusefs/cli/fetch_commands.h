// The registry-facing commands (pull, prune) and the wiring of fetch into a mount. The
// only place besides cli.cc that knows both fetch and the mount.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fetch/credentials.h"
#include "fetch/fetch_config.h"
#include "fusefs/session.h"
#include "graph/store.h"

namespace imagefs {

struct RegistryCmdOptions {
  std::string registries_config;                 // empty: FetchConfig::DefaultPath()
  std::string creds;                             // "USER:PASS"; empty: the Docker config file
  std::string platform;                          // empty: this host's
  std::vector<std::string> insecure_registries;  // plain http for these hosts (overrides the file)
  bool stream_unverified = false;                // mount: FetchConfig::stream_unverified
};

int CmdPull(Store& store, const std::string& reference, const RegistryCmdOptions& options,
            bool quiet);
int CmdPrune(Store& store, bool all);
// Serves the store with a live registry/ tree.
int RunMountWithRegistry(Store& store, MountOptions mount, RegistryCmdOptions options);

}  // namespace imagefs
