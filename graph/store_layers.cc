// The store's layers: blobs, indexes and layer records.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "graph/base/fs_util.h"
#include "graph/base/log.h"
#include "graph/base/scope_guard.h"
#include "graph/store.h"
#include "graph/store_write_lock.h"

namespace imagefs {

namespace fs = std::filesystem;
namespace {

constexpr size_t kCopyBuffer = 1 << 20;
constexpr uint64_t kWritebackChunk = 8 << 20;
constexpr uint64_t kTarBlock = 512;
constexpr uint64_t kTarRecord = 20 * kTarBlock;  // what tar writers pad an archive to

// A tar (in fd, total bytes, hashed so far into hash) that ends with its end-of-archive
// marker but lacks the zero blocks after it that its DiffID counts: the bytes of zeros
// appended to fd that make it hash to diff_id, or 0 (nothing appended) if none do. Those
// blocks are outside the archive (no entry changes), and podman before 4.9 dropped them
// when it wrote zstd:chunked layers, keeping the DiffID of the tar it read.
Result<uint64_t> RestorePadding(int fd, uint64_t total, const Sha256& hash, const Digest& diff_id) {
  if (total < 2 * kTarBlock || total % kTarBlock != 0) return 0;
  std::string tail(2 * kTarBlock, '\0');
  RETURN_IF_ERROR(PreadAll(fd, tail.data(), tail.size(), static_cast<off_t>(total - tail.size())));
  if (tail.find_first_not_of('\0') != std::string::npos) return 0;
  Sha256 padded(hash);
  const std::string zeros(kTarBlock, '\0');
  for (uint64_t pad = kTarBlock; pad < kTarRecord; pad += kTarBlock) {
    padded.Update(zeros);
    if (padded.Peek() != diff_id) continue;
    std::string bytes(pad, '\0');
    RETURN_IF_ERROR(PwriteAll(fd, bytes.data(), bytes.size(), static_cast<off_t>(total)));
    return pad;
  }
  return 0;
}

}  // namespace

// ---- Layers -------------------------------------------------------------------------

fs::path Store::BlobPath(const Digest& diff_id) const {
  return root_ / "diffs" / diff_id.hex() / "layer.tar";
}

Result<LayerInfo> Store::GetLayer(const Digest& chain_id) const {
  std::shared_lock lock(mu_);
  auto it = layers_.find(chain_id.hex());
  if (it == layers_.end()) return Fail(Code::kNotFound, "no such layer: " + chain_id.str());
  return it->second;
}

std::vector<LayerInfo> Store::Layers() const {
  std::shared_lock lock(mu_);
  std::vector<LayerInfo> out;
  for (const auto& [hex, layer] : layers_) out.push_back(layer);
  return out;
}

Result<std::vector<LayerInfo>> Store::LayerChain(const Digest& top) const {
  std::shared_lock lock(mu_);
  std::vector<LayerInfo> chain;
  std::optional<Digest> next = top;
  while (next) {
    auto it = layers_.find(next->hex());
    if (it == layers_.end()) return Fail(Code::kCorrupt, "layer chain broken at " + next->str());
    if (chain.size() > layers_.size()) return Fail(Code::kCorrupt, "layer chain has a cycle");
    chain.push_back(it->second);
    next = it->second.parent;
  }
  std::reverse(chain.begin(), chain.end());
  return chain;
}

size_t Store::ImagesUsingLayer(const Digest& chain_id) const {
  std::shared_lock lock(mu_);
  size_t count = 0;
  for (const auto& [id, image] : images_) {
    std::optional<Digest> next = image.top_layer;
    for (size_t depth = 0; next && depth <= layers_.size(); ++depth) {
      if (*next == chain_id) {
        ++count;
        break;
      }
      auto it = layers_.find(next->hex());
      next = it == layers_.end() ? std::nullopt : it->second.parent;
    }
  }
  return count;
}

Result<std::shared_ptr<const TarIndex>> Store::OpenIndex(const Digest& diff_id) const {
  {
    std::lock_guard lock(index_mu_);
    if (auto it = indexes_.find(diff_id.hex()); it != indexes_.end()) return it->second;
  }
  ASSIGN_OR_RETURN(auto index, TarIndex::Open(root_ / "diffs" / diff_id.hex() / "index"));
  std::lock_guard lock(index_mu_);
  return indexes_.emplace(diff_id.hex(), std::move(index)).first->second;
}

fs::path Store::FileCopyDir(const Digest& diff_id) const {
  return root_ / "diffs" / diff_id.hex() / "files";
}

fs::path Store::FileCopyPath(const Digest& diff_id, uint64_t offset) const {
  return FileCopyDir(diff_id) / std::to_string(offset);
}

uint64_t Store::DropFileCopies() {
  uint64_t freed = 0;
  std::error_code ec;
  for (const auto& diff : fs::directory_iterator(root_ / "diffs", ec)) {
    fs::path dir = diff.path() / "files";
    for (const auto& f : fs::directory_iterator(dir, ec)) {
      std::error_code size_ec;
      uint64_t size = f.file_size(size_ec);
      if (fs::remove(f.path(), size_ec)) freed += size_ec ? 0 : size;
    }
    fs::remove(dir, ec);
  }
  return freed;
}

Result<std::shared_ptr<const LayerBlob>> Store::OpenBlob(const Digest& diff_id) const {
  {
    std::lock_guard lock(index_mu_);
    if (auto it = blobs_.find(diff_id.hex()); it != blobs_.end()) return it->second;
  }
  auto blob = std::make_shared<LayerBlob>();
  blob->diff_id = diff_id;
  ASSIGN_OR_RETURN(blob->index, OpenIndex(diff_id));
  // A missing tar does not fail the layer: its files fail alone, with EIO, when read.
  if (auto fd = OpenFile(BlobPath(diff_id), O_RDONLY)) {
    blob->fd = std::move(*fd);
  } else {
    GraphLog()->error("open layer blob {}: {}", diff_id.str(), fd.error().msg);
  }
  std::lock_guard lock(index_mu_);
  return blobs_.emplace(diff_id.hex(), std::move(blob)).first->second;
}

Result<LayerInfo> Store::RegisterLayer(const std::optional<Digest>& parent, ByteSource& tar,
                                       const std::optional<Digest>& expected_diff_id,
                                       bool* created) {
  if (created) *created = false;
  RETURN_IF_ERROR(Refresh());
  if (parent && !GetLayer(*parent)) {
    return Fail(Code::kNotFound,
                "register layer: parent layer " + parent->str() + " is not in the store");
  }
  UniqueFd ingest_lock;
  if (expected_diff_id) {
    Digest chain = ChainIdOf(parent ? &*parent : nullptr, *expected_diff_id);
    if (auto existing = GetLayer(chain)) return *existing;
    // One registration per DiffID at a time, across threads and processes (each open file
    // description is its own flock owner); the others wait and then find it done.
    ASSIGN_OR_RETURN(ingest_lock, LockFile(root_ / "locks" / expected_diff_id->hex(), LOCK_EX));
    RETURN_IF_ERROR(Refresh());
    if (auto existing = GetLayer(chain)) return *existing;
  }
  return IngestLayer(parent, tar, expected_diff_id, created);
}

Result<LayerInfo> Store::IngestLayer(const std::optional<Digest>& parent, ByteSource& tar,
                                     const std::optional<Digest>& expected_diff_id, bool* created) {
  ASSIGN_OR_RETURN(LayerInfo layer, IngestDiffLocked(tar, expected_diff_id));
  layer.parent = parent;
  layer.chain_id = ChainIdOf(parent ? &*parent : nullptr, layer.diff_id);
  RETURN_IF_ERROR(Step("layer:commit-record"));
  return CommitLayerRecord(layer, created);
}

Result<bool> Store::StoreDiff(ByteSource& tar, const Digest& diff_id, IngestObserver* observer,
                              const std::function<bool()>& stopped) {
  if (fs::exists(root_ / "diffs" / diff_id.hex() / "index")) return false;
  ASSIGN_OR_RETURN(UniqueFd ingest_lock,
                   LockFile(root_ / "locks" / diff_id.hex(), LOCK_EX, stopped));
  if (fs::exists(root_ / "diffs" / diff_id.hex() / "index")) return false;
  RETURN_IF_ERROR(IngestDiffLocked(tar, diff_id, observer));
  return true;
}

Result<LayerInfo> Store::IngestDiffLocked(ByteSource& tar,
                                          const std::optional<Digest>& expected_diff_id,
                                          IngestObserver* observer) {
  LayerInfo layer;
  fs::path diff_dir = expected_diff_id ? root_ / "diffs" / expected_diff_id->hex() : fs::path();
  if (expected_diff_id && fs::exists(diff_dir / "index")) {
    // Another chain stores the same DiffID already: the blob is shared, not read again.
    ASSIGN_OR_RETURN(auto index, OpenIndex(*expected_diff_id));
    layer.diff_id = *expected_diff_id;
    layer.tar_size = index->tar_size();
    layer.content_size = index->content_bytes();
    layer.entries = index->entries().size();
    return layer;
  }
  ASSIGN_OR_RETURN(TempDir tmp, TempDir::Create(root_ / "tmp", "ingest-"));
  fs::path tar_path = tmp.path() / "layer.tar";
  ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(tar_path, O_RDWR | O_CREAT | O_EXCL, 0600));
  if (observer) observer->Started(fd.get());
  Sha256 hash;
  std::vector<char> buf(kCopyBuffer);
  uint64_t total = 0, flushed = 0;
  while (true) {
    ASSIGN_OR_RETURN(size_t n, tar.Read(buf.data(), buf.size()));
    if (n == 0) break;
    total += n;
    if (total > options_.max_layer_bytes) {
      return Fail(Code::kInvalid, "layer is larger than the limit of " +
                                      std::to_string(options_.max_layer_bytes) + " bytes");
    }
    hash.Update(buf.data(), n);
    RETURN_IF_ERROR(WriteAll(fd.get(), buf.data(), n));
    if (observer) observer->Wrote(total);
    // Start writeback as the data arrives, so that the fsync of the commit waits for the
    // last few megabytes only (a 120 MB layer's fsync alone took 0.12 s on this VM).
    if (total - flushed >= kWritebackChunk) {
      (void)sync_file_range(fd.get(), static_cast<off_t>(flushed),
                            static_cast<off_t>(total - flushed), SYNC_FILE_RANGE_WRITE);
      flushed = total;
    }
  }
  if (observer) observer->Ended(total);
  RETURN_IF_ERROR(Step("layer:stream"));
  layer.diff_id = hash.Peek();
  if (expected_diff_id && layer.diff_id != *expected_diff_id) {
    ASSIGN_OR_RETURN(uint64_t padding, RestorePadding(fd.get(), total, hash, *expected_diff_id));
    if (padding > 0) {
      GraphLog()->warn(
          "layer {}: its tar lacks the last {} bytes of zero padding that its DiffID counts "
          "(zstd:chunked as podman before 4.9 wrote it, containers/storage#1771); restored",
          expected_diff_id->str(), padding);
      total += padding;
      layer.diff_id = *expected_diff_id;
    }
  }
  layer.tar_size = total;
  if (expected_diff_id && layer.diff_id != *expected_diff_id) {
    return Fail(Code::kCorrupt, "layer content does not match its DiffID: expected " +
                                    expected_diff_id->str() + ", got " + layer.diff_id.str());
  }
  diff_dir = root_ / "diffs" / layer.diff_id.hex();
  if (fs::exists(diff_dir / "index")) {
    ASSIGN_OR_RETURN(auto index, OpenIndex(layer.diff_id));  // stored already: keep that one
    layer.content_size = index->content_bytes();
    layer.entries = index->entries().size();
  } else {
    IndexSummary summary;
    if (total > 0) {
      void* map = mmap(nullptr, total, PROT_READ, MAP_SHARED, fd.get(), 0);
      if (map == MAP_FAILED) return FailErrno("mmap " + tar_path.string());
      ScopeGuard unmap([&] { munmap(map, total); });
      madvise(map, total, MADV_SEQUENTIAL);
      auto indexed = WriteTarIndex(static_cast<const char*>(map), total, tmp.path() / "index",
                                   /*drop_behind=*/true);
      if (!indexed) return Fail(indexed.error().WithContext("index layer " + layer.diff_id.str()));
      summary = *indexed;
    } else {
      ASSIGN_OR_RETURN(summary, WriteTarIndex(nullptr, 0, tmp.path() / "index"));
    }
    layer.content_size = summary.content_bytes;
    layer.entries = summary.entries;
    RETURN_IF_ERROR(Step("layer:index"));
    fd.Reset();
    chmod(tar_path.c_str(), 0400);
    RETURN_IF_ERROR(Step("layer:commit-diff"));
    if (auto st = tmp.Commit(diff_dir); !st && st.error().code != Code::kExists) {
      return Fail(st.error());
    }
  }
  return layer;
}

