// ImageFs: the mount's file system, as libfuse low-level operations. Tree content is
// immutable and served without locks from cached trees; the synthetic directories follow
// the store as other processes change it. Every op is noexcept at the C boundary
// (ops.cc) and replies exactly once. No lock is held across a reply.
#pragma once

#include <fuse_lowlevel.h>

#include <deque>
#include <memory>
#include <optional>
#include <set>
#include <unordered_map>

#include "fusefs/import_dir.h"
#include "fusefs/inode_table.h"
#include "fusefs/passthrough.h"
#include "fusefs/stats.h"
#include "fusefs/store_watcher.h"
#include "graph/image_archive.h"
#include "graph/remote_images.h"
#include "graph/store.h"
#include "graph/tree_cache.h"

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

class ImageFs {
 public:
  // remote, when given, serves registry/ (lazy pulls); it must outlive the ImageFs. import,
  // when given, is shared with another ImageFs (the import_only one serving uploads).
  static Result<std::unique_ptr<ImageFs>> Create(Store& store, const FsOptions& options,
                                                 RemoteImages* remote = nullptr,
                                                 std::shared_ptr<ImportDir> import = nullptr);
  std::shared_ptr<ImportDir> import_dir() const { return import_; }
  static const fuse_lowlevel_ops& Ops();
  // The watcher's thread goes first: it uses the members below.
  ~ImageFs() { watcher_.reset(); }

  // The operations (called through Ops()).
  void Init(fuse_conn_info* conn);
  void Lookup(fuse_req_t req, fuse_ino_t parent, const char* name);
  void GetAttr(fuse_req_t req, fuse_ino_t ino);
  void SetAttr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* fi);
  void ReadLink(fuse_req_t req, fuse_ino_t ino);
  void OpenDir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void ReadDir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi,
               bool plus);
  void ReleaseDir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void Open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void Create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi);
  void Read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi);
  void Write(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
             fuse_file_info* fi);
  void Flush(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void Release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void Unlink(fuse_req_t req, fuse_ino_t parent, const char* name);
  void StatFs(fuse_req_t req, fuse_ino_t ino);
  void GetXattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size);
  void ListXattr(fuse_req_t req, fuse_ino_t ino, size_t size);

  // The session, for notifications to the kernel; set once, before the loop starts.
  void SetSession(fuse_session* se) { session_ = se; }
  // Follows changes to the store (any process's) and drops what the kernel cached of the
  // store's directories, which then may be cached for long. Call before serving.
  Status WatchStore();
  // Before the session goes: no notification may follow.
  void StopWatchingStore() { watcher_.reset(); }
  Stats& stats() { return stats_; }
  Passthrough& passthrough() { return passthrough_; }

 private:
  struct Entry;
  struct Source;
  struct Handle;
  ImageFs(Store& store, const FsOptions& options)
      : store_(store),
        options_(options),
        trees_(store, options.cache_nodes),
        inodes_(options.import_only ? VKind::kImportDir : VKind::kRoot),
        passthrough_(store, stats_, options.passthrough_min) {}

  Result<std::shared_ptr<const Tree>> TreeOf(uint32_t serial);
  // The tree and node an id names (serial != 0); ESTALE for a node the tree lacks.
  Result<std::pair<std::shared_ptr<const Tree>, uint32_t>> TreeNode(fuse_ino_t ino);
  // Which credentials a request may use for registry/ (see Access()).
  RemoteAccess Access(fuse_req_t req) const;
  Result<Entry> ResolveChild(fuse_ino_t parent, const std::string& name, RemoteAccess access);
  Result<Entry> Describe(fuse_ino_t ino, RemoteAccess access);
  Result<std::vector<std::pair<std::string, fuse_ino_t>>> SyntheticChildren(const VNode& dir,
                                                                            RemoteAccess access);
  Result<std::shared_ptr<const ImageArchive>> ArchiveOf(const std::string& image_id);
  Result<Source> SourceOf(fuse_ino_t ino, RemoteAccess access);
  Status CheckBlob(const Source& source) const;
  // Loads an upload whose writer is done, once, and replies to the FLUSH or RELEASE.
  void FinishUpload(fuse_req_t req, Handle& handle);
  // The image ID behind a registry image node, pulling it first if need be.
  Result<std::string> Materialized(const std::string& key, RemoteAccess access);
  Result<size_t> ChainLength(const std::string& image_id);
  Result<LayerInfo> LayerOf(const std::string& chain_hex);
  // The chain ID of an image's layer at index (0 = the base).
  Result<Digest> ChainAt(const std::string& image_id, uint32_t index);
  Result<std::string> LinkTarget(const VNode& link, RemoteAccess access);
  fuse_ino_t TreeRoot(TreeCache::Kind kind, const std::optional<Digest>& top,
                      const std::string& owner);
  void FillTreeAttr(const Tree& tree, uint32_t serial, uint32_t node, struct stat* st) const;
  void ReplyError(fuse_req_t req, const Error& error, const char* tag);
  void WaitForImports(const VNode& dir, const char* name);
  void OnStoreChanged();
  void RefreshStore();
  std::map<std::string, std::string> StatusFiles();
  static std::string StatusFileName(const std::string& key);
  fuse_ino_t SnapshotIno(const std::string& name, std::string content);
  std::string StatusSnapshot(fuse_ino_t ino, const std::string& key);
  // Open files by fh: ids, not pointers, so that a late request finds nothing (EBADF)
  // instead of freed memory.
  uint64_t AddHandle(std::unique_ptr<Handle> handle);
  std::shared_ptr<Handle> GetHandle(uint64_t fh);

  Store& store_;
  const FsOptions options_;
  TreeCache trees_;
  InodeTable inodes_;
  Stats stats_;
  Passthrough passthrough_;  // after stats_, which it counts in
  std::shared_ptr<ImportDir> import_;
  RemoteImages* remote_ = nullptr;
  std::mutex handles_mu_;
  std::unordered_map<uint64_t, std::shared_ptr<Handle>> handles_;  // guarded by handles_mu_
  uint64_t last_fh_ = 0;                                           // guarded by handles_mu_
  std::mutex snapshots_mu_;
  std::map<fuse_ino_t, std::string> snapshots_;  // guarded by snapshots_mu_
  // name -> its current slot; guarded by snapshots_mu_
  std::map<std::string, uint32_t> snapshot_slot_;
  std::mutex archives_mu_;
  std::map<std::string, std::shared_ptr<const ImageArchive>> archives_;  // guarded by archives_mu_
  time_t start_time_ = 0;
  uid_t mounter_uid_ = 0;
  bool no_opendir_ = false;    // set once in Init, before any other op
  bool kernel_opens_ = false;  // likewise
  fuse_session* session_ = nullptr;
  std::unique_ptr<StoreWatcher> watcher_;  // set before serving; then read-only
  struct StoreView {
    std::set<std::string> images, layers;
    std::map<std::string, std::string> tags;
  };
  std::mutex seen_mu_;
  StoreView seen_;  // the store as last invalidated; guarded by seen_mu_
};

}  // namespace imagefs
