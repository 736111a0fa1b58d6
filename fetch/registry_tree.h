// RegistryTree: the RemoteImages behind the mount's registry/ directory. A lookup of a tag
// fetches its manifest and config only; Materialize pulls the missing layers (one pull
// per image however many processes wait). Tag lookups are trusted for
// FetchConfig::tag_cache_seconds, digests for good. Images pulled here are marked in the
// store's LazyCache, the only ones its quota evicts. Requests come with a RemoteAccess: the
// mounter's go through a client holding the mounter's credentials, everyone else's through one
// holding none, and what one learned is not shown to the other unless it holds for both.
// An image whose missing layers are all eStargz or zstd:chunked is served before it is
// pulled (LazyRootfs): each layer read by Range through a ChunkedRemoteLayer whose chunks
// live in the store's cache, the producer's prefetch list fetched first, and then
// (lazy_complete) the image pulled in the background through the same Puller, which
// completes each blob from the fetched chunks, each request once reads have gone quiet
// (demand_). With stream_unverified, an image LazyRootfs cannot serve is served while its
// pull streams its layers (StreamedRootfs: graph/streaming_rootfs.h).
// Thread-safe: mu_ guards every table and is never held across network I/O.
#pragma once

#include <chrono>
#include <deque>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "fetch/chunked_remote_layer.h"
#include "fetch/puller.h"
#include "graph/remote_images.h"
#include "graph/streaming_rootfs.h"

namespace imagefs::fetch {

// A way to talk to registries: with the mounter's credentials, or anonymously.
struct RegistryIdentity {
  RegistryClient& client;
  Puller& puller;
};

class RegistryTree final : public RemoteImages {
 public:
  RegistryTree(Store& store, RegistryIdentity mounter, RegistryIdentity anonymous,
               std::optional<Platform> platform)
      : store_(store), mounter_(mounter), anonymous_(anonymous), platform_(std::move(platform)) {}
  // Cancels the background work and waits for it.
  ~RegistryTree() override;

  Result<RemoteEntry> Lookup(const std::string& dir, const std::string& name,
                             RemoteAccess access) override;
  Result<RemoteImage> Image(const std::string& key, RemoteAccess access) override;
  Result<std::string> Materialize(const std::string& key, RemoteAccess access) override;
  bool IsMaterialized(const std::string& key) override;
  Result<std::shared_ptr<const Tree>> LazyRootfs(const std::string& key,
                                                 RemoteAccess access) override;
  Result<std::shared_ptr<const Tree>> ServedRootfs(const std::string& key) override;
  Result<std::shared_ptr<StreamingRootfs>> StreamedRootfs(const std::string& key,
                                                          RemoteAccess access) override;
  Result<std::shared_ptr<StreamingRootfs>> ServedStream(const std::string& key) override;
  std::vector<std::string> Hosts() override;
  std::map<std::string, std::string> StatusFiles() override;
  void Close() override;

  // Evicts least recently used lazy images until the store fits quota_bytes; `keep` is
  // never evicted. Returns the IDs removed.
  std::vector<std::string> EnforceQuota(const std::string& keep);

 private:
  struct LayerState {
    std::string status;
    uint64_t current = 0, total = 0;
  };
  struct ActivePull {
    std::string ref;
    int64_t started = 0;
    std::map<std::string, LayerState> layers;
  };
  class Observer;
  using Clock = std::chrono::steady_clock;

