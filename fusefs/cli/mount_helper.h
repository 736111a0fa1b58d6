// The form mount(8) and /etc/fstab use: libfuse's mount.fuse3 runs
// `imagefs STORE MOUNTPOINT -o OPTIONS` for `mount -t fuse.imagefs STORE MOUNTPOINT`.
// Translated here into the CLI's own `--store STORE mount MOUNTPOINT --daemon ...`, so
// both forms share one parser and one set of checks.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "graph/base/error.h"

namespace imagefs {

// True when args (argv without the program name) look like the mount helper's form:
// two operands before any option, the first not a subcommand of ours.
bool IsMountHelperForm(const std::vector<std::string>& args,
                       const std::vector<std::string>& subcommands);

// The CLI arguments for the mount helper's form. Options of ours (opens=, cache_nodes=,
// passthrough_min=, registries=, platform=, log_level=, foreground) become flags; uid=, gid=,
// share_credentials and libfuse's mount options stay in -o; ro/rw, which mount(8) always
// passes, are accepted (images are read-only either way; import/ takes uploads). Anything
// else is an error naming the option.
Result<std::vector<std::string>> TranslateMountHelperArgs(const std::vector<std::string>& args);

}  // namespace imagefs
