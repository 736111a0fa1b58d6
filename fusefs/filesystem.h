// ImageFs: the mount's file system, as libfuse low-level operations. Tree content is
// immutable and served without locks from cached trees; the synthetic directories follow
// the store as other processes change it. Every op is noexcept at the C boundary
// (ops.cc) and replies exactly once. No lock is held across a reply.
#pragma once

#include <fuse_lowlevel.h>

#include <chrono>
#include <deque>
#include <exception>
#include <memory>
#include <new>
#include <optional>
#include <set>
#include <unordered_map>

#include "fusefs/fs_options.h"
#include "fusefs/import_dir.h"
#include "fusefs/inode_table.h"
#include "fusefs/nodes/mount_nodes.h"
#include "fusefs/passthrough.h"
#include "fusefs/request_pool.h"
#include "fusefs/stats.h"
#include "fusefs/store_watcher.h"
#include "graph/remote_images.h"
#include "graph/store.h"

namespace imagefs {

class ImageFs {
 public:
  // remote, when given, serves registry/ (lazy pulls); it must outlive the ImageFs. import,
  // when given, is shared with another ImageFs (the import_only one serving uploads).
  static Result<std::unique_ptr<ImageFs>> Create(Store& store, const FsOptions& options,
                                                 RemoteImages* remote = nullptr,
                                                 std::shared_ptr<ImportDir> import = nullptr);
  std::shared_ptr<ImportDir> import_dir() const { return nodes_.import_dir(); }
  // The nodes, as the operations see them (tests call them directly).
  MountNodes& nodes() { return nodes_; }
  static const fuse_lowlevel_ops& Ops();
  // The watcher's thread goes first: it uses the members below; then requests still on
  // the pool (none, after StopRequests).
  ~ImageFs() {
    watcher_.reset();
    StopRequests();
  }

  // Runs f, answering the request with ENOMEM or EIO (logged) if it throws: nothing
  // escapes into libfuse.
  template <typename F>
  static void Guarded(fuse_req_t req, F&& f) noexcept {
    try {
      f();
    } catch (const std::bad_alloc&) {
      fuse_reply_err(req, ENOMEM);
    } catch (const std::exception& e) {
      CountException(req, e.what());
      fuse_reply_err(req, EIO);
    } catch (...) {
      CountException(req, "unknown exception");
      fuse_reply_err(req, EIO);
    }
  }
  // Whether a request on ino may wait on a registry or a download (registry/ and what it
  // serves): such requests run on requests(), not on the session's loop.
  bool MayWait(fuse_ino_t ino) const;
  RequestPool& requests() { return *requests_; }
  // After the loop ended and the remote images were closed (their waits cancelled): waits
  // for the requests on the pool, which still reply through the session.
  void StopRequests();

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
  // A node's extended attributes: a tree's, or a synthetic kind's.
  Result<std::vector<std::pair<std::string, std::string>>> XattrsOf(fuse_req_t req, fuse_ino_t ino);
  void GetXattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size);
  void ListXattr(fuse_req_t req, fuse_ino_t ino, size_t size);

  // The session, for notifications to the kernel; set once, before the loop starts.
  void SetSession(fuse_session* se) { session_ = se; }
  // Follows changes to the store (any process's) and drops what the kernel cached of the
  // store's directories, which then may be cached for long. Call before serving.
  Status WatchStore();
  // Before the session goes: no notification may follow.
  void StopWatchingStore() {
    watcher_.reset();
    nodes_.SetWatching(false);
    nodes_.StopWatchingStreams();
  }
  Stats& stats() { return stats_; }
  Passthrough& passthrough() { return passthrough_; }

 private:
  struct Handle;
  ImageFs(Store& store, const FsOptions& options, RemoteImages* remote,
          std::shared_ptr<ImportDir> import)
      : store_(store),
        options_(options),
        nodes_(store, options_, remote, std::move(import), stats_),
        passthrough_(store, stats_, options.passthrough_min) {}

  // Which credentials a request may use for registry/ (see Access()).
  RemoteAccess Access(fuse_req_t req) const;
  Status CheckBlob(const NodeSource& source) const;
  static void CountException(fuse_req_t req, const char* what);
  // Loads an upload whose writer is done, once, and replies to the FLUSH or RELEASE.
  void FinishUpload(fuse_req_t req, Handle& handle);
  void ReplyError(fuse_req_t req, const Error& error, const char* tag);
  bool IsImportDir(fuse_ino_t ino) const;
  void OnStoreChanged();
  void RefreshStore();
  // Open files by fh: ids, not pointers, so that a late request finds nothing (EBADF)
  // instead of freed memory.
  uint64_t AddHandle(std::unique_ptr<Handle> handle);
  std::shared_ptr<Handle> GetHandle(uint64_t fh);

  Store& store_;
  const FsOptions options_;
  Stats stats_;
  MountNodes nodes_;         // after options_ and stats_, which it keeps references to
  Passthrough passthrough_;  // after stats_, which it counts in
  std::mutex handles_mu_;
  std::unordered_map<uint64_t, std::shared_ptr<Handle>> handles_;  // guarded by handles_mu_
  uint64_t last_fh_ = 0;                                           // guarded by handles_mu_
  bool no_opendir_ = false;    // set once in Init, before any other op
  bool kernel_opens_ = false;  // likewise
  fuse_session* session_ = nullptr;
  std::shared_ptr<RequestPool> requests_ = RequestPool::Create();
  std::unique_ptr<StoreWatcher> watcher_;  // set before serving; then read-only
  struct StoreView {
    std::set<std::string> images, layers;
    std::map<std::string, std::string> tags;
  };
  std::mutex seen_mu_;
  StoreView seen_;  // the store as last invalidated; guarded by seen_mu_
};

}  // namespace imagefs
