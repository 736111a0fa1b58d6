// Passthrough: the kernel reads large files straight from a plain copy of their bytes
// (FUSE passthrough, Linux >= 6.9), through that copy's own page cache.
//
// Why: Linux 6.18 gives a FUSE file's page cache 4 KiB folios only, where ext4 and xfs
// use folios of up to 2 MiB; a warm sequential read of a FUSE file costs about twice the
// native one, none of it in this daemon. Passthrough needs a file holding exactly the
// content from offset 0, and layer data sits inside the layer tar: so a file of at least
// min_size bytes that is opened a second time gets a copy (Store::FileCopyPath, removed
// with the layer or by `imagefs prune`), written in the background once no open of it is
// being served; opens after that pass through. Files read once (cp -a, tar -c) are never
// copied, and a first read never competes with a copy.
//
// Kernel rules kept here: an inode open in cached mode cannot be opened in passthrough
// mode (nor the reverse), and a passthrough open must not ask to keep the cache.
// libfuse 3.14 predates the protocol (7.40): the session's custom I/O adds the flag to
// the INIT reply and the backing id to OPEN replies.
#pragma once

#include <fuse_lowlevel.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>

#include "fusefs/stats.h"
#include "graph/store.h"
#include "graph/tree.h"

namespace imagefs {

class Passthrough {
 public:
  // min_size 0 turns passthrough off.
  Passthrough(Store& store, Stats& stats, uint64_t min_size);
  ~Passthrough();
  Passthrough(const Passthrough&) = delete;
  Passthrough& operator=(const Passthrough&) = delete;

  // Hooks the session's replies; call once, after fuse_session_mount.
  Status Attach(fuse_session* se);
  // From the init op: the INIT reply this thread sends next asks for passthrough.
  void OfferInInit() const;

  enum class Mode {
    kServe,         // the daemon serves the file
    kServeCounted,  // the daemon serves it; call CachedRelease when it is closed
    kPassthrough,   // the OPEN reply this thread sends next carries the backing file
                    // (the caller must not set keep_cache)
  };
  // An open of a tree file whose data is `extent`.
  Mode Open(fuse_ino_t ino, const Tree::Extent& extent, uint64_t size);
  void CachedRelease(fuse_ino_t ino, const Tree::Extent& extent, uint64_t size);

 private:
  struct Copy {
    std::string key;
    Digest diff_id;
    UniqueFd blob;
    uint64_t offset;
    uint64_t size;
  };
  static std::string KeyOf(const Tree::Extent& extent) {
    return extent.diff_id.hex() + "/" + std::to_string(extent.offset);
  }
  Mode PassthroughLocked(int backing_id);
  // The backing id of a complete copy of the extent; 0 when there is none (yet), -1 when
  // the kernel refuses backing files. Called without mu_.
  int OpenBacking(const Tree::Extent& extent, uint64_t size);
  // FUSE_DEV_IOC_BACKING_OPEN; -1 when the kernel refuses (it refuses every file alike).
  int BackingIdOf(int fd);
  void CloseBacking(int backing_id);
  // The writer's first question: would the kernel take a file of the store at all?
  bool KernelTakesBacking(int fd);
  void QueueLocked(const Tree::Extent& extent, uint64_t size);
  void Writer();
  // Whether a copy was written (false: a complete one was there already).
  Result<bool> WriteCopy(const Copy& copy);

  Store& store_;
  Stats& stats_;
  const uint64_t min_size_;
  int fuse_fd_ = -1;
  std::mutex mu_;
  bool usable_ = true;                          // guarded by mu_: off after the kernel refuses
  std::map<std::string, int> backing_;          // guarded by mu_: copy key -> backing id
  std::set<std::string> pending_, failed_;      // guarded by mu_
  std::unordered_map<fuse_ino_t, int> cached_;  // guarded by mu_: open cached-mode handles
  std::unordered_map<std::string, int> opens_;  // guarded by mu_: served opens, by copy key
  std::deque<Copy> queue_;                      // guarded by mu_
  std::condition_variable wake_;
  std::atomic<bool> stop_ = false;
  int copy_delay_ms_ = 0;  // tests only: $IMAGEFS_TEST_COPY_DELAY_MS holds each copy back
  std::optional<bool> kernel_takes_backing_;  // the writer thread's alone
  std::thread writer_;                        // started with the first copy
};

}  // namespace imagefs
