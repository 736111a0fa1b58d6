// The CLI's commands, each a function over an open Store that prints to stdout and
// returns the process exit code (0 success, 1 failure). Parsing lives in cli.cc.
#pragma once

#include <string>
#include <vector>

#include "graph/store.h"

namespace imagefs {

struct ImagesOptions {
  bool all = false;
  bool json = false;
  bool no_trunc = false;
};

int CmdImages(Store& store, const ImagesOptions& options);
int CmdLayers(Store& store, bool no_trunc);
int CmdInspect(Store& store, const std::vector<std::string>& names);
int CmdTag(Store& store, const std::string& source, const std::string& target);
int CmdUntag(Store& store, const std::vector<std::string>& names);
struct LoadCmdOptions {
  std::vector<std::string> files;  // "-" reads standard input
  std::string platform;
  bool all_platforms = false;
  bool quiet = false;
};
int CmdLoad(Store& store, const LoadCmdOptions& options);
int CmdExportRootfs(Store& store, const std::string& name, const std::string& output);
// One docker-save tarball of the named images, shared layers once (save_command.cc).
int CmdSave(Store& store, const std::vector<std::string>& names, const std::string& output);
int CmdRm(Store& store, const std::vector<std::string>& names, bool force);

// Prints "imagefs: <message>" to stderr and returns 1.
int ReportError(const Error& error);

// Verifies the whole store (graph/check.h); with repair removes what is broken or
// orphaned. Exit 0 only when the store is sound (after the repair).
int CmdCheck(Store& store, bool repair, bool as_json);

// An image's build steps, newest first, as `docker history` (history_command.cc).
int CmdHistory(Store& store, const std::string& name, bool no_trunc, bool as_json);

// The paths added (A), removed (D) and changed (C) from one image's rootfs to another's
// (diff_command.cc).
int CmdDiff(Store& store, const std::string& from, const std::string& to, bool as_json);

}  // namespace imagefs
