// StreamingLayer: a plain (gzip, zstd, uncompressed) layer's tar read while the store writes
// it, before its DiffID is verified. As an IngestObserver it sees the tar's file grow and
// scans the members that arrived (ScanTar, prefix mode); Current() gives them as a LayerBlob
// whose reads wait for their bytes. Its outcome comes from whoever pulls it: Stored (the
// store's verified blob replaces it) or Failed (every read of it is EIO from then on, even of
// bytes read before). StreamSignal wakes a rootfs's waiters when any of its layers learns
// more. Images streamed at once share one StreamingLayer per DiffID (Share): it bumps each
// one's signal, and an image whose pull fails gives its hold back (Release) rather than
// failing a layer another image's pull still feeds. Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "graph/base/digest.h"
#include "graph/base/error.h"
#include "graph/base/unique_fd.h"
#include "graph/store.h"

namespace imagefs {

// A counter bumped whenever one of a rootfs's layers learns more.
class StreamSignal {
 public:
  uint64_t generation() const {
    std::lock_guard lock(mu_);
    return generation_;
  }
  void Bump() {
    {
      std::lock_guard lock(mu_);
      ++generation_;
    }
    cv_.notify_all();
  }
  // Waits until the generation is past `seen`, or for `timeout`.
  void WaitPast(uint64_t seen, std::chrono::milliseconds timeout) const {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return generation_ != seen; });
  }

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  uint64_t generation_ = 0;  // guarded by mu_
};

class StreamingLayer final : public IngestObserver {
 public:
  // scratch: a directory for the index snapshots (each removed once opened). The creator
  // holds the layer (as Share gives a hold) and its signal is bumped.
  StreamingLayer(Digest diff_id, std::filesystem::path scratch,
                 std::shared_ptr<StreamSignal> signal);
  ~StreamingLayer() override;

  const Digest& diff_id() const { return diff_id_; }

  void Started(int fd) override;
  void Wrote(uint64_t total) override;
  void Ended(uint64_t total) override;

  // The store holds the layer, verified: reads come from `blob` from now on.
  void Stored(std::shared_ptr<const LayerBlob> blob);
  // The layer cannot be trusted or finished (a DiffID mismatch, a cut download, a restart
  // after bytes were served, a cancelled pull). The first error stays.
  void Failed(const Error& error);

  // Told of the failure (not of a cancellation), once, on the thread that found it, with no
  // lock held; at once if the layer failed already.
  void AddFailureReporter(std::function<void(const Error&)> report);

  // Another image streams this layer too: its signal is bumped from now on and it holds the
  // layer. False when the layer failed already: that image must stream its own.
  bool Share(std::shared_ptr<StreamSignal> signal);
  // A holder's pull failed (`why`): the layer fails once no holder is left, since then nothing
  // will feed or finish it. A layer stored or failed stays so.
  void Release(const Error& why);

  struct State {
    std::shared_ptr<const LayerBlob> blob;  // the members so far
    bool indexed = false;                   // every member is known
    std::optional<Error> failed;
  };
  Result<State> Current();

  uint64_t bytes_written() const;
  size_t members() const { return member_count_.load(); }
  bool indexed() const { return indexed_flag_.load(); }
  bool failed() const;
  // Whether a member named `path` arrived among the members from *from on; *from moves past
  // them. nullopt once the members are no longer kept (stored or failed).
  std::optional<bool> HasMember(const std::string& path, size_t* from) const;

 private:
  class Arrival;
  void ScanLocked(bool whole);
  void BumpLocked();
  void FailLocked(const Error& error);
  void ReportFailure();  // the reporters, after the lock is released

  const Digest diff_id_;
  const std::filesystem::path scratch_;
  const std::shared_ptr<Arrival> arrival_;  // what reads wait on; shared with the blobs
  mutable std::mutex mu_;
  std::vector<std::shared_ptr<StreamSignal>> signals_;  // guarded by mu_
  size_t holders_ = 1;                                  // guarded by mu_
  UniqueFd fd_;                                         // the tar's file; guarded by mu_
  uint64_t resume_ = 0;                   // where the next scan starts; guarded by mu_
  std::deque<ScannedMember> members_;     // guarded by mu_; grows without moving
  std::atomic<size_t> member_count_ = 0;  // members_ is dropped once stored
  std::atomic<bool> indexed_flag_ = false;
  std::vector<std::function<void(const Error&)>> reporters_;  // guarded by mu_
  bool reported_ = false;                                     // guarded by mu_
  bool started_ = false;                                      // guarded by mu_
  bool ended_ = false;           // the download fed here reached its end; guarded by mu_
  bool indexed_ = false;         // guarded by mu_
  std::optional<Error> failed_;  // guarded by mu_
  std::shared_ptr<const LayerBlob> stored_;    // guarded by mu_
  std::shared_ptr<const LayerBlob> snapshot_;  // of members_ as it was; guarded by mu_
  bool snapshot_stale_ = true;                 // guarded by mu_
};

}  // namespace imagefs
