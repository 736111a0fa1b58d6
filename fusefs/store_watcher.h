// StoreWatcher: calls back when any process commits a change to a store (the store bumps
// its `generation` file by rename, which inotify reports as IN_MOVED_TO on the store's
// directory). The mount uses it to drop what the kernel cached of the store's directories,
// so that those may be cached for long. One thread, started by Start() and stopped by the
// destructor; the callback runs on that thread.
#pragma once

#include <atomic>
#include <functional>
#include <thread>

#include "graph/base/error.h"
#include "graph/base/unique_fd.h"
#include "graph/store.h"

namespace imagefs {

class StoreWatcher {
 public:
  explicit StoreWatcher(std::function<void()> changed) : changed_(std::move(changed)) {}
  ~StoreWatcher();
  StoreWatcher(const StoreWatcher&) = delete;
  StoreWatcher& operator=(const StoreWatcher&) = delete;

  // Fails where inotify is not to be had (then nothing is cached for long).
  Status Start(const Store& store);

 private:
  void Run();

  std::function<void()> changed_;
  UniqueFd inotify_;
  UniqueFd stop_;  // eventfd: written to end the thread
  std::thread thread_;
};

}  // namespace imagefs
