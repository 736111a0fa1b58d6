// TreeFile: a merged or diff tree saved beside its layer (STORE/layers/<chainid>/merged.tree
// or diff.tree) and mapped read-only when used again, so that a fresh mount answers its
// first lookup without building the tree (about a second for a million entries). Derived
// data: written (fsync, rename) after a build, checked when opened against its inputs (the
// layers' DiffIDs, each index's entry count and tar size) and against its own structure
// (every offset and id in range), built again when anything disagrees, removed with the
// layer. Format (host-endian, like the layer index): a 64-byte header, 80 bytes per layer
// (DiffID hex, entries, tar size), then the nodes, children, hash slots and names exactly
// as Tree holds them.
#pragma once

#include <memory>

#include "graph/base/error.h"
#include "graph/store.h"
#include "graph/tree.h"

namespace imagefs {

class TreeFile {
 public:
  // The tree from its file when that is valid; else built and saved (best effort: a store
  // this process may not write to still gets its tree, built).
  static Result<std::shared_ptr<const Tree>> Load(const Store& store, TreeKind kind,
                                                  const Digest& top);
  // The saved tree, or an error saying why it cannot be used (kNotFound: none saved).
  static Result<std::shared_ptr<const Tree>> Open(const Store& store, TreeKind kind,
                                                  const Digest& top);
  static Status Save(const Store& store, const Tree& tree, TreeKind kind, const Digest& top);
};

}  // namespace imagefs
