// LazyCache: the images a mount pulled on demand (through registry/), as opposed to those
// loaded or pulled on purpose. Only these are evicted when the store outgrows its quota,
// least recently used first. A marker file per image holds the state:
// STORE/cache/lazy/<image id>, its mtime the last use. This is the one place that knows
// the markers and the eviction policy.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "graph/base/error.h"
#include "graph/store.h"

namespace imagefs {

class LazyCache {
 public:
  explicit LazyCache(Store& store) : store_(store) {}

  // The image was pulled on demand: it may be evicted from now on (written atomically).
  Status Mark(const std::string& image_id);
  // The image was used now (no-op for an image that is not marked).
  void Touch(const std::string& image_id);
  // The image was pulled on purpose: never evicted.
  void Unmark(const std::string& image_id);
  // Evicts marked images, least recently used first, until the layers in the store take at
  // most quota_bytes; `keep` is never evicted. Returns the IDs removed.
  std::vector<std::string> Evict(uint64_t quota_bytes, const std::string& keep);
  // Drops markers of images no longer in the store. Returns how many went.
  size_t DropStale();

 private:
  std::filesystem::path Dir() const;
  // Marked images, least recently used first.
  std::vector<std::string> ByLastUse() const;

  Store& store_;
};

}  // namespace imagefs
