#include "graph/lazy_cache.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <map>

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

}  // namespace

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
  for (const std::string& id : ByLastUse()) {
    if (LayerBytes(store_) <= quota_bytes) break;
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
