#include "graph/store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <algorithm>
#include <ctime>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "graph/base/fs_util.h"
#include "graph/base/log.h"
#include "graph/base/scope_guard.h"

namespace imagefs {

namespace fs = std::filesystem;
namespace {

constexpr char kStoreVersion[] = "imagefs-store 1\n";
constexpr size_t kCopyBuffer = 1 << 20;
constexpr uint64_t kWritebackChunk = 8 << 20;

auto Log() { return Logger("graph"); }

Result<std::string> StripIdPrefix(std::string_view prefix, const char* what) {
  if (prefix.rfind("sha256:", 0) == 0) prefix.remove_prefix(7);
  if (prefix.empty() || prefix.size() > 64 ||
      prefix.find_first_not_of("0123456789abcdef") != std::string_view::npos) {
    return Fail(Code::kInvalid, std::string("invalid ") + what + " ID \"" + std::string(prefix) +
                                    "\": want a prefix of 64 lowercase hex characters");
  }
  return std::string(prefix);
}

template <typename Map>
Result<std::string> FindUniquePrefix(const Map& map, const std::string& prefix, const char* what,
                                     std::string_view shown) {
  auto it = map.lower_bound(prefix);
  if (it == map.end() || it->first.compare(0, prefix.size(), prefix) != 0) {
    return Fail(Code::kNotFound, std::string("no such ") + what + ": " + std::string(shown));
  }
  auto next = std::next(it);
  if (next != map.end() && next->first.compare(0, prefix.size(), prefix) == 0) {
    return Fail(Code::kInvalid, std::string("ambiguous ") + what + " ID prefix \"" +
                                    std::string(shown) + "\": matches " + it->first.substr(0, 12) +
                                    ", " + next->first.substr(0, 12) + ", ...");
  }
  return it->first;
}

}  // namespace

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

Store::Store(fs::path root, StoreOptions options) : root_(std::move(root)), options_(options) {}
Store::~Store() = default;

Result<std::unique_ptr<Store>> Store::Open(const fs::path& root, StoreOptions options) {
  fs::path clean = fs::absolute(root).lexically_normal();
  if (!clean.has_filename() && clean.has_parent_path() && clean != clean.root_path())
    clean = clean.parent_path();
  std::unique_ptr<Store> store(new Store(clean, options));
  if (auto st = store->Init(); !st) return Fail(st.error());  // its messages name the path
  return store;
}

namespace {

// "imagefs-store 1\n" -> "1"; anything else is not ours.
std::optional<std::string> StoreVersionOf(const std::string& marker) {
  constexpr std::string_view kPrefix = "imagefs-store ";
  if (marker.rfind(kPrefix, 0) != 0 || marker.back() != '\n') return std::nullopt;
  return marker.substr(kPrefix.size(), marker.size() - kPrefix.size() - 1);
}

// Nothing in it but what a fresh file system has (or the VERSION that another process
// making the store at this moment is writing): a directory we may make a store of.
bool IsEmptyDir(const fs::path& dir) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::string name = entry.path().filename().string();
    if (name != "lost+found" && name.rfind("VERSION.tmp-", 0) != 0) return false;
  }
  return !ec;
}

// The store holds every layer's bytes, files that images keep from other users included:
// it must be its owner's alone, as /var/lib/docker (0710) and podman's storage (0700) are.
Status CheckPrivate(const fs::path& root) {
  struct stat st;
  if (stat(root.c_str(), &st) != 0) return FailErrno("stat " + root.string());
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
  if (st.st_mode & (S_IWGRP | S_IWOTH)) {
    return Fail(Error{Code::kInvalid, EACCES,
                      root.string() + " is writable by other users (mode " + mode +
                          "): refusing to use it as a store; fix it with: chmod 700 " +
                          root.string()});
  }
  if (st.st_mode & (S_IRWXG | S_IRWXO)) {
    Log()->warn(
        "store {} is open to other users (mode {}): they can read every layer, files that "
        "images keep private included; fix it with: chmod 700 {}",
        root.string(), mode, root.string());
  }
  // A parent that others may write to (and that is not sticky) lets them swap the store.
  for (fs::path p = root.parent_path(); !p.empty(); p = p.parent_path()) {
    if (stat(p.c_str(), &st) == 0 && (st.st_mode & (S_IWGRP | S_IWOTH)) &&
        !(st.st_mode & S_ISVTX)) {
      std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
      Log()->warn(
          "store {}: its parent {} is writable by other users (mode {}), who could replace "
          "the store; fix it with: chmod go-w {}",
          root.string(), p.string(), mode, p.string());
    }
    if (p == p.root_path()) break;
  }
  return {};
}

}  // namespace

