// MountNodes: every node of a mount, as the FUSE operations see them, minus the replies.
// Tree nodes (a rootfs or a layer diff) are served from the tree cache; synthetic nodes
// are dispatched by kind (NodeKind) and this is what the kinds share: the store, the
// node ids, the caches and the helpers they describe nodes with. ImageFs turns the
// results into replies; tests call the same functions with no kernel in between.
// Thread-safe.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "fusefs/fs_options.h"
#include "fusefs/import_dir.h"
#include "fusefs/inode_table.h"
#include "fusefs/nodes/node_kind.h"
#include "fusefs/stats.h"
#include "graph/store.h"
#include "graph/streaming_rootfs.h"
#include "graph/tree_cache.h"

namespace imagefs {

class MountNodes {
 public:
  // options and stats are kept by reference: they must outlive this.
  MountNodes(Store& store, const FsOptions& options, RemoteImages* remote,
             std::shared_ptr<ImportDir> import, Stats& stats);
  // The remote (and its streamed rootfs) outlives the mount: its hooks find nothing here.
  ~MountNodes();

  // The operations, for any node.
  Result<NodeEntry> Describe(fuse_ino_t ino, RemoteAccess access);
  // A name in a synthetic directory (tree lookups are ImageFs's fast path).
  Result<NodeEntry> LookupSynthetic(fuse_ino_t parent, const std::string& name,
                                    RemoteAccess access);
  Result<std::vector<DirEntry>> ListSynthetic(fuse_ino_t dir, RemoteAccess access);
  // Waits for what would change a lookup (name) or a listing (null) of a synthetic dir.
  void Settle(fuse_ino_t dir, const char* name);
  Result<std::string> ReadLink(fuse_ino_t ino, RemoteAccess access);
  Result<NodeSource> Open(fuse_ino_t ino, RemoteAccess access);
  // A synthetic node's extended attributes (tree nodes' are ImageFs's fast path).
  Result<std::vector<std::pair<std::string, std::string>>> SyntheticXattrs(fuse_ino_t ino,
                                                                           RemoteAccess access);

  // Trees.
  Result<std::shared_ptr<const Tree>> TreeOf(uint32_t serial);
  // The tree and node an id names (serial != 0); ESTALE for a node the tree lacks.
  Result<std::pair<std::shared_ptr<const Tree>, uint32_t>> TreeAndNode(fuse_ino_t ino);
  fuse_ino_t TreeRoot(TreeCache::Kind kind, const std::optional<Digest>& top,
                      const std::string& owner);
  void FillTreeAttr(const Tree& tree, uint32_t serial, uint32_t node, struct stat* st) const;

  // For the kinds: what they describe nodes with.
  Store& store() { return store_; }
  const FsOptions& options() const { return options_; }
  InodeTable& inodes() { return inodes_; }
  const InodeTable& inodes() const { return inodes_; }
  RemoteImages* remote() { return remote_; }
  ImportDir& import() { return *import_; }
  const std::shared_ptr<ImportDir>& import_dir() const { return import_; }
  uid_t mounter_uid() const { return mounter_uid_; }
  // A synthetic node's starting attributes: a read-only directory dated at the mount's
  // start, cached as long as trees are.
  NodeEntry Base(fuse_ino_t ino) const;
  // A read-only file of `size` bytes; a symlink whose target has `target_length` bytes.
  NodeEntry FileEntry(fuse_ino_t ino, uint64_t size) const;
  NodeEntry LinkEntry(fuse_ino_t ino, size_t target_length) const;
  static void AsLink(NodeEntry& e, size_t target_length);
  // A store directory: its mtime moves with every change to the store, so that the kernel
  // drops its cached listing once it learns the new attributes.
  void FollowStore(NodeEntry& e) const;
  // A node that lasts as long as the image or layer it belongs to (found): its entry is
  // trusted as long as the store's.
  template <typename T>
  Result<NodeEntry> WhileStored(fuse_ino_t ino, const Result<T>& found) const {
    if (!found) return Fail(found.error());
    NodeEntry e = Base(ino);
    e.timeout = StoreTimeout();
    return e;
  }
  // An image's layers/ directory: links "0", "1", … of link_kind, one per layer.
  Result<NodeEntry> LookupLayerLink(VKind link_kind, const std::string& key,
                                    const std::string& name, size_t count, RemoteAccess access);
  std::vector<DirEntry> LayerLinks(VKind link_kind, const std::string& key, size_t count);
  // How long what the store decides (which images, layers and tags exist) may be cached:
  // as long as the store watcher drops it when the store changes; else briefly.
  double StoreTimeout() const;
  // The image ID behind a registry image key, pulling it first if need be.
  Result<std::string> Materialized(const std::string& key, RemoteAccess access);
  Result<size_t> ChainLength(const std::string& image_id);
  Result<LayerInfo> LayerOf(const std::string& chain_hex);
  // The chain ID of an image's layer at index (0 = the base).
  Result<Digest> ChainAt(const std::string& image_id, uint32_t index);
  // image.tar: built (and kept) on open; its size is measured from records alone.
  Result<std::shared_ptr<const ImageArchive>> ArchiveOf(const std::string& image_id);
  Result<uint64_t> ArchiveSize(const std::string& image_id);
  void ForgetArchive(const std::string& image_id);
  // .imagefs/: status files, each content a snapshot node of its own (see meta_dir.cc).
  std::map<std::string, std::string> StatusFiles();
  fuse_ino_t SnapshotIno(const std::string& name, std::string content);
  std::string StatusSnapshot(fuse_ino_t ino, const std::string& key);

