// TransferManager: downloads shared by everyone who wants them, as Docker's transfer
// manager does. A transfer is keyed (by a layer's DiffID); a second Join of a running key
// waits for the same work instead of starting another. Transfers run on their own
// threads, at most `concurrency` at a time (the rest wait for a slot). A waiter may leave
// early (its cancel flag); the transfer is cancelled only when its last waiter leaves.
// Thread-safe; mu_ guards the tables and is never held while work runs.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "graph/base/error.h"

namespace imagefs::fetch {

class Transfer {
 public:
  enum Phase : int { kWaiting, kDownloading, kVerifying, kComplete, kFailed };

  const std::string& key() const { return key_; }
  uint64_t total() const { return total_; }
  Phase phase() const { return phase_.load(); }
  void set_phase(Phase p) { phase_.store(p); }
  uint64_t done() const { return done_.load(); }
  void add_done(uint64_t n) { done_.fetch_add(n); }
  void reset_done() { done_.store(0); }
  // Set when every waiter has left; work polls it and stops.
  const std::atomic<bool>& cancelled() const { return cancelled_; }
  // Waits up to `timeout` for the work to end; true once it has.
  bool WaitFor(std::chrono::milliseconds timeout) const {
    return result_.wait_for(timeout) == std::future_status::ready;
  }

 private:
  friend class TransferManager;
  Transfer(std::string key, uint64_t total) : key_(std::move(key)), total_(total) {}

  const std::string key_;
  const uint64_t total_;
  std::atomic<Phase> phase_{kWaiting};
  std::atomic<uint64_t> done_{0};
  std::atomic<bool> cancelled_{false};
  std::atomic<bool> finished_{false};
  int waiters_ = 0;  // guarded by TransferManager::mu_
  std::shared_future<Status> result_;
  std::thread thread_;
};

class TransferManager {
 public:
  using Work = std::function<Status(Transfer&)>;

  explicit TransferManager(unsigned concurrency) : slots_(concurrency == 0 ? 1 : concurrency) {}
  ~TransferManager();  // cancels what still runs and joins every thread
  TransferManager(const TransferManager&) = delete;
  TransferManager& operator=(const TransferManager&) = delete;

  // Joins the transfer of key as one more waiter, starting work if none runs. Unslotted
  // work starts at once, whatever runs (layers served while they stream all start together).
  std::shared_ptr<Transfer> Join(const std::string& key, uint64_t total, Work work,
                                 bool slotted = true);
  // Waits for a joined transfer's result; with *cancel set, leaves early (kCancelled).
  Status Wait(const std::shared_ptr<Transfer>& transfer, const std::atomic<bool>* cancel = nullptr);
  // Transfers started so far that are still running (for status displays).
  std::vector<std::shared_ptr<Transfer>> Running() const;

 private:
  void Run(const std::shared_ptr<Transfer>& transfer, Work work, std::promise<Status> promise,
           bool slotted);
  void ReapLocked();
  void Leave(const std::shared_ptr<Transfer>& transfer);

  mutable std::mutex mu_;
  std::condition_variable slot_cv_;
  unsigned slots_;                                            // guarded by mu_
  std::map<std::string, std::shared_ptr<Transfer>> running_;  // guarded by mu_
  std::vector<std::shared_ptr<Transfer>> threads_;            // unjoined; guarded by mu_
  bool shutting_down_ = false;                                // guarded by mu_
};

}  // namespace imagefs::fetch