// A store is made only where it harms nothing (a new path or an empty directory) and only
// when the caller adds to it; anything else that lacks the VERSION marker is refused
// before a single file is written.
Status Store::CreateOrCheck() {
  fs::path version = root_ / "VERSION";
  struct stat st;
  if (stat(root_.c_str(), &st) != 0) {
    if (errno != ENOENT) return FailErrno(root_.string());
    if (!options_.create)
      return Fail(Error{Code::kNotFound, ENOENT, "no store at " + root_.string()});
    RETURN_IF_ERROR(MkdirAll(root_.parent_path()));
    if (::mkdir(root_.c_str(), 0700) != 0 && errno != EEXIST)
      return FailErrno("mkdir " + root_.string());
  } else if (!S_ISDIR(st.st_mode)) {
    return Fail(
        Error{Code::kInvalid, ENOTDIR, root_.string() + " is not a directory: not a store"});
  }
  auto marker = ReadFile(version, 4096);
  if (marker) {
    auto found = StoreVersionOf(*marker);
    if (!found) {
      return Fail(Code::kUnsupported, version.string() + ": not an imagefs store marker (\"" +
                                          marker->substr(0, marker->find('\n')) + "\")");
    }
    auto ours = StoreVersionOf(kStoreVersion);
    if (*found != *ours) {
      return Fail(Code::kUnsupported, root_.string() + " is a store of format version " + *found +
                                          "; this imagefs reads format version " + *ours +
                                          " (use the imagefs that made it, or another --store)");
    }
    return CheckPrivate(root_);
  }
  if (marker.error().code != Code::kNotFound) return Fail(marker.error());
  if (!IsEmptyDir(root_)) {
    if (fs::exists(version)) return CreateOrCheck();  // another process made it meanwhile
    return Fail(Error{Code::kInvalid, ENOTEMPTY,
                      root_.string() + " is not an imagefs store (it has files but no VERSION): "
                                       "choose an empty or new directory for the store"});
  }
  if (!options_.create)
    return Fail(Error{Code::kNotFound, ENOENT, "no store at " + root_.string()});
  // A new store: private to its owner, marked first so that a crash leaves a store.
  if (::chmod(root_.c_str(), 0700) != 0) return FailErrno("chmod " + root_.string());
  RETURN_IF_ERROR(WriteFileAtomic(version, kStoreVersion));
  return CheckPrivate(root_);
}

Status Store::Init() {
  RETURN_IF_ERROR(CreateOrCheck());
  for (const char* dir : {"tmp", "locks", "retain", "diffs", "layers", "images"}) {
    if (::mkdir((root_ / dir).c_str(), 0700) != 0 && errno != EEXIST)
      return FailErrno("mkdir " + (root_ / dir).string());
  }
  ASSIGN_OR_RETURN(in_use_fd_, OpenFile(root_ / "in-use.lock", O_RDWR | O_CREAT, 0600));
  ASSIGN_OR_RETURN(write_lock_fd_, OpenFile(root_ / "write.lock", O_RDWR | O_CREAT, 0600));
  // Whoever finds the store unused cleans up after crashed writers before sharing it.
  if (flock(in_use_fd_.get(), LOCK_EX | LOCK_NB) == 0) {
    Status recovered = Recover();
    flock(in_use_fd_.get(), LOCK_SH);
    RETURN_IF_ERROR(recovered);
  } else {
    while (flock(in_use_fd_.get(), LOCK_SH) != 0) {
      if (errno != EINTR) return FailErrno("lock " + (root_ / "in-use.lock").string());
    }
  }
  ASSIGN_OR_RETURN(auto lock, WriteLock::Acquire(this));
  return LoadAll();
}

