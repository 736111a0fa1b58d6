// DiffTrees: what changed from one merged tree to another, path by path (what `imagefs
// diff` prints). Compares the trees, not files on disk: a file both trees take from the
// same bytes of the same layer is equal without a read; other files of one size are read
// and compared.
#pragma once

#include <string>
#include <vector>

#include "graph/tree.h"

namespace imagefs {

struct TreeChange {
  enum class Kind { kAdded, kRemoved, kChanged };
  Kind kind;
  std::string path;               // "/etc/passwd"
  std::vector<std::string> what;  // kChanged: "type", "mode", "owner", "size", "content",
                                  // "target", "device", "xattrs", "mtime"
};

// Every path added, removed or changed from `from` to `to`, in path order; below a directory
// added or removed, every path in it too.
Result<std::vector<TreeChange>> DiffTrees(const Tree& from, const Tree& to);

}  // namespace imagefs
