// LazyCache: the images a mount pulled on demand (through registry/), as opposed to those
// loaded or pulled on purpose. Only these are evicted when the store outgrows its quota,
// least recently used first. A marker file per image holds the state:
// STORE/cache/lazy/<image id>, its mtime the last use. Layers served by Range before they
// are pulled (eStargz) keep their fetched chunks in STORE/cache/chunks/<DiffID>-<blob>/:
// counted by the quota, dropped once the layer is stored (prune, eviction). This is the one
// place that knows the markers, the chunk caches and the eviction policy.
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

  // Where the fetched chunks of a layer read by Range live (blob: its compressed form).
  std::filesystem::path ChunkDir(const Digest& diff_id, const Digest& blob) const;
  // Removes the chunk caches of layers the store now holds whole (all: every one; what a
  // mount still serves is fetched again). A mount serving from a removed cache keeps its
  // open files. Returns the bytes freed.
  uint64_t DropChunks(bool all);
  // Bytes the chunk caches take on disk.
  uint64_t ChunkBytes() const;

 private:
  std::filesystem::path Dir() const;
  // Marked images, least recently used first.
  std::vector<std::string> ByLastUse() const;

  Store& store_;
};

}  // namespace imagefs