Status Store::Recover() {
  std::error_code ec;
  for (const char* dir : {"tmp", "locks", "retain"}) {
    for (const auto& entry : fs::directory_iterator(root_ / dir, ec)) {
      Log()->info("recover store: removing leftover {}", entry.path().string());
      RETURN_IF_ERROR(RemoveTree(entry.path()));
    }
  }
  RETURN_IF_ERROR(LoadAll());
  // A registration that crashed after committing layers but before its image leaves
  // layers that nothing uses: remove them so that an image is all there or not at all.
  std::set<std::string> used_diffs;
  bool removed = true;
  while (removed) {
    removed = false;
    std::set<std::string> referenced;
    for (const auto& [id, image] : images_) {
      if (image.top_layer) referenced.insert(image.top_layer->hex());
    }
    for (const auto& [hex, layer] : layers_) {
      if (layer.parent) referenced.insert(layer.parent->hex());
    }
    for (auto it = layers_.begin(); it != layers_.end();) {
      if (referenced.count(it->first) == 0) {
        Log()->info("recover store: removing unused layer {}", it->first);
        RETURN_IF_ERROR(RemoveTree(root_ / "layers" / it->first));
        it = layers_.erase(it);
        removed = true;
      } else {
        ++it;
      }
    }
  }
  for (const auto& [hex, layer] : layers_) used_diffs.insert(layer.diff_id.hex());
  for (const auto& entry : fs::directory_iterator(root_ / "diffs", ec)) {
    if (used_diffs.count(entry.path().filename().string()) == 0) {
      Log()->info("recover store: removing unreferenced blob {}", entry.path().string());
      RETURN_IF_ERROR(RemoveTree(entry.path()));
    }
  }
  return {};
}

Status Store::LoadAll() {
  std::map<std::string, LayerInfo> layers;
  std::map<std::string, ImageInfo> images;
  std::map<std::string, std::string> tags;
  uint64_t generation = 0;
  if (auto g = ReadFile(root_ / "generation", 64))
    generation = std::strtoull(g->c_str(), nullptr, 10);
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root_ / "layers", ec)) {
    std::string name = entry.path().filename().string();
    auto text = ReadFile(entry.path() / "layer.json");
    auto layer = text ? DecodeLayerRecord(*text) : Result<LayerInfo>(Fail(text.error()));
    if (!layer || layer->chain_id.hex() != name) {
      Log()->warn("load store: skipping layer {}: {}", name,
                  layer ? "record names another layer" : layer.error().msg);
      continue;
    }
    layers.emplace(name, std::move(*layer));
  }
  if (ec) return Fail(Error::FromErrno("list " + (root_ / "layers").string(), ec.value()));
  for (const auto& entry : fs::directory_iterator(root_ / "images", ec)) {
    std::string name = entry.path().filename().string();
    auto text = ReadFile(entry.path() / "image.json");
    auto image = text ? DecodeImageRecord(*text) : Result<ImageInfo>(Fail(text.error()));
    if (!image || image->id != name) {
      Log()->warn("load store: skipping image {}: {}", name,
                  image ? "record names another image" : image.error().msg);
      continue;
    }
    images.emplace(name, std::move(*image));
  }
  if (ec) return Fail(Error::FromErrno("list " + (root_ / "images").string(), ec.value()));
  auto tags_text = ReadFile(root_ / "tags.json");
  if (tags_text) {
    auto j = nlohmann::json::parse(*tags_text, nullptr, false);
    if (j.is_object() && j.contains("tags") && j["tags"].is_object()) {
      for (const auto& [ref, id] : j["tags"].items()) {
        if (id.is_string() && images.count(id.get<std::string>()))
          tags[ref] = id.get<std::string>();
      }
    } else {
      Log()->warn("load store: ignoring malformed {}", (root_ / "tags.json").string());
    }
  }
  std::unique_lock lock(mu_);
  layers_ = std::move(layers);
  images_ = std::move(images);
  tags_ = std::move(tags);
  generation_ = generation;
  return {};
}

uint64_t Store::generation() const {
  std::shared_lock lock(mu_);
  return generation_;
}

Status Store::ReloadIfChanged() {
  uint64_t on_disk = 0;
  if (auto g = ReadFile(root_ / "generation", 64)) on_disk = std::strtoull(g->c_str(), nullptr, 10);
  if (on_disk == generation()) return {};
  return LoadAll();
}

Status Store::Refresh() {
  uint64_t on_disk = 0;
  if (auto g = ReadFile(root_ / "generation", 64)) on_disk = std::strtoull(g->c_str(), nullptr, 10);
  if (on_disk == generation()) return {};
  ASSIGN_OR_RETURN(auto lock, WriteLock::Acquire(this));
  return {};
}

Status Store::BumpGeneration() {
  uint64_t next;
  {
    std::unique_lock lock(mu_);
    next = ++generation_;
  }
  return WriteFileAtomic(root_ / "generation", std::to_string(next) + "\n");
}

Status Store::Step(std::string_view name) {
  if (inject_failure) return inject_failure(name);
  return {};
}