  // An image served before it is pulled.
  struct Lazy {
    std::string ref;
    std::shared_ptr<const Tree> tree;
    std::vector<std::shared_ptr<ChunkedRemoteLayer>> layers;  // null: served from the store
    std::string state;        // "serving", "prefetching", "completing", "complete", "failed: …"
    bool from_store = false;  // tree reads its files from the stored layers (ServeStored)
  };
  struct Known {
    ResolvedImage image;
    bool anonymous_ok = false;  // resolved without credentials too: anyone may see it
  };
  const RegistryIdentity& As(RemoteAccess access) const {
    return access == RemoteAccess::kMounter ? mounter_ : anonymous_;
  }
  Result<RemoteEntry> ResolveImage(const std::string& path, const Reference& ref, double ttl,
                                   RemoteAccess access);
  // The image behind key, resolved again without credentials first for kAnonymous.
  Result<ResolvedImage> Resolved(const std::string& key, RemoteAccess access);
  // Into errors.json, except kCancelled once the mount is stopping.
  void RecordError(const std::string& what, const Error& error);
  Result<std::shared_ptr<const Tree>> OpenLazy(const std::string& key, const ResolvedImage& image,
                                               RemoteAccess access);
  // Prefetches, then pulls (lazy_complete); runs on a worker thread.
  void Complete(const std::string& key, RemoteAccess access);
  Result<std::shared_ptr<StreamingRootfs>> OpenStreamed(const std::string& key,
                                                        const ResolvedImage& image,
                                                        RemoteAccess access);
  // Pulls an image served while it streams, then settles its layers; on a worker thread.
  void CompleteStreamed(const std::string& key, RemoteAccess access,
                        std::shared_ptr<StreamingRootfs> rootfs);
  // Once a lazily served image is pulled, its served tree keeps its nodes and reads the
  // stored layers: no chunk is fetched again, and splice and passthrough apply.
  void ServeStored(const std::string& key, const ResolvedImage& image);
  void SetLazyState(const std::string& key, std::string state);
  std::vector<std::shared_ptr<ChunkedRemoteLayer>> LazyLayers();
  std::shared_ptr<std::mutex> OpenLock(const std::string& name);

  Store& store_;
  const RegistryIdentity mounter_;
  const RegistryIdentity anonymous_;
  const std::optional<Platform> platform_;
  std::mutex mu_;
  std::map<std::string, Known> images_;  // by key; guarded by mu_
  // Both by (access, path or key): one user's answer is not another's.
  // guarded by mu_
  std::map<std::pair<RemoteAccess, std::string>, std::pair<RemoteEntry, Clock::time_point>>
      lookups_;
  // guarded by mu_
  std::map<std::pair<RemoteAccess, std::string>, std::shared_future<Result<std::string>>> pulls_;
  std::map<std::string, ActivePull> active_;  // by key; guarded by mu_
  std::set<std::string> hosts_;               // guarded by mu_
  std::deque<std::string> errors_;            // JSON objects, newest last; guarded by mu_
  std::map<std::string, Lazy> lazy_;          // by key; guarded by mu_
  // Images served while their plain layers stream (stream_unverified), by key.
  struct Streamed {
    std::string ref;
    std::shared_ptr<StreamingRootfs> rootfs;
    std::string state;  // "streaming", "complete", "failed: …"
  };
  std::map<std::string, Streamed> streamed_;  // guarded by mu_
  // Opens (held across I/O; taken before mu_): one per image key, and one per layer's chunk
  // cache directory, whose TOC two images sharing the layer would otherwise both fetch and
  // write. (Their two ChunkedRemoteLayers then share its content file: same bytes.)
  std::map<std::string, std::shared_ptr<std::mutex>> open_locks_;  // guarded by mu_
  size_t open_locks_sweep_at_ = 64;                                // guarded by mu_
  // Completions wait for reads to go quiet for 0.5 s (5 s at most): the first files first.
  const std::shared_ptr<DemandGate> demand_ =
      std::make_shared<DemandGate>(std::chrono::milliseconds(500), std::chrono::milliseconds(5000));
  std::vector<std::thread> workers_;  // guarded by mu_
  // Where streaming layers report failures: they may outlive this (a transfer holds them).
  struct Reports {
    explicit Reports(RegistryTree* t) : tree(t) {}
    std::mutex mu;
    RegistryTree* tree;  // guarded by mu; null once this is going
  };
  const std::shared_ptr<Reports> reports_ = std::make_shared<Reports>(this);
  std::atomic<bool> closing_{false};
};

}  // namespace imagefs::fetch