Result<LayerInfo> Store::CommitLayerRecord(const LayerInfo& layer, bool* created) {
  ASSIGN_OR_RETURN(auto lock, WriteLock::Acquire(this));
  if (auto existing = GetLayer(layer.chain_id)) return *existing;
  if (layer.parent && !GetLayer(*layer.parent)) {
    return Fail(Code::kNotFound, "parent layer " + layer.parent->str() + " was removed");
  }
  if (!fs::exists(root_ / "diffs" / layer.diff_id.hex() / "index")) {
    return Fail(Code::kNotFound, "layer blob " + layer.diff_id.str() + " was removed");
  }
  ASSIGN_OR_RETURN(TempDir tmp, TempDir::Create(root_ / "tmp", "layer-"));
  RETURN_IF_ERROR(WriteNewFile(tmp.path() / "layer.json", EncodeLayerRecord(layer)));
  RETURN_IF_ERROR(tmp.Commit(root_ / "layers" / layer.chain_id.hex()));
  {
    std::unique_lock l(mu_);
    layers_[layer.chain_id.hex()] = layer;
  }
  if (created) *created = true;
  RETURN_IF_ERROR(BumpGeneration());
  GraphLog()->debug("register layer chain_id={} diff_id={} size={}", layer.chain_id.str(),
                    layer.diff_id.str(), layer.tar_size);
  return layer;
}

}  // namespace imagefs
