// ImportDir: what MOUNT/import/ shows. Files written there are staged as real files in a
// directory of the store's tmp/; when the writer closes one, it is loaded with the
// graph loader. On success it vanishes; on failure NAME.error appears beside it with the
// message, until removed. Loads in progress are tracked so that lookups can wait for
// them when the writer's close() did not (kernel-handled opens). Thread-safe (the file
// system is the state; loads are the store's own transactions; mu_ guards loading_).
#pragma once

#include <sys/stat.h>

#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "graph/base/error.h"
#include "graph/base/unique_fd.h"
#include "graph/store.h"

namespace imagefs {

class ImportDir {
 public:
  static Result<std::unique_ptr<ImportDir>> Create(Store& store);
  ~ImportDir();

  std::vector<std::string> List() const;
  Result<struct stat> DirStat() const;
  Result<struct stat> Stat(const std::string& name) const;
  Result<UniqueFd> Open(const std::string& name, int flags, mode_t mode) const;
  Status Unlink(const std::string& name) const;
  Status Truncate(const std::string& name, off_t size) const;
  // Loads a closed upload; on failure leaves NAME.error and returns the error.
  Status Finish(const std::string& name);
  // Block until the load of `name` (or every load) in progress has ended.
  void WaitForLoad(const std::string& name);
  void WaitForLoads();

 private:
  ImportDir(Store& store, std::filesystem::path dir) : store_(store), dir_(std::move(dir)) {}
  Result<std::filesystem::path> PathOf(const std::string& name) const;

  Store& store_;
  std::filesystem::path dir_;
  std::mutex mu_;
  std::condition_variable loaded_;
  std::multiset<std::string> loading_;  // guarded by mu_
};

}  // namespace imagefs