Result<UniqueFd> Store::LockFile(const fs::path& path, int operation) const {
  ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(path, O_RDWR | O_CREAT, 0600));
  while (flock(fd.get(), operation) != 0) {
    if (errno == EWOULDBLOCK) return Fail(Error{Code::kBusy, EBUSY, path.string() + " is locked"});
    if (errno != EINTR) return FailErrno("lock " + path.string());
  }
  return fd;
}

Status Store::RemoveDirAtomically(const fs::path& dir) {
  ASSIGN_OR_RETURN(TempDir trash, TempDir::Create(root_ / "tmp", "trash-"));
  fs::path dest = trash.path() / "x";
  if (::rename(dir.c_str(), dest.c_str()) != 0) return FailErrno("rename " + dir.string());
  return FsyncPath(dir.parent_path());  // trash removes itself
}

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
    Log()->error("open layer blob {}: {}", diff_id.str(), fd.error().msg);
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

Result<bool> Store::StoreDiff(ByteSource& tar, const Digest& diff_id) {
  if (fs::exists(root_ / "diffs" / diff_id.hex() / "index")) return false;
  ASSIGN_OR_RETURN(UniqueFd ingest_lock, LockFile(root_ / "locks" / diff_id.hex(), LOCK_EX));
  if (fs::exists(root_ / "diffs" / diff_id.hex() / "index")) return false;
  RETURN_IF_ERROR(IngestDiffLocked(tar, diff_id));
  return true;
}

Result<LayerInfo> Store::IngestDiffLocked(ByteSource& tar,
                                          const std::optional<Digest>& expected_diff_id) {
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
    // Start writeback as the data arrives, so that the fsync of the commit waits for the
    // last few megabytes only (a 120 MB layer's fsync alone took 0.12 s on this VM).
    if (total - flushed >= kWritebackChunk) {
      (void)sync_file_range(fd.get(), static_cast<off_t>(flushed),
                            static_cast<off_t>(total - flushed), SYNC_FILE_RANGE_WRITE);
      flushed = total;
    }
  }
  RETURN_IF_ERROR(Step("layer:stream"));
  layer.diff_id = hash.Finish();
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
  Log()->debug("register layer chain_id={} diff_id={} size={}", layer.chain_id.str(),
               layer.diff_id.str(), layer.tar_size);
  return layer;
}

// ---- Images -------------------------------------------------------------------------

Result<ImageInfo> Store::RegisterImage(const ImageSpec& spec) {
  if (!IsHex64(spec.id)) {
    return Fail(Code::kInvalid, "invalid image ID \"" + spec.id + "\": want 64 lowercase hex");
  }
  auto config = nlohmann::json::parse(spec.config, nullptr, false);
  if (config.is_discarded() || !config.is_object()) {
    return Fail(Code::kInvalid, "image " + spec.id + ": config is not a JSON object");
  }
  ImageInfo image;
  image.id = spec.id;
  image.top_layer = spec.top_layer;
  image.parent = spec.parent;
  if (config.contains("created") && config["created"].is_string()) {
    image.created = config["created"].get<std::string>();
  }
  image.registered = static_cast<int64_t>(time(nullptr));

  ASSIGN_OR_RETURN(auto lock, WriteLock::Acquire(this));
  if (auto existing = GetImage(spec.id)) return *existing;
  if (spec.parent && !GetImage(*spec.parent)) {
    return Fail(Code::kNotFound,
                "image " + spec.id + ": parent image " + *spec.parent + " is not in the store");
  }
  if (spec.top_layer) {
    auto chain = LayerChain(*spec.top_layer);
    if (!chain) {
      return Fail(Code::kNotFound,
                  "image " + spec.id + ": layer " + spec.top_layer->str() + " is not in the store");
    }
    for (const LayerInfo& l : *chain) image.size += l.content_size;
  }
  RETURN_IF_ERROR(Step("image:write"));
  ASSIGN_OR_RETURN(TempDir tmp, TempDir::Create(root_ / "tmp", "image-"));
  RETURN_IF_ERROR(WriteNewFile(tmp.path() / "config.json", spec.config));
  RETURN_IF_ERROR(WriteNewFile(tmp.path() / "image.json", EncodeImageRecord(image)));
  RETURN_IF_ERROR(Step("image:commit"));
  RETURN_IF_ERROR(tmp.Commit(root_ / "images" / spec.id));
  {
    std::unique_lock l(mu_);
    images_[spec.id] = image;
  }
  RETURN_IF_ERROR(BumpGeneration());
  Log()->info("register image id={} layer={}", spec.id,
              spec.top_layer ? spec.top_layer->str() : "none");
  return image;
}