  // Set once before serving.
  void SetWatching(bool watching) { watching_ = watching; }
  // Where the kernel caches pages of files it opened itself, a snapshot node given new
  // content must be dropped from its cache: this does so.
  void SetSnapshotInvalidator(std::function<void(fuse_ino_t)> invalidate) {
    invalidate_snapshot_ = std::move(invalidate);
  }
  // Drops what the kernel caches of a node (pages and attributes), whatever the opens.
  void SetInodeInvalidator(std::function<void(fuse_ino_t)> invalidate) {
    invalidate_inode_ = std::move(invalidate);
  }
  void SetEntryInvalidator(std::function<void(fuse_ino_t, const std::string&)> invalidate) {
    invalidate_entry_ = std::move(invalidate);
  }
  // A rootfs served while it streams (registry_stream.cc): should one of its layers fail,
  // what the kernel cached of its nodes is dropped, so that their reads reach the daemon
  // (and get EIO), and so is the image's rootfs entry (the next lookup tries again). Once
  // per rootfs; the dropping runs on a thread of its own (it may wait for reads in flight).
  void WatchStream(const std::string& image_key, const std::shared_ptr<StreamingRootfs>& rootfs);
  // Before the session goes: no more dropping.
  void StopWatchingStreams();

 private:
  Result<std::pair<VNode, const NodeKind*>> SyntheticNode(fuse_ino_t ino);

  Store& store_;
  const FsOptions& options_;
  TreeCache trees_;
  InodeTable inodes_;
  RemoteImages* remote_;
  std::shared_ptr<ImportDir> import_;
  Stats& stats_;
  time_t start_time_ = 0;
  uid_t mounter_uid_ = 0;
  gid_t mounter_gid_ = 0;
  std::atomic<bool> watching_ = false;
  std::function<void(fuse_ino_t)> invalidate_snapshot_;
  std::function<void(fuse_ino_t)> invalidate_inode_;
  std::mutex streams_mu_;
  // by image key; guarded by streams_mu_
  std::map<std::string, std::weak_ptr<StreamingRootfs>> watched_streams_;
  std::function<void(fuse_ino_t, const std::string&)> invalidate_entry_;
  // What WatchStream's hooks reach this through: null once this is gone.
  struct StreamWatch {
    std::mutex mu;
    MountNodes* nodes = nullptr;  // guarded by mu
    bool stopped = false;         // guarded by mu
  };
  const std::shared_ptr<StreamWatch> stream_watch_ = std::make_shared<StreamWatch>();
  std::mutex archives_mu_;
  std::map<std::string, std::shared_ptr<const ImageArchive>> archives_;  // guarded by archives_mu_
  std::mutex snapshots_mu_;
  std::map<fuse_ino_t, std::string> snapshots_;  // guarded by snapshots_mu_
  // name -> its current slot; guarded by snapshots_mu_
  std::map<std::string, uint32_t> snapshot_slot_;
};

// ENOENT becomes kNotFound, anything else an I/O error carrying the errno.
Error Errno(int e, std::string msg);

}  // namespace imagefs
