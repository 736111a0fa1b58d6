// InodeTable: FUSE node ids for the whole mount. An id is a stable integer, never a
// pointer: (serial << 32) | (index + 1). Serial 0 holds synthetic nodes (images/,
// layers/, tags/, import/, .imagefs/ and what lies directly in them); every other serial
// names one tree (a merged rootfs or a layer diff, as seen under one owner directory) and
// the low half is the tree's node id + 1. Tree serials are hashed from (kind, chain,
// owner), so st_ino of tree files is the same after a restart. Entries are never freed:
// there are few synthetic nodes and tree serials, and tree nodes cost nothing here.
// Thread-safe; mu_ is a leaf lock.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "graph/base/digest.h"
#include "graph/tree_cache.h"

namespace imagefs {

enum class VKind : uint8_t {
  kRoot,
  kImagesDir,
  kLayersDir,
  kTagsDir,  // tags/ and every directory below it; key = path below tags/
  kImportDir,
  kImportLink,  // kernel-handled opens: import -> the second mount serving uploads
  kMetaDir,     // .imagefs/
  kImageDir,    // key = image id
  kImageConfig,
  kImageLayersDir,
  kImageLayerLink,  // key = image id, index = position in the chain
  kImageTar,
  kLayerDir,  // key = chain id hex
  kLayerTar,
  kLayerParent,
  kTagLink,        // key = canonical reference + "\n" + image id
  kImportFile,     // key = name in import/
  kMetaFile,       // key = "NAME@SLOT": a snapshot of .imagefs/NAME (stats, pull status JSON)
  kRegistryDir,    // registry/ and the host and repository directories below; key = path
  kRegistryImage,  // a resolved tag or digest; key = RemoteEntry::key ("path@digest")
  kRegistryConfig,
  kRegistryLayersDir,
  kRegistryLayerLink,   // key = registry image key, index = position in the chain
  kRegistryStreamNode,  // a path of a rootfs served while it streams; key = image key + "\n" + path
};

struct VNode {
  VKind kind;
  std::string key;
  uint32_t index = 0;
};

struct TreeKey {
  TreeCache::Kind kind;
  std::optional<Digest> top;
  std::string owner;  // "image:<id>" or "layer:<chain>": one directory inode, one parent
};

class InodeTable {
 public:
  static constexpr uint64_t kRootId = 1;  // FUSE_ROOT_ID

  // root: what FUSE_ROOT_ID is (kImportDir for the mount that serves only import/).
  explicit InodeTable(VKind root = VKind::kRoot);

  static uint32_t SerialOf(uint64_t ino) { return static_cast<uint32_t>(ino >> 32); }
  static uint32_t TreeNodeOf(uint64_t ino) { return static_cast<uint32_t>(ino & 0xffffffffu) - 1; }
  static uint64_t TreeIno(uint32_t serial, uint32_t node) {
    return (uint64_t{serial} << 32) | (node + 1);
  }

  // The id of a synthetic node, created on first use.
  uint64_t Synthetic(VKind kind, const std::string& key, uint32_t index = 0);
  std::optional<VNode> GetSynthetic(uint64_t ino) const;
  // Its kind only (no copy of the key, no allocation).
  std::optional<VKind> KindOf(uint64_t ino) const;
  // The id of a synthetic node if it was ever handed out (the kernel may know it).
  std::optional<uint64_t> FindSynthetic(VKind kind, const std::string& key,
                                        uint32_t index = 0) const;
  // Every synthetic node of a kind handed out so far: (key, id).
  std::vector<std::pair<std::string, uint64_t>> SyntheticOfKind(VKind kind) const;
  // The serial of a tree, registered on first use.
  uint32_t TreeSerial(const TreeKey& key);
  std::optional<TreeKey> GetTree(uint32_t serial) const;

 private:
  mutable std::mutex mu_;
  std::vector<VNode> synthetic_;                 // index = ino - 1; guarded by mu_
  std::map<std::string, uint64_t> by_key_;       // guarded by mu_
  std::map<uint32_t, TreeKey> trees_;            // guarded by mu_
  std::map<std::string, uint32_t> tree_by_key_;  // guarded by mu_
};

}  // namespace imagefs