Result<ImageInfo> Store::GetImage(const std::string& id) const {
  std::shared_lock lock(mu_);
  auto it = images_.find(id);
  if (it == images_.end()) return Fail(Code::kNotFound, "no such image: " + id);
  return it->second;
}

Result<std::string> Store::ReadConfig(const std::string& id) const {
  if (!IsHex64(id)) return Fail(Code::kInvalid, "invalid image ID \"" + id + "\"");
  return ReadFile(root_ / "images" / id / "config.json");
}

std::vector<ImageInfo> Store::Images() const {
  std::shared_lock lock(mu_);
  std::vector<ImageInfo> out;
  for (const auto& [id, image] : images_) out.push_back(image);
  return out;
}

std::vector<ImageInfo> Store::Heads() const {
  std::shared_lock lock(mu_);
  std::set<std::string> parents;
  for (const auto& [id, image] : images_) {
    if (image.parent) parents.insert(*image.parent);
  }
  std::vector<ImageInfo> out;
  for (const auto& [id, image] : images_) {
    if (!parents.count(id)) out.push_back(image);
  }
  return out;
}

std::vector<std::string> Store::Children(const std::string& id) const {
  std::shared_lock lock(mu_);
  std::vector<std::string> out;
  for (const auto& [child, image] : images_) {
    if (image.parent == id) out.push_back(child);
  }
  return out;
}

// ---- Resolution ---------------------------------------------------------------------

Result<std::string> Store::ResolveImageId(std::string_view prefix) const {
  ASSIGN_OR_RETURN(std::string hex, StripIdPrefix(prefix, "image"));
  std::shared_lock lock(mu_);
  return FindUniquePrefix(images_, hex, "image", prefix);
}

Result<Digest> Store::ResolveLayerId(std::string_view prefix) const {
  ASSIGN_OR_RETURN(std::string hex, StripIdPrefix(prefix, "layer"));
  std::shared_lock lock(mu_);
  ASSIGN_OR_RETURN(std::string found, FindUniquePrefix(layers_, hex, "layer", prefix));
  return Digest::FromHex(found);
}

Result<std::string> Store::ResolveImage(std::string_view name_or_id) const {
  if (auto ref = ParseReference(name_or_id); ref && !ref->digest) {
    std::shared_lock lock(mu_);
    auto it = tags_.find(WithDefaultTag(*ref).String());
    if (it != tags_.end()) return it->second;
  }
  if (!StripIdPrefix(name_or_id, "image")) {
    return Fail(Code::kNotFound, "no such image: " + std::string(name_or_id));
  }
  return ResolveImageId(name_or_id);
}

// ---- Tags ---------------------------------------------------------------------------

Status Store::WriteTagsLocked(const std::map<std::string, std::string>& tags) {
  nlohmann::json j = {{"tags", tags}};
  RETURN_IF_ERROR(WriteFileAtomic(root_ / "tags.json", j.dump(2) + "\n"));
  {
    std::unique_lock l(mu_);
    tags_ = tags;
  }
  return BumpGeneration();
}

Status Store::Tag(const Reference& ref, const std::string& image_id) {
  if (ref.tag.empty() || ref.digest) {
    return Fail(Code::kInvalid, "tag " + ref.String() + ": a tag needs a name:tag without digest");
  }
  ASSIGN_OR_RETURN(auto lock, WriteLock::Acquire(this));
  if (!GetImage(image_id)) return Fail(Code::kNotFound, "no such image: " + image_id);
  auto tags = Tags();
  tags[ref.String()] = image_id;
  return WriteTagsLocked(tags);
}

Status Store::Untag(const Reference& ref) {
  ASSIGN_OR_RETURN(auto lock, WriteLock::Acquire(this));
  auto tags = Tags();
  if (tags.erase(WithDefaultTag(ref).String()) == 0) {
    return Fail(Code::kNotFound, "no such tag: " + WithDefaultTag(ref).FamiliarString());
  }
  return WriteTagsLocked(tags);
}

std::map<std::string, std::string> Store::Tags() const {
  std::shared_lock lock(mu_);
  return tags_;
}

