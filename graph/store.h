// Store: the on-disk graph of layers, images and tags under one directory, and its
// in-memory indexes. Thread-safe; several processes may share one store (see
// graph/README.md, "Concurrency"). Lock order: write_mu_ -> the store's write.lock
// flock -> mu_; index_mu_ is a leaf. Per-DiffID ingest flocks are taken before write_mu_.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "graph/base/digest.h"
#include "graph/base/error.h"
#include "graph/base/unique_fd.h"
#include "graph/byte_source.h"
#include "graph/records.h"
#include "graph/reference.h"
#include "graph/tar_index.h"

namespace imagefs {

struct StoreOptions {
  // A layer whose uncompressed tar grows past this is refused (decompression bombs).
  uint64_t max_layer_bytes = uint64_t{64} << 30;
  // Whether Open may make a new store: only where the path does not exist or is an empty
  // directory. Without it, a path holding no store is kNotFound and nothing is written.
  bool create = false;
  // Whether Open, finding no other process using the store, cleans up after crashed
  // writers (Recover). `check` opens without it, to report what a crash left.
  bool recover = true;
};

// What an image registration supplies; the store derives the rest.
struct ImageSpec {
  std::string id;      // 64 hex: sha256 of config for modern images, the v1 ID for legacy
  std::string config;  // stored byte-exact
  std::optional<Digest> top_layer;
  std::optional<std::string> parent;
};

// Brings bytes of a layer's data file that are not on disk yet (a remote eStargz layer read
// chunk by chunk: fetch/chunked_remote_layer.h). Thread-safe.
class BlobFetcher {
 public:
  virtual ~BlobFetcher() = default;
  // Makes bytes [offset, offset + len) of the data file present and verified.
  virtual Status Ensure(uint64_t offset, uint64_t len) = 0;
};

// Told of a layer's tar as the store writes it (StoreDiff), so that it can be read before
// it is verified (graph/streaming_layer.h). Called on the ingesting thread; each attempt
// starts with Started.
class IngestObserver {
 public:
  virtual ~IngestObserver() = default;
  // The tar's file, open for writing; valid for the call only (dup it to keep it).
  virtual void Started(int fd) = 0;
  // Bytes [0, total) of the tar are in the file.
  virtual void Wrote(uint64_t total) = 0;
  // The stream ended: the tar's file holds all of it (not verified yet).
  virtual void Ended(uint64_t total) = 0;
};

// A layer's data: its entry index and an open descriptor of the file the index's data
// offsets point into: a stored layer's tar (invalid if the tar is missing: reads then fail),
// or a remote layer's content file with its fetcher. Immutable; shared by every tree using
// the layer.
struct LayerBlob {
  Digest diff_id;
  std::shared_ptr<const TarIndex> index;
  UniqueFd fd;
  // Null when every byte is on disk (every stored layer). Otherwise reads go through it,
  // and the tree offers no zero-copy extent (nothing may read the fd unfetched).
  std::shared_ptr<BlobFetcher> fetcher;
};

// Held by an in-flight transfer: while it lives, the layer cannot be deleted, by this
// process or any other (a shared flock on retain/<chainid>).
class RetainHandle {
 public:
  RetainHandle() = default;
  explicit RetainHandle(UniqueFd fd) : fd_(std::move(fd)) {}
  bool held() const { return fd_.valid(); }

 private:
  UniqueFd fd_;
};

class Store {
 public:
  static Result<std::unique_ptr<Store>> Open(const std::filesystem::path& root,
                                             StoreOptions options = {});
  ~Store();

  const std::filesystem::path& root() const { return root_; }

