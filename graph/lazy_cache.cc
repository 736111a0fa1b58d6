#include "graph/lazy_cache.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <set>

#include "graph/base/fs_util.h"
#include "graph/base/log.h"

namespace imagefs {
namespace {

uint64_t LayerBytes(const Store& store) {
  std::map<std::string, uint64_t> diffs;  // a DiffID shared by several chains is stored once
  for (const LayerInfo& l : store.Layers()) diffs[l.diff_id.hex()] = l.tar_size;
  uint64_t total = 0;
  for (const auto& [diff, size] : diffs) total += size;
  return total;
}

// Bytes a directory's files take on disk (chunk caches are sparse).
uint64_t DiskBytes(const std::filesystem::path& dir) {
  uint64_t total = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    struct stat st;
    if (lstat(it->path().c_str(), &st) == 0 && S_ISREG(st.st_mode))
      total += static_cast<uint64_t>(st.st_blocks) * 512;
  }
  return total;
}

std::filesystem::path ChunksRoot(const Store& store) { return store.root() / "cache" / "chunks"; }

}  // namespace

std::filesystem::path LazyCache::ChunkDir(const Digest& diff_id, const Digest& blob) const {
  return ChunksRoot(store_) / (diff_id.hex() + "-" + blob.hex());
}

uint64_t LazyCache::ChunkBytes() const { return DiskBytes(ChunksRoot(store_)); }

uint64_t LazyCache::DropChunks(bool all) {
  std::set<std::string> stored;
  for (const LayerInfo& l : store_.Layers()) stored.insert(l.diff_id.hex());
  uint64_t freed = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(ChunksRoot(store_), ec)) {
    std::string name = e.path().filename().string();
    if (!all && !stored.count(name.substr(0, name.find('-')))) continue;
    uint64_t bytes = DiskBytes(e.path());
    std::error_code removed;
    std::filesystem::remove_all(e.path(), removed);
    if (removed) {
      GraphLog()->warn("remove chunk cache {}: {}", e.path().string(), removed.message());
      continue;
    }
    GraphLog()->info("drop chunk cache {} reason={} bytes={}", name, all ? "all" : "layer-stored",
                     bytes);
    freed += bytes;
  }
  return freed;
}

std::filesystem::path LazyCache::Dir() const { return store_.root() / "cache" / "lazy"; }

Status LazyCache::Mark(const std::string& image_id) {
  RETURN_IF_ERROR(MkdirAll(Dir()));
  return WriteFileAtomic(Dir() / image_id, "\n");
}

void LazyCache::Touch(const std::string& image_id) {
  (void)utimensat(AT_FDCWD, (Dir() / image_id).c_str(), nullptr, 0);  // fails when not marked
}

void LazyCache::Unmark(const std::string& image_id) {
  std::error_code ec;
  std::filesystem::remove(Dir() / image_id, ec);
}

std::vector<std::string> LazyCache::ByLastUse() const {
  std::vector<std::pair<int64_t, std::string>> marked;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(Dir(), ec)) {
    struct stat st;
    if (stat(e.path().c_str(), &st) != 0) continue;
    marked.emplace_back(st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec,
                        e.path().filename().string());
  }
  std::sort(marked.begin(), marked.end());
  std::vector<std::string> ids;
  for (auto& [mtime, id] : marked) ids.push_back(std::move(id));
  return ids;
}

std::vector<std::string> LazyCache::Evict(uint64_t quota_bytes, const std::string& keep) {
  std::vector<std::string> evicted;
  if (quota_bytes == 0) return evicted;
  // Chunks of layers stored whole are copies: they go first. The others serve images not
  // pulled yet; should they alone exceed the quota, they go too (what a mount still serves
  // is fetched again) rather than every image for no gain.
  DropChunks(/*all=*/false);
  uint64_t chunk_bytes = ChunkBytes();
  if (chunk_bytes >= quota_bytes) {
    DropChunks(/*all=*/true);
    chunk_bytes = 0;
  }
  for (const std::string& id : ByLastUse()) {
    if (LayerBytes(store_) + chunk_bytes <= quota_bytes) break;
    if (id == keep) continue;
    if (!store_.GetImage(id)) {
      Unmark(id);
      continue;
    }
    if (auto st = store_.DeleteImage(id, /*force=*/true); !st) {
      GraphLog()->debug("evict image id={} skipped: {}", id, st.error().msg);
      continue;
    }
    Unmark(id);
    GraphLog()->info("evict image id={} reason=quota quota_bytes={}", id, quota_bytes);
    evicted.push_back(id);
  }
  return evicted;
}

size_t LazyCache::DropStale() {
  size_t dropped = 0;
  for (const std::string& id : ByLastUse()) {
    if (store_.GetImage(id)) continue;
    Unmark(id);
    ++dropped;
  }
  return dropped;
}

}  // namespace imagefs
