#include "graph/store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <vector>

#include "graph/base/fs_util.h"
#include "graph/base/log.h"
#include "graph/store_write_lock.h"

namespace imagefs {

namespace fs = std::filesystem;
namespace {

constexpr char kStoreVersion[] = "imagefs-store 1\n";

}  // namespace

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
    GraphLog()->warn(
        "store {} is open to other users (mode {}): they can read every layer, files that "
        "images keep private included; fix it with: chmod 700 {}",
        root.string(), mode, root.string());
  }
  // A parent that others may write to (and that is not sticky) lets them swap the store.
  for (fs::path p = root.parent_path(); !p.empty(); p = p.parent_path()) {
    if (stat(p.c_str(), &st) == 0 && (st.st_mode & (S_IWGRP | S_IWOTH)) &&
        !(st.st_mode & S_ISVTX)) {
      std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
      GraphLog()->warn(
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
  if (options_.recover && flock(in_use_fd_.get(), LOCK_EX | LOCK_NB) == 0) {
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
      GraphLog()->info("recover store: removing leftover {}", entry.path().string());
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
        GraphLog()->info("recover store: removing unused layer {}", it->first);
        // Renamed away first: killed halfway, a removal must not leave a record-less layer.
        RETURN_IF_ERROR(RemoveDirAtomically(root_ / "layers" / it->first));
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
      GraphLog()->info("recover store: removing unreferenced blob {}", entry.path().string());
      RETURN_IF_ERROR(RemoveDirAtomically(entry.path()));
    }
  }
  return {};
}

Status Store::RecoverIfAlone() {
  // Converting the shared lock is not atomic (flock(2)): it is taken again either way.
  bool alone = flock(in_use_fd_.get(), LOCK_EX | LOCK_NB) == 0;
  Status recovered;
  if (alone) {
    auto lock = WriteLock::Acquire(this);
    recovered = lock ? Recover() : Status(Fail(lock.error()));
  }
  while (flock(in_use_fd_.get(), LOCK_SH) != 0) {
    if (errno != EINTR) return FailErrno("lock " + (root_ / "in-use.lock").string());
  }
  if (!alone) return Fail(Code::kBusy, "another process uses the store");
  return recovered;
}

Result<std::shared_ptr<void>> Store::PauseWriters() {
  ASSIGN_OR_RETURN(std::unique_ptr<WriteLock> lock, WriteLock::Acquire(this));
  return std::shared_ptr<void>(std::move(lock));
}

bool Store::Alone() {
  bool alone = flock(in_use_fd_.get(), LOCK_EX | LOCK_NB) == 0;
  while (flock(in_use_fd_.get(), LOCK_SH) != 0 && errno == EINTR) {
  }
  return alone;
}

Status Store::Discard(const fs::path& relative) {
  ASSIGN_OR_RETURN(auto lock, WriteLock::Acquire(this));
  fs::path path = root_ / relative;
  if (relative.is_absolute() || relative.empty() || *relative.begin() == "..")
    return Fail(Code::kInvalid, "discard: not a path in the store: " + relative.string());
  if (!fs::exists(fs::symlink_status(path))) return {};
  RETURN_IF_ERROR(RemoveDirAtomically(path));
  RETURN_IF_ERROR(BumpGeneration());
  return LoadAll();
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
      GraphLog()->warn("load store: skipping layer {}: {}", name,
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
      GraphLog()->warn("load store: skipping image {}: {}", name,
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
      GraphLog()->warn("load store: ignoring malformed {}", (root_ / "tags.json").string());
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

Result<UniqueFd> Store::LockFile(const fs::path& path, int operation,
                                 const std::function<bool()>& stopped) const {
  ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(path, O_RDWR | O_CREAT, 0600));
  // A blocked flock cannot be interrupted from another thread: a wait that may be
  // stopped polls, backing off to 50 ms (the holder is storing a whole layer).
  const bool polling = stopped && (operation & LOCK_NB) == 0;
  auto pause = std::chrono::milliseconds(1);
  while (flock(fd.get(), polling ? operation | LOCK_NB : operation) != 0) {
    if (errno == EWOULDBLOCK && polling) {
      if (stopped())
        return Fail(Code::kCancelled, "wait for lock " + path.string() + ": cancelled");
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::milliseconds(50));
      continue;
    }
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

}  // namespace imagefs