  // Layers. RegisterLayer reads an uncompressed tar from `tar`, stores it under its DiffID
  // and records the layer under its ChainID. With expected_diff_id, a layer already
  // present returns at once without reading `tar`, a concurrent registration of the same
  // DiffID (in any process) waits for the first, and a mismatch is kCorrupt.
  // *created, when given, says whether this call stored the layer (false: it existed).
  Result<LayerInfo> RegisterLayer(const std::optional<Digest>& parent, ByteSource& tar,
                                  const std::optional<Digest>& expected_diff_id = std::nullopt,
                                  bool* created = nullptr);
  // Stores a layer's tar under its DiffID without recording a layer, so that the layers of
  // one image can be ingested concurrently and recorded in chain order afterwards (with
  // RegisterLayer, which then finds the tar and reads nothing). Same locking as
  // RegisterLayer; returns false when the DiffID was stored already (tar unread). Until a
  // layer records it, the first process to open the store again removes it.
  // `observer`, when given, sees the tar as it is written. `stopped`, when given, is asked
  // while another process stores the same DiffID: once true the wait ends (kCancelled), so
  // a mount that stops does not wait for another process's download.
  Result<bool> StoreDiff(ByteSource& tar, const Digest& diff_id, IngestObserver* observer = nullptr,
                         const std::function<bool()>& stopped = {});
  Result<LayerInfo> GetLayer(const Digest& chain_id) const;
  std::vector<LayerInfo> Layers() const;
  // The chain from the base layer up to and including `top`.
  Result<std::vector<LayerInfo>> LayerChain(const Digest& top) const;
  // Number of images whose chain contains the layer.
  size_t ImagesUsingLayer(const Digest& chain_id) const;
  std::filesystem::path BlobPath(const Digest& diff_id) const;
  Result<std::shared_ptr<const TarIndex>> OpenIndex(const Digest& diff_id) const;
  // Opens (once, then cached) the layer's index and tar.
  Result<std::shared_ptr<const LayerBlob>> OpenBlob(const Digest& diff_id) const;
  // Plain copies of single files of a layer (the mount's passthrough cache): the file
  // whose data starts at `offset` in the layer's tar. Derived data, removed with the
  // layer; the directory exists only once a copy was made.
  std::filesystem::path FileCopyDir(const Digest& diff_id) const;
  // A file kept with a layer's record (derived data, such as its saved trees).
  std::filesystem::path LayerFilePath(const Digest& chain_id, std::string_view name) const {
    return root_ / "layers" / chain_id.hex() / name;
  }
  std::filesystem::path FileCopyPath(const Digest& diff_id, uint64_t offset) const;
  std::filesystem::path TmpDir() const { return root_ / "tmp"; }
  // Removes every file copy; returns the bytes freed.
  uint64_t DropFileCopies();

  // Images. RegisterImage is idempotent: an existing ID returns the stored record.
  Result<ImageInfo> RegisterImage(const ImageSpec& spec);
  Result<ImageInfo> GetImage(const std::string& id) const;
  Result<std::string> ReadConfig(const std::string& id) const;
  std::vector<ImageInfo> Images() const;
  // Images that no other image names as parent.
  std::vector<ImageInfo> Heads() const;
  std::vector<std::string> Children(const std::string& id) const;

  // Resolution. IDs accept "sha256:" and any unique prefix.
  Result<std::string> ResolveImageId(std::string_view prefix) const;
  Result<Digest> ResolveLayerId(std::string_view prefix) const;
  // A tag reference first (as Docker does), then an ID prefix.
  Result<std::string> ResolveImage(std::string_view name_or_id) const;

  // Tags, keyed by the canonical reference ("docker.io/library/busybox:latest").
  Status Tag(const Reference& ref, const std::string& image_id);
  Status Untag(const Reference& ref);
  std::map<std::string, std::string> Tags() const;
  std::vector<Reference> TagsOf(const std::string& image_id) const;

  // Deletion. An image with child images, a layer with children or users, or anything
  // retained by a transfer is refused (kBusy) with the reason. Deleting an image removes
  // its tags and then every layer of its chain that nothing uses any more. Without force,
  // an image tagged in several repositories is refused as Docker does.
  Status DeleteImage(const std::string& id, bool force = false);
  Status DeleteLayer(const Digest& chain_id);
  Result<RetainHandle> Retain(const Digest& chain_id);
  // An exclusive lock on an arbitrary key, shared by every process using the store (so
  // that, say, two loads of one image do the work once); released when the fd closes.
  Result<UniqueFd> LockKey(std::string_view key);

