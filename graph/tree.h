// Tree: the immutable merged file tree of a layer chain (an image's rootfs), built once
// by applying each layer's entries with OCI whiteout semantics as `umoci unpack` does, or
// the raw tree of one layer's own entries. Shared as shared_ptr<const Tree>; every method
// is const and takes no lock. Node ids are dense and deterministic (DFS order of names), so
// they are stable across restarts for the same chain.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "graph/base/error.h"
#include "graph/store.h"

namespace imagefs {

// kRemote: a registry image's rootfs served before it is pulled, its layers read by Range
// (RemoteImages::LazyRootfs); never saved, never in a TreeCache.
enum class TreeKind : uint32_t { kMerged = 0, kDiff = 1, kRemote = 2 };

// One merged entry. 36 bytes; names live in the tree's name table.
struct TreeNode {
  uint32_t parent;
  uint32_t name_off, name_len;
  uint32_t layer;  // index into the tree's layers, or kImplied for a directory no tar lists
  uint32_t entry;  // index into that layer's TarIndex entries
  uint32_t inode;  // id of the inode: the node id of its first name (hardlinks share it)
  uint32_t first_child, child_count;  // into the children table, sorted by name
  uint32_t nlink;
};
static_assert(sizeof(TreeNode) == 36);

struct TreeAttr {
  mode_t mode;
  uint32_t uid, gid;
  uint64_t size;
  uint64_t blocks;  // 512-byte units actually stored (holes of sparse files excluded)
  int64_t mtime_sec;
  uint32_t mtime_nsec;
  uint32_t nlink;
  uint32_t rdev_major, rdev_minor;
  uint32_t inode;
};

class Tree {
 public:
  static constexpr uint32_t kRoot = 0;
  static constexpr uint32_t kImplied = UINT32_MAX;

  // The merged rootfs of the chain ending at top (base first). No chain: an empty root.
  static Result<std::shared_ptr<const Tree>> BuildMerged(const Store& store,
                                                         const std::optional<Digest>& top);
  // The merged tree of the given layers (base first), wherever their data comes from.
  // partial: some layers hold only the members that arrived so far (graph/streaming_rootfs.h).
  static Result<std::shared_ptr<const Tree>> BuildMergedFrom(
      std::vector<std::shared_ptr<const LayerBlob>> layers, bool partial = false);
  // One layer's own entries as they are in its tar: whiteouts shown, not applied.
  static Result<std::shared_ptr<const Tree>> BuildDiff(const Store& store, const Digest& chain_id);
  // meta's nodes, names and attributes with file data read from `data`, a tree of the same
  // entries whose bytes are local: a rootfs first served by Range keeps the inodes and
  // metadata the kernel holds once its layers are stored, and reads them like a pulled one.
  // kInvalid naming the first path where the trees differ (shape, type, size, links).
  static Result<std::shared_ptr<const Tree>> WithDataOf(std::shared_ptr<const Tree> meta,
                                                        std::shared_ptr<const Tree> data);

  size_t size() const { return nodes_.size(); }
  const TreeNode& node(uint32_t id) const { return nodes_[id]; }
  // A mapped tree file is checked when opened by what costs no pass over its nodes; so
  // every accessor keeps ids and ranges inside the tree (a damaged file gives wrong
  // answers, empty names or ESTALE, never a read past its mapping). id < size() always.
  std::string_view Name(uint32_t id) const {
    const TreeNode& n = nodes_[id];
    if (uint64_t{n.name_off} + n.name_len > names_.size()) return {};
    return names_.substr(n.name_off, n.name_len);
  }
  // Child ids; callers skip any that is not below size() (a damaged file).
  std::span<const uint32_t> Children(uint32_t dir) const {
    const TreeNode& n = nodes_[dir];
    if (uint64_t{n.first_child} + n.child_count > children_.size()) return {};
    return children_.subspan(n.first_child, n.child_count);
  }
  // O(1): one hash probe sequence, whatever the chain depth.
  std::optional<uint32_t> Lookup(uint32_t dir, std::string_view name) const;
  // Walks a relative path ("etc/passwd") without following symlinks.
  std::optional<uint32_t> Resolve(std::string_view path) const;
  std::string Path(uint32_t id) const;

  TreeAttr Attr(uint32_t id) const;
  bool IsDir(uint32_t id) const;
  std::string_view SymlinkTarget(uint32_t id) const;
  // (name, value) pairs.
  std::vector<std::pair<std::string_view, std::string_view>> Xattrs(uint32_t id) const;
  // Reads file data; short only at end of file.
  Result<size_t> Read(uint32_t id, uint64_t off, size_t len, char* buf) const;
  // Where a contiguous file's bytes lie in its layer blob, for zero-copy reads; nullopt
  // for sparse files, non-files and layers still being fetched (read those with Read).
  struct Extent {
    int fd = -1;
    uint64_t offset = 0;
    Digest diff_id;  // of the layer whose tar holds the data
  };
  std::optional<Extent> ContiguousData(uint32_t id) const;
  // Whether reading the node's data may wait for its bytes to be fetched (its layer is read
  // by Range or still streaming), as opposed to a local blob.
  bool MayFetch(uint32_t id) const;

  // The (offset, length) runs holding data of a sparse file; nullopt when not sparse.
  std::optional<std::vector<std::pair<uint64_t, uint64_t>>> DataRuns(uint32_t id) const;

  // Bytes of memory the tree holds (excluding the shared, mmap'd layer indexes).
  size_t MemoryBytes() const;

 private:
  friend class TreeBuilder;
  friend class TreeFile;
  struct Built;
  Tree() = default;
  const IndexEntry* Entry(uint32_t id) const;
  void Adopt(std::shared_ptr<Built> built);

  std::vector<std::shared_ptr<const LayerBlob>> layers_;
  // Views into storage_: the arrays a build made, or a mapped tree file (tree_file.h).
  std::shared_ptr<const void> storage_;
  std::span<const TreeNode> nodes_;
  std::span<const uint32_t> children_;
  std::string_view names_;
  std::span<const uint32_t> slots_;  // open addressing on (parent, name); UINT32_MAX = empty
  // Set by WithDataOf: file data (Read, ContiguousData, MayFetch, DataRuns) comes from there.
  std::shared_ptr<const Tree> data_;
};

}  // namespace imagefs
