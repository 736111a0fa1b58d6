// FsOptions: how a mount serves (the -o options, as the CLI maps them).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace imagefs {

struct FsOptions {
  std::optional<uid_t> uid;  // present every entry as owned by this user (-o uid=N)
  std::optional<gid_t> gid;
  size_t cache_nodes = 8u << 20;         // tree nodes kept in memory
  double tree_timeout = 86400;           // entry/attr cache of immutable content, seconds
  double store_timeout = 1;              // of the synthetic directories that follow the store
  uint64_t passthrough_min = 32u << 20;  // see Passthrough; 0: off
  // The kernel opens and closes files without asking the daemon (FUSE_CAP_NO_OPEN_SUPPORT
  // and no FLUSH): small files read at page-cache speed, but no passthrough, and an
  // upload to import/ loads after the writer's close() returned. Off: every open and
  // close is a request (passthrough; close() of an upload reports its load).
  bool kernel_opens = true;
  // With kernel_opens, uploads need the FLUSH and RELEASE that the kernel no longer sends:
  // import/ is then a symlink to this path, where a second session (import_only, its
  // own opens) serves the upload directory.
  std::string import_link;
  bool import_only = false;
  // Users other than the mounter may enter the mount (-o allow_other).
  bool others_may_enter = false;
  // Their registry/ lookups and pulls use the mounter's credentials too (-o share_credentials).
  bool share_credentials = false;
};

}  // namespace imagefs