  // For `check --repair`: cleans up after crashed writers as Open does, when no other
  // process uses the store (else kBusy: their work in progress looks the same).
  Status RecoverIfAlone();
  // For `check --repair`: writes tags.json again with only the tags that name images in
  // the store (a tag naming an image that is gone was never shown; now it is dropped).
  Status DropDanglingTags();
  // Whether no other process has the store open (a snapshot: one may open it next).
  bool Alone();
  // For `check --repair`: removes a store entry (a path relative to the root) that no
  // record reads any more, under the write lock.
  Status Discard(const std::filesystem::path& relative);

  // Holds off every writer, of this process and of others, while the returned guard lives
  // (the write lock registrations and removals take), with the view brought up to date:
  // for `check`, whose scan must not see a registration or a removal half done. Calls
  // that write would deadlock while this process holds it.
  Result<std::shared_ptr<void>> PauseWriters();

  // Re-reads the store if another process changed it. Cheap when nothing changed.
  Status Refresh();
  // Counts every change to the store, by any process.
  uint64_t generation() const;

  // Failure injection for tests: when set, called at each named step of a registration
  // ("layer:stream", "layer:index", "layer:commit-diff", "layer:commit-record",
  // "image:write", "image:commit"); a non-ok Status aborts the registration there.
  std::function<Status(std::string_view step)> inject_failure;

 private:
  class WriteLock;
  Store(std::filesystem::path root, StoreOptions options);
  Status Init();
  Status CreateOrCheck();
  Status Recover();
  Status LoadAll();
  Status ReloadIfChanged();
  Status BumpGeneration();
  Status Step(std::string_view name);
  Result<LayerInfo> IngestLayer(const std::optional<Digest>& parent, ByteSource& tar,
                                const std::optional<Digest>& expected_diff_id, bool* created);
  Result<LayerInfo> IngestDiffLocked(ByteSource& tar, const std::optional<Digest>& expected_diff_id,
                                     IngestObserver* observer = nullptr);
  Result<LayerInfo> CommitLayerRecord(const LayerInfo& layer, bool* created);
  Status RemoveLayerLocked(const LayerInfo& layer);
  Status CollectLayersLocked(std::optional<Digest> from);
  std::string LayerBusyReasonLocked(const Digest& chain_id) const;
  Status WriteTagsLocked(const std::map<std::string, std::string>& tags);
  Status RemoveDirAtomically(const std::filesystem::path& dir);
  // A blocking operation with `stopped` polls the lock, asking it between tries.
  Result<UniqueFd> LockFile(const std::filesystem::path& path, int operation,
                            const std::function<bool()>& stopped = {}) const;

  const std::filesystem::path root_;
  const StoreOptions options_;
  UniqueFd in_use_fd_;  // shared flock held for the Store's life; exclusive during recovery
  UniqueFd write_lock_fd_;
  std::mutex write_mu_;  // serialises this process's writers before the flock

  mutable std::shared_mutex mu_;
  std::map<std::string, LayerInfo> layers_;  // by chain id hex; guarded by mu_
  std::map<std::string, ImageInfo> images_;  // by id; guarded by mu_
  std::map<std::string, std::string> tags_;  // canonical ref -> image id; guarded by mu_
  uint64_t generation_ = 0;                  // guarded by mu_

  mutable std::mutex index_mu_;
  // guarded by index_mu_
  mutable std::unordered_map<std::string, std::shared_ptr<const TarIndex>> indexes_;
  // guarded by index_mu_
  mutable std::unordered_map<std::string, std::shared_ptr<const LayerBlob>> blobs_;
};

}  // namespace imagefs
