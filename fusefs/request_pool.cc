#include "fusefs/request_pool.h"

#include <thread>

#include "graph/base/log.h"

namespace imagefs {
namespace {

thread_local bool on_pool_thread = false;
// Threads beyond these end after this long without work.
constexpr size_t kWarmThreads = 2;
constexpr auto kIdleExit = std::chrono::seconds(10);

}  // namespace

bool RequestPool::OnPoolThread() { return on_pool_thread; }

bool RequestPool::Post(std::function<void()> task) {
  std::unique_lock lock(mu_);
  if (stopping_) return false;
  if (idle_ > queue_.size()) {
    queue_.push_back(std::move(task));
    wake_.notify_one();
    return true;
  }
  queue_.push_back(std::move(task));
  // Full: the task waits for a thread to come free (the loop's threads never wait).
  if (threads_ >= max_threads_) return true;
  ++threads_;
  try {
    // Detached, holding the pool: a task that outlives Stop's wait keeps it alive.
    std::thread([self = shared_from_this()] { self->Work(); }).detach();
  } catch (...) {  // system_error, bad_alloc: the caller serves the task itself
    --threads_;
    queue_.pop_back();
    FusefsLog()->warn("request pool: cannot start a thread");
    return false;
  }
  return true;
}

void RequestPool::Work() {
  on_pool_thread = true;
  std::unique_lock lock(mu_);
  for (;;) {
    if (queue_.empty()) {
      if (stopping_) break;
      ++idle_;
      bool woken = wake_.wait_for(lock, kIdleExit, [&] { return !queue_.empty() || stopping_; });
      --idle_;
      if (!woken && threads_ > kWarmThreads) break;
      continue;
    }
    std::function<void()> task = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    task();  // replies to its request; exceptions are caught by the task itself
    task = nullptr;
    lock.lock();
  }
  --threads_;
  ended_.notify_all();
}

bool RequestPool::Stop(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  stopping_ = true;
  wake_.notify_all();
  return ended_.wait_for(lock, timeout, [&] { return threads_ == 0; });
}

size_t RequestPool::threads() const {
  std::lock_guard lock(mu_);
  return threads_;
}

}  // namespace imagefs
