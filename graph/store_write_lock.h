// Store::WriteLock, shared by the files that make up the store (store*.cc); not part of
// graph's interface.
#pragma once

#include <sys/file.h>

#include <memory>
#include <mutex>

#include "graph/store.h"

namespace imagefs {

// Serialises writers of this process (write_mu_) and of all processes (write.lock flock),
// then brings the in-memory view up to date with what other processes committed.
class Store::WriteLock {
 public:
  static Result<std::unique_ptr<WriteLock>> Acquire(Store* store) {
    auto lock = std::unique_ptr<WriteLock>(new WriteLock(store));
    while (flock(store->write_lock_fd_.get(), LOCK_EX) != 0) {
      if (errno != EINTR) return FailErrno("lock " + (store->root_ / "write.lock").string());
    }
    lock->locked_ = true;
    RETURN_IF_ERROR(store->ReloadIfChanged());
    return lock;
  }
  ~WriteLock() {
    if (locked_) flock(store_->write_lock_fd_.get(), LOCK_UN);
  }

 private:
  explicit WriteLock(Store* store) : store_(store), guard_(store->write_mu_) {}
  Store* store_;
  std::lock_guard<std::mutex> guard_;
  bool locked_ = false;
};

}  // namespace imagefs
