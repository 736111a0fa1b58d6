// RequestPool: threads for requests that may wait on a registry or a download (registry/,
// a rootfs served while it streams, a lazily fetched file), so that they never hold the
// session loop's threads. The loop has 16: sixteen processes waiting on one slow image
// (absent names, listings, a pull) used to stall the whole mount, images/ included.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>

namespace imagefs {

class RequestPool : public std::enable_shared_from_this<RequestPool> {
 public:
  static std::shared_ptr<RequestPool> Create(size_t max_threads = 256) {
    return std::shared_ptr<RequestPool>(new RequestPool(max_threads));
  }
  // Runs task on a pool thread; with every thread busy, once one comes free. False when the
  // pool stopped or no thread can be started: the caller runs the task itself.
  bool Post(std::function<void()> task);
  // Whether the calling thread is one of a pool's.
  static bool OnPoolThread();
  // Takes no more tasks and waits, up to timeout, for the posted ones to end. False when
  // some still run (the pool outlives them: each holds a reference).
  bool Stop(std::chrono::milliseconds timeout);
  size_t threads() const;

 private:
  explicit RequestPool(size_t max_threads) : max_threads_(max_threads) {}
  void Work();

  const size_t max_threads_;
  mutable std::mutex mu_;
  std::condition_variable wake_;             // a task queued, or the pool stopping
  std::condition_variable ended_;            // a thread exited
  std::deque<std::function<void()>> queue_;  // guarded by mu_, as are the fields below
  size_t threads_ = 0;
  size_t idle_ = 0;
  bool stopping_ = false;
};

}  // namespace imagefs
