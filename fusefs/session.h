// Mounting: a FUSE session over an ImageFs, from mount to unmount (fusermount3 -u,
// SIGINT/SIGTERM). Optionally backgrounds once the mount is up.
#pragma once

#include <string>
#include <vector>

#include "fusefs/filesystem.h"

namespace imagefs {

struct MountOptions {
  std::string mountpoint;
  bool daemon = false;
  std::vector<std::string> options;  // -o values; uid= and gid= are ours, the rest libfuse's
  FsOptions fs;
  RemoteImages* remote = nullptr;  // serves registry/; outlives the mount
};

// Serves until unmounted; the process exit code, or why the mount could not start.
Result<int> RunMount(Store& store, MountOptions options);

}  // namespace imagefs
