// TreeCache: merged and diff trees by ChainID, built once and kept while under a node
// budget (least recently used first out). Concurrent requests for one tree wait for a
// single build. Thread-safe; mu_ is never held while building.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "graph/tree.h"

namespace imagefs {

class TreeCache {
 public:
  using Kind = TreeKind;

  TreeCache(const Store& store, size_t max_nodes) : store_(store), max_nodes_(max_nodes) {}

  // top == nullopt (an image without layers) gives the empty tree.
  Result<std::shared_ptr<const Tree>> Get(Kind kind, const std::optional<Digest>& top);

 private:
  struct Slot {
    bool building = false;
    std::shared_ptr<const Tree> tree;
    std::list<std::string>::iterator lru;
  };
  void EvictLocked();

  const Store& store_;
  const size_t max_nodes_;
  std::mutex mu_;
  std::condition_variable built_;
  std::map<std::string, Slot> slots_;  // guarded by mu_
  std::list<std::string> lru_;         // most recent first; guarded by mu_
  size_t nodes_ = 0;                   // guarded by mu_
};

}  // namespace imagefs
