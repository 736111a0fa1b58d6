#include "graph/tree_cache.h"

#include <malloc.h>

#include "graph/tree_file.h"

namespace imagefs {

Result<std::shared_ptr<const Tree>> TreeCache::Get(Kind kind, const std::optional<Digest>& top) {
  if (kind == Kind::kRemote) return Fail(Code::kInvalid, "internal: a remote tree is not cached");
  std::string key = (kind == Kind::kMerged ? "m:" : "d:") + (top ? top->hex() : std::string());
  std::unique_lock lock(mu_);
  while (true) {
    auto it = slots_.find(key);
    if (it == slots_.end()) break;
    if (!it->second.building) {
      lru_.splice(lru_.begin(), lru_, it->second.lru);
      return it->second.tree;
    }
    built_.wait(lock);
  }
  slots_[key].building = true;
  lock.unlock();
  // A tree saved with its layer is mapped; else built once, and saved for the next mount.
  Result<std::shared_ptr<const Tree>> tree =
      top ? TreeFile::Load(store_, kind, *top) : Tree::BuildMerged(store_, std::nullopt);
  // The build's scratch (a node per entry with its child list, a hash map) is about three
  // times the frozen tree; glibc keeps freed memory for reuse unless told otherwise.
  malloc_trim(0);
  lock.lock();
  if (!tree) {
    slots_.erase(key);  // a later request tries again
  } else {
    Slot& slot = slots_[key];
    slot.building = false;
    slot.tree = *tree;
    lru_.push_front(key);
    slot.lru = lru_.begin();
    nodes_ += (*tree)->size();
    EvictLocked();
  }
  built_.notify_all();
  return tree;
}

void TreeCache::EvictLocked() {
  // The most recent tree always stays, however large.
  while (nodes_ > max_nodes_ && lru_.size() > 1) {
    auto it = slots_.find(lru_.back());
    nodes_ -= it->second.tree->size();
    slots_.erase(it);
    lru_.pop_back();
  }
}

}  // namespace imagefs
