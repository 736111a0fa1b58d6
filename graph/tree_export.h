// Writes a Tree as a PAX tar: every node in DFS order under "./", hardlinked names as
// hardlink entries to the first name, with modes, owners, nanosecond mtimes, devices,
// xattrs and sparse maps preserved.
#pragma once

#include "graph/base/error.h"
#include "graph/tree.h"

namespace imagefs {

Status ExportTree(const Tree& tree, int out_fd);

}  // namespace imagefs