std::vector<Reference> Store::TagsOf(const std::string& image_id) const {
  std::vector<Reference> out;
  for (const auto& [name, id] : Tags()) {
    if (id != image_id) continue;
    if (auto ref = ParseReference(name)) out.push_back(*ref);
  }
  return out;
}

// ---- Deletion -----------------------------------------------------------------------

std::string Store::LayerBusyReasonLocked(const Digest& chain_id) const {
  std::shared_lock lock(mu_);
  for (const auto& [id, image] : images_) {
    if (image.top_layer == chain_id) return "image " + id.substr(0, 12) + " uses it";
  }
  for (const auto& [hex, layer] : layers_) {
    if (layer.parent == chain_id) return "layer " + hex.substr(0, 12) + " is its child";
  }
  fs::path retain = root_ / "retain" / chain_id.hex();
  if (fs::exists(retain)) {
    auto fd = LockFile(retain, LOCK_EX | LOCK_NB);
    if (!fd && fd.error().code == Code::kBusy) return "an in-flight transfer holds it";
  }
  return "";
}

Status Store::RemoveLayerLocked(const LayerInfo& layer) {
  RETURN_IF_ERROR(RemoveDirAtomically(root_ / "layers" / layer.chain_id.hex()));
  bool diff_shared = false;
  {
    std::unique_lock l(mu_);
    layers_.erase(layer.chain_id.hex());
    for (const auto& [hex, other] : layers_) diff_shared |= other.diff_id == layer.diff_id;
  }
  if (!diff_shared) {
    RETURN_IF_ERROR(RemoveDirAtomically(root_ / "diffs" / layer.diff_id.hex()));
    std::lock_guard l(index_mu_);
    indexes_.erase(layer.diff_id.hex());
    blobs_.erase(layer.diff_id.hex());
  }
  Log()->info("remove layer chain_id={}", layer.chain_id.str());
  return BumpGeneration();
}

Status Store::CollectLayersLocked(std::optional<Digest> from) {
  while (from) {
    auto layer = GetLayer(*from);
    if (!layer || !LayerBusyReasonLocked(*from).empty()) return {};
    RETURN_IF_ERROR(RemoveLayerLocked(*layer));
    from = layer->parent;
  }
  return {};
}

Status Store::DeleteImage(const std::string& id, bool force) {
  ASSIGN_OR_RETURN(auto lock, WriteLock::Acquire(this));
  ASSIGN_OR_RETURN(ImageInfo image, GetImage(id));
  auto children = Children(id);
  if (!children.empty()) {
    return Fail(Code::kBusy, "cannot remove image " + id.substr(0, 12) + ": image " +
                                 children.front().substr(0, 12) + " has it as parent");
  }
  std::set<std::string> repos;
  auto tags = Tags();
  for (auto it = tags.begin(); it != tags.end();) {
    if (it->second == id) {
      if (auto ref = ParseReference(it->first)) repos.insert(ref->Name());
      it = tags.erase(it);
    } else {
      ++it;
    }
  }
  if (!force && repos.size() > 1) {
    return Fail(Code::kBusy,
                "cannot remove image " + id.substr(0, 12) +
                    ": it is referenced in multiple repositories (untag it, or force)");
  }
  RETURN_IF_ERROR(WriteTagsLocked(tags));
  RETURN_IF_ERROR(RemoveDirAtomically(root_ / "images" / id));
  {
    std::unique_lock l(mu_);
    images_.erase(id);
  }
  RETURN_IF_ERROR(BumpGeneration());
  Log()->info("remove image id={}", id);
  return CollectLayersLocked(image.top_layer);
}

Status Store::DeleteLayer(const Digest& chain_id) {
  ASSIGN_OR_RETURN(auto lock, WriteLock::Acquire(this));
  ASSIGN_OR_RETURN(LayerInfo layer, GetLayer(chain_id));
  std::string reason = LayerBusyReasonLocked(chain_id);
  if (!reason.empty()) {
    return Fail(Code::kBusy, "cannot remove layer " + chain_id.hex().substr(0, 12) + ": " + reason);
  }
  return RemoveLayerLocked(layer);
}

Result<UniqueFd> Store::LockKey(std::string_view key) {
  return LockFile(root_ / "locks" / Sha256::Of(key).hex(), LOCK_EX);
}

Result<RetainHandle> Store::Retain(const Digest& chain_id) {
  ASSIGN_OR_RETURN(UniqueFd fd, LockFile(root_ / "retain" / chain_id.hex(), LOCK_SH));
  return RetainHandle(std::move(fd));
}

}  // namespace imagefs
