// NodeKind: what one kind of synthetic node (a mount directory such as images/, or a file
// or link in one) answers. Kinds are stateless; everything they read comes through the
// MountNodes they are given, which dispatches to them by VKind (kinds.cc holds the table).
// Adding a mount directory: a VKind, a file here with its kind, one line in kinds.cc.
#pragma once

#include <fuse_lowlevel.h>
#include <sys/stat.h>

#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "fusefs/inode_table.h"
#include "graph/base/error.h"
#include "graph/image_archive.h"
#include "graph/remote_images.h"
#include "graph/tree.h"

namespace imagefs {

class MountNodes;

// What the kernel is told of a node: its attributes and how long it may trust them.
struct NodeEntry {
  fuse_ino_t ino = 0;
  struct stat attr {};
  double timeout = 0;
};

// One name of a directory listing.
struct DirEntry {
  DirEntry(std::string entry_name, fuse_ino_t entry_ino)
      : name(std::move(entry_name)), ino(entry_ino) {}
  std::string name;
  fuse_ino_t ino = 0;
  // Set when describing the entry would do work a listing must not do (a pull): the
  // listing then carries only this file type, and the kernel looks the name up when used.
  std::optional<mode_t> type_only;
};

// What a file's bytes come from.
struct NodeSource {
  struct TreeFile {
    std::shared_ptr<const Tree> tree;
    uint32_t node;
    std::optional<Tree::Extent> extent;  // contiguous data: spliced from the blob
    uint64_t size;
  };
  struct Bytes {
    std::string data;
  };
  struct Blob {
    std::shared_ptr<const LayerBlob> blob;
  };
  struct Archive {
    std::shared_ptr<const ImageArchive> archive;
  };
  struct Import {
    std::string name;
  };
  std::variant<TreeFile, Bytes, Blob, Archive, Import> v;
};

class NodeKind {
 public:
  virtual ~NodeKind() = default;
  // The node's attributes. Reads what the store and the caches know; never pulls, builds
  // an archive or writes: the kernel may ask at any time (stat, revalidation).
  virtual Result<NodeEntry> Attributes(MountNodes& m, fuse_ino_t ino, const VNode& v,
                                       RemoteAccess access) const = 0;
  // Directories: the one child called `name`, resolved without listing the others. The
  // work a child needs before it can be described (a pull) happens here.
  virtual Result<NodeEntry> Lookup(MountNodes& m, const VNode& dir, const std::string& name,
                                   RemoteAccess access) const;
  virtual Result<std::vector<DirEntry>> List(MountNodes& m, const VNode& dir,
                                             RemoteAccess access) const;
  // Before a lookup (name set) or a listing (name null) is answered: waits for work that
  // would change the answer (loads of import/ still running).
  virtual void Settle(MountNodes&, const VNode&, const char* /*name*/) const {}
  virtual Result<std::string> ReadLink(MountNodes& m, const VNode& link, RemoteAccess access) const;
  // Extended attributes as (name, value) pairs; none by default.
  virtual Result<std::vector<std::pair<std::string, std::string>>> Xattrs(
      MountNodes& m, const VNode& node, RemoteAccess access) const;
  // Files: where reads come from (an open, or a read without one).
  virtual Result<NodeSource> Open(MountNodes& m, fuse_ino_t ino, const VNode& file,
                                  RemoteAccess access) const;
};

// A kind's one instance.
template <typename Kind>
const NodeKind& The() {
  static const Kind kind;
  return kind;
}

// The kind of every VKind (kinds.cc); null for a VKind nobody registered.
const NodeKind* KindOf(VKind kind);

}  // namespace imagefs
