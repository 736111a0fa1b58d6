#include "fetch/registry_tree.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <ctime>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <set>

#include "graph/base/fs_util.h"
#include "graph/base/log.h"
#include "graph/lazy_cache.h"
#include "graph/tree.h"
#include "graph/tree_file.h"

namespace imagefs::fetch {
namespace {

constexpr double kDigestTtl = 86400;

int64_t Now() { return static_cast<int64_t>(std::time(nullptr)); }
// The ChainID of a modern image's top layer.
Digest TopChain(const ResolvedImage& image) {
  Digest chain = ChainIdOf(nullptr, image.diff_ids[0]);
  for (size_t i = 1; i < image.diff_ids.size(); ++i) chain = ChainIdOf(&chain, image.diff_ids[i]);
  return chain;
}
// A host as Docker recognises one: has a dot or a port, or is localhost.
bool ValidHost(const std::string& name) {
  auto ref = ParseReference(name + "/x");
  return ref && ref->domain == name;
}

}  // namespace

// Feeds one pull's progress into active_ for .imagefs/pulls.json.
class RegistryTree::Observer final : public PullObserver {
 public:
  Observer(RegistryTree& tree, std::string key) : tree_(tree), key_(std::move(key)) {}
  void LayerStatus(const std::string& id, const std::string& status, uint64_t current,
                   uint64_t total) override {
    std::lock_guard lock(tree_.mu_);
    auto& layer = tree_.active_[key_].layers[id];
    layer.status = status;
    if (total != 0) layer.total = total;
    layer.current =
        status == "Download complete" || status == "Pull complete" ? layer.total : current;
  }
  void Message(const std::string&) override {}

 private:
  RegistryTree& tree_;
  std::string key_;
};

Result<RemoteEntry> RegistryTree::ResolveImage(const std::string& path, const Reference& ref,
                                               double ttl, RemoteAccess access) {
  ASSIGN_OR_RETURN(ResolvedImage image, As(access).puller.Resolve(ref, platform_));
  RemoteEntry entry{RemoteEntry::Kind::kImage, path + "@" + image.digest.str(), ttl};
  std::lock_guard lock(mu_);
  Known& known = images_[entry.key];
  if (known.image.image_id.empty()) known.image = std::move(image);
  known.anonymous_ok |= access == RemoteAccess::kAnonymous;
  lookups_[{access, path}] = {
      entry, Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(ttl * 1000))};
  return entry;
}

Result<ResolvedImage> RegistryTree::Resolved(const std::string& key, RemoteAccess access) {
  ResolvedImage image;
  {
    std::lock_guard lock(mu_);
    auto it = images_.find(key);
    if (it == images_.end()) return Fail(Code::kNotFound, key + ": not resolved");
    if (access == RemoteAccess::kMounter || it->second.anonymous_ok) return it->second.image;
    image = it->second.image;
  }
  // Known only through the mounter's credentials: ask again as anyone would, by digest.
  Reference ref = image.ref;
  ref.digest = image.digest;
  auto again = anonymous_.puller.Resolve(ref, platform_);
  if (!again) return Fail(again.error());
  std::lock_guard lock(mu_);
  images_[key].anonymous_ok = true;
  return image;
}

Result<RemoteEntry> RegistryTree::Lookup(const std::string& dir, const std::string& name,
                                         RemoteAccess access) {
  // Shells and file managers probe for hidden names: never ask a registry about them.
  if (name.empty() || name[0] == '.') return Fail(Code::kNotFound, name + ": not a registry name");
  if (closing_) return Fail(Code::kCancelled, "the mount is stopping");
  RegistryClient& client = As(access).client;
  const double ttl = client.config().tag_cache_seconds;
  if (dir.empty()) {
    if (!ValidHost(name))
      return Fail(Code::kNotFound, name + ": not a registry host (want host.domain or host:port)");
    std::lock_guard lock(mu_);
    hosts_.insert(name);
    return RemoteEntry{RemoteEntry::Kind::kDirectory, name, kDigestTtl};
  }
  const std::string path = dir + "/" + name;
  {
    std::lock_guard lock(mu_);
    if (auto it = lookups_.find({access, path});
        it != lookups_.end() && it->second.second > Clock::now()) {
      return it->second.first;
    }
  }
  size_t slash = dir.find('/');
  std::string repo = slash == std::string::npos ? "" : dir.substr(slash + 1);
  auto as_directory = [&]() -> Result<RemoteEntry> {
    if (!ParseReference(path)) return Fail(Code::kNotFound, path + ": not a valid repository name");
    RemoteEntry entry{RemoteEntry::Kind::kDirectory, path, ttl};
    std::lock_guard lock(mu_);
    lookups_[{access, path}] = {
        entry, Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(ttl * 1000))};
    return entry;
  };
  if (repo.empty()) return as_directory();
  if (name[0] == '@') {
    auto digest = Digest::Parse(name.substr(1));
    if (!digest) return Fail(Code::kNotFound, path + ": not a digest");
    ASSIGN_OR_RETURN(Reference ref, ParseReference(dir));
    ref.digest = *digest;
    auto entry = ResolveImage(path, ref, kDigestTtl, access);
    if (!entry) RecordError(ref.String(), entry.error());
    return entry;
  }
  if (!IsValidTag(name)) return as_directory();
  auto ref = ParseReference(dir + ":" + name);
  if (!ref) return as_directory();
  auto entry = ResolveImage(path, *ref, ttl, access);
  if (entry) return entry;
  if (entry.error().code != Code::kNotFound) {
    RecordError(ref->String(), entry.error());
    bool stopping = entry.error().code == Code::kCancelled && closing_;
    FetchLog()->log(stopping ? spdlog::level::info : spdlog::level::err, "resolve {}: {}",
                    ref->String(), entry.error().msg);
    return entry;
  }
  // Not a tag of dir: a longer repository path, unless dir is a repository (then the tag
  // is simply unknown) and dir/name is not one too.
  ASSIGN_OR_RETURN(Reference repo_ref, ParseReference(dir));
  auto exists = client.RepositoryExists(repo_ref);
  if (exists && *exists) {
    auto deeper = ParseReference(path);
    auto deeper_exists = deeper ? client.RepositoryExists(*deeper) : Result<bool>(false);
    if (deeper_exists && *deeper_exists) return as_directory();
    RecordError(ref->String(), entry.error());
    return entry;
  }
  return as_directory();
}

Result<RemoteImage> RegistryTree::Image(const std::string& key, RemoteAccess access) {
  ASSIGN_OR_RETURN(ResolvedImage image, Resolved(key, access));
  RemoteImage out{image.image_id, image.config, std::nullopt};
  if (!image.diff_ids.empty()) out.top_layer = TopChain(image);
  return out;
}

bool RegistryTree::IsMaterialized(const std::string& key) {
  std::string id;
  {
    std::lock_guard lock(mu_);
    auto it = images_.find(key);
    if (it == images_.end()) return false;
    id = it->second.image.image_id;
  }
  return static_cast<bool>(store_.GetImage(id));
}

Result<std::string> RegistryTree::Materialize(const std::string& key, RemoteAccess access) {
  if (closing_) return Fail(Code::kCancelled, "the mount is stopping");
  ASSIGN_OR_RETURN(ResolvedImage image, Resolved(key, access));
  std::shared_future<Result<std::string>> waiting;
  std::promise<Result<std::string>> promise;
  {
    std::lock_guard lock(mu_);
    if (auto p = pulls_.find({access, key}); p != pulls_.end()) {
      waiting = p->second;
    } else {
      pulls_[{access, key}] = promise.get_future().share();
    }
  }
  if (waiting.valid()) return waiting.get();
  // Another process may have stored it meanwhile; if the store cannot be read again, the
  // pull below finds out what is missing the hard way.
  if (Status st = store_.Refresh(); !st) FetchLog()->warn("store: {}", st.error().msg);
  bool existed = static_cast<bool>(store_.GetImage(image.image_id));
  {
    std::lock_guard lock(mu_);
    active_[key] = ActivePull{image.ref.String(), Now(), {}};
  }
  Observer observer(*this, key);
  Result<std::string> result =
      As(access).puller.Pull(image, &observer, &closing_);  // tags it, fetching what is missing
  {
    std::lock_guard lock(mu_);
    active_.erase(key);
  }
  if (!result && result.error().code == Code::kCancelled) {
    FetchLog()->info("pull {}: {}", image.ref.String(), result.error().msg);  // stopping
  } else if (!result) {
    RecordError(image.ref.String(), result.error());
    FetchLog()->error("pull {}: {}", image.ref.String(), result.error().msg);
  } else if (!existed) {
    if (Status marked = LazyCache(store_).Mark(*result); !marked)
      FetchLog()->warn("mark image {} as pulled lazily: {}", *result, marked.error().msg);
    EnforceQuota(*result);
  } else {
    LazyCache(store_).Touch(image.image_id);
  }
  {
    std::lock_guard lock(mu_);
    pulls_.erase({access, key});
  }
  promise.set_value(result);
  if (result) ServeStored(key, image);
  return result;
}

void RegistryTree::ServeStored(const std::string& key, const ResolvedImage& image) {
  std::shared_ptr<const Tree> served;
  {
    std::lock_guard lock(mu_);
    auto it = lazy_.find(key);
    if (it == lazy_.end() || !it->second.tree || it->second.from_store) return;
    served = it->second.tree;
  }
  if (image.diff_ids.empty()) return;
  // The stored tree as the mount's TreeCache maps it (saved beside the layer): one copy.
  auto stored = TreeFile::Load(store_, TreeKind::kMerged, TopChain(image));
  if (!stored) {
    Error error = stored.error();  // the store's, not the TOC's: its code is kept
    error.msg = "open the pulled rootfs: " + error.msg + "; its files are still read by Range";
    RecordError(image.ref.String(), error);
    FetchLog()->warn("serve {} from the store: {}", image.ref.String(), error.msg);
    return;
  }
  auto tree = Tree::WithDataOf(served, *stored);
  if (!tree) {
    // Chunks were verified against the TOC, and the TOC against the manifest: a TOC that
    // disagrees with its own layer's tar keeps being served as it was, and is reported.
    Error error{Code::kCorrupt, 0,
                "the rootfs served from the TOCs is not the pulled one: " + tree.error().msg +
                    "; its files are still read by Range"};
    RecordError(image.ref.String(), error);
    FetchLog()->warn("serve {} from the store: {}", image.ref.String(), error.msg);
    return;
  }
  std::lock_guard lock(mu_);
  Lazy& lazy = lazy_[key];
  if (lazy.tree != served) return;
  lazy.tree = *std::move(tree);
  lazy.from_store = true;
  FetchLog()->info("serve {} from the store: its layers are pulled", image.ref.String());
}

RegistryTree::~RegistryTree() {
  {
    std::lock_guard lock(reports_->mu);
    reports_->tree = nullptr;
  }
  std::vector<std::thread> workers;
  {
    std::lock_guard lock(mu_);
    closing_ = true;  // under mu_: no worker is added after the swap
    workers.swap(workers_);
  }
  Close();
  for (auto& layer : LazyLayers()) layer->SetErrorReporter(nullptr);  // a pull may hold one
  for (std::thread& t : workers) t.join();
}

std::vector<std::shared_ptr<ChunkedRemoteLayer>> RegistryTree::LazyLayers() {
  std::vector<std::shared_ptr<ChunkedRemoteLayer>> layers;
  std::lock_guard lock(mu_);
  for (auto& [key, lazy] : lazy_) {
    for (auto& layer : lazy.layers) {
      if (layer) layers.push_back(layer);
    }
  }
  return layers;
}

void RegistryTree::Close() {
  std::vector<std::shared_ptr<StreamingRootfs>> streams;
  {
    std::lock_guard lock(mu_);
    closing_ = true;  // under mu_: a stream opened after the snapshot below sees it
    for (auto& [key, s] : streamed_) streams.push_back(s.rootfs);
  }
  // Lookups and resolutions in flight too, which take no flag; a lazy image opened from
  // now on fails its first fetch.
  mounter_.client.Close();
  anonymous_.client.Close();
  for (auto& rootfs : streams) rootfs->Cancel();
  // Not under mu_: a report in progress holds the layer's lock and then takes mu_.
  for (auto& layer : LazyLayers()) layer->Cancel();
}

std::shared_ptr<std::mutex> RegistryTree::OpenLock(const std::string& name) {
  std::lock_guard lock(mu_);
  // A lock only the map holds guards no open: dropped now and then, so the map stays the
  // size of the opens in flight. (Copies are made only here, under mu_.)
  if (open_locks_.size() >= open_locks_sweep_at_) {
    std::erase_if(open_locks_, [](const auto& kv) { return kv.second.use_count() == 1; });
    open_locks_sweep_at_ = std::max<size_t>(64, 2 * open_locks_.size());
  }
  auto& m = open_locks_[name];
  if (!m) m = std::make_shared<std::mutex>();
  return m;
}

void RegistryTree::SetLazyState(const std::string& key, std::string state) {
  std::lock_guard lock(mu_);
  lazy_[key].state = std::move(state);
}

Result<std::shared_ptr<const Tree>> RegistryTree::ServedRootfs(const std::string& key) {
  std::lock_guard lock(mu_);
  auto it = lazy_.find(key);
  if (it == lazy_.end() || !it->second.tree)
    return Fail(Error{Code::kIo, ESTALE, key + ": no rootfs served"});
  return it->second.tree;
}

Result<std::shared_ptr<const Tree>> RegistryTree::LazyRootfs(const std::string& key,
                                                             RemoteAccess access) {
  if (!mounter_.client.config().lazy_files)
    return Fail(Code::kUnsupported, key + ": lazy files are off");
  if (closing_) return Fail(Code::kCancelled, "the mount is stopping");
  // Asked anonymously, the image is resolved anonymously first, as for a pull.
  ASSIGN_OR_RETURN(ResolvedImage image, Resolved(key, access));
  {
    std::lock_guard lock(mu_);
    if (auto it = lazy_.find(key); it != lazy_.end() && it->second.tree) return it->second.tree;
  }
  auto open_lock = OpenLock(key);
  std::lock_guard open(*open_lock);
  {
    std::lock_guard lock(mu_);
    if (auto it = lazy_.find(key); it != lazy_.end() && it->second.tree) return it->second.tree;
  }
  auto tree = OpenLazy(key, image, access);
  if (!tree && tree.error().code != Code::kUnsupported) {
    // A TOC that fails its checks: the whole-layer path still verifies every byte.
    RecordError(image.ref.String(), tree.error());
    bool stopping = tree.error().code == Code::kCancelled && closing_;
    FetchLog()->log(stopping ? spdlog::level::info : spdlog::level::warn,
                    "serve {} lazily: {}; pulling it whole", image.ref.String(), tree.error().msg);
  }
  return tree;
}

Result<std::shared_ptr<const Tree>> RegistryTree::OpenLazy(const std::string& key,
                                                           const ResolvedImage& image,
                                                           RemoteAccess access) {
  const std::string name = image.ref.String();
  if (image.schema1) return Fail(Code::kUnsupported, name + ": schema1");
  if (store_.GetImage(image.image_id)) return Fail(Code::kUnsupported, name + ": pulled already");
  RegistryClient& client = As(access).client;
  if (client.RangesRefused(image.ref))
    return Fail(Code::kUnsupported, name + ": the registry refuses ranges");
  // Layers the store holds whole are served from it; the others must be seekable.
  std::vector<std::shared_ptr<const LayerBlob>> stored(image.layers.size());
  bool remote = false;
  for (size_t i = 0; i < image.layers.size(); ++i) {
    if (auto blob = store_.OpenBlob(image.diff_ids[i])) {
      stored[i] = std::move(*blob);
      continue;
    }
    if (!ChunkedRemoteLayer::Seekable(image.layers[i]))
      return Fail(Code::kUnsupported,
                  name + ": layer " + std::to_string(i) + " is neither eStargz nor zstd:chunked");
    remote = true;
  }
  if (!remote) return Fail(Code::kUnsupported, name + ": every layer is stored");

  Lazy lazy;
  lazy.ref = name;
  lazy.state = "serving";
  std::vector<std::shared_ptr<const LayerBlob>> blobs;
  LazyCache cache(store_);
  // Every layer's footer and TOC at once: the first file waits for one round trip, not one
  // per layer.
  std::vector<std::future<Result<std::shared_ptr<ChunkedRemoteLayer>>>> opening(
      image.layers.size());
  for (size_t i = 0; i < image.layers.size(); ++i) {
    if (stored[i]) continue;
    const Descriptor& descriptor = image.layers[i];
    std::filesystem::path dir = cache.ChunkDir(image.diff_ids[i], descriptor.digest);
    opening[i] = std::async(std::launch::async, [&client, &image, descriptor, dir,
                                                 lock = OpenLock(dir.string()), gate = demand_] {
      std::lock_guard open(*lock);
      return ChunkedRemoteLayer::Open(client, image.ref, descriptor, dir, gate);
    });
  }
  for (size_t i = 0; i < image.layers.size(); ++i) {
    const Digest& diff_id = image.diff_ids[i];
    if (stored[i]) {
      blobs.push_back(std::move(stored[i]));
      lazy.layers.push_back(nullptr);
      continue;
    }
    // On an early return the futures' destructors wait for the other opens, which use
    // `image` and `client`.
    ASSIGN_OR_RETURN(std::shared_ptr<ChunkedRemoteLayer> layer, opening[i].get());
    layer->SetErrorReporter([this, name](const Error& e) { RecordError(name, e); });
    ASSIGN_OR_RETURN(auto blob, layer->Blob(diff_id));
    blobs.push_back(std::move(blob));
    lazy.layers.push_back(std::move(layer));
  }
  ASSIGN_OR_RETURN(lazy.tree, Tree::BuildMergedFrom(std::move(blobs)));
  for (const auto& layer : lazy.layers) {
    if (layer) As(access).puller.AddPartialBlob(layer);
  }
  FetchLog()->info("serve {} lazily: {} layers by Range", name, lazy.layers.size());
  std::shared_ptr<const Tree> tree = lazy.tree;
  std::lock_guard lock(mu_);
  lazy_[key] = std::move(lazy);
  if (!closing_) workers_.emplace_back([this, key, access] { Complete(key, access); });
  return tree;
}

Result<std::shared_ptr<StreamingRootfs>> RegistryTree::StreamedRootfs(const std::string& key,
                                                                      RemoteAccess access) {
  if (!mounter_.client.config().stream_unverified)
    return Fail(Code::kUnsupported, key + ": stream_unverified is off");
  if (closing_) return Fail(Code::kCancelled, "the mount is stopping");
  ASSIGN_OR_RETURN(ResolvedImage image, Resolved(key, access));
  // A stream that failed is tried again, as a pull that failed is.
  auto served = [&]() -> std::shared_ptr<StreamingRootfs> {
    std::lock_guard lock(mu_);
    auto it = streamed_.find(key);
    if (it == streamed_.end() || it->second.state.rfind("failed", 0) == 0) return nullptr;
    return it->second.rootfs;
  };
  if (auto rootfs = served()) return rootfs;
  auto open_lock = OpenLock(key);
  std::lock_guard open(*open_lock);
  if (auto rootfs = served()) return rootfs;
  return OpenStreamed(key, image, access);
}

Result<std::shared_ptr<StreamingRootfs>> RegistryTree::ServedStream(const std::string& key) {
  std::lock_guard lock(mu_);
  auto it = streamed_.find(key);
  if (it == streamed_.end()) return Fail(Error{Code::kIo, ESTALE, key + ": no rootfs streamed"});
  return it->second.rootfs;
}

Result<std::shared_ptr<StreamingRootfs>> RegistryTree::OpenStreamed(const std::string& key,
                                                                    const ResolvedImage& image,
                                                                    RemoteAccess access) {
  const std::string name = image.ref.String();
  if (image.schema1) return Fail(Code::kUnsupported, name + ": schema1");
  if (store_.GetImage(image.image_id)) return Fail(Code::kUnsupported, name + ": pulled already");
  auto signal = std::make_shared<StreamSignal>();
  std::vector<StreamingRootfs::Layer> layers;
  std::map<std::string, std::shared_ptr<StreamingLayer>> by_diff;  // a layer twice: one feed
  for (size_t i = 0; i < image.layers.size(); ++i) {
    const Digest& diff_id = image.diff_ids[i];
    if (auto blob = store_.OpenBlob(diff_id)) {
      layers.push_back({std::move(*blob), nullptr});
      continue;
    }
    if (auto same = by_diff.find(diff_id.str()); same != by_diff.end()) {
      layers.push_back({nullptr, same->second});
      continue;
    }
    // A layer another image streams now is shared: its one download feeds both.
    auto layer = As(access).puller.Streaming(diff_id);
    if (!layer || !layer->Share(signal)) {
      layer = std::make_shared<StreamingLayer>(diff_id, store_.TmpDir(), signal);
    }
    by_diff[diff_id.str()] = layer;
    layer->AddFailureReporter([reports = reports_, name](const Error& e) {
      std::lock_guard lock(reports->mu);
      if (reports->tree != nullptr) reports->tree->RecordError(name, e);
    });
    layers.push_back({nullptr, std::move(layer)});
  }
  auto rootfs = std::make_shared<StreamingRootfs>(name, std::move(layers), signal);
  // Only now may the layers be fed (a pull of another image may share one of them).
  for (const StreamingRootfs::Layer& layer : rootfs->layers()) {
    if (layer.streaming) As(access).puller.AddStreamingLayer(layer.streaming);
  }
  FetchLog()->warn("serve {} while its layers download, before their digests are checked", name);
  {
    std::lock_guard lock(mu_);
    if (!closing_) {
      streamed_[key] = Streamed{name, rootfs, "streaming"};
      workers_.emplace_back(
          [this, key, access, rootfs] { CompleteStreamed(key, access, std::move(rootfs)); });
      return rootfs;
    }
  }
  rootfs->Cancel();  // Close() ran meanwhile: nothing would feed it
  return Fail(Code::kCancelled, "the mount is stopping");
}

void RegistryTree::CompleteStreamed(const std::string& key, RemoteAccess access,
                                    std::shared_ptr<StreamingRootfs> rootfs) {
  auto id = Materialize(key, access);
  // Layers another pull or process stored meanwhile were not streamed here: the store
  // serves them now. After a failure this image gives its layers back: one no other image's
  // pull holds never will be complete.
  std::set<const StreamingLayer*> released;  // a layer twice in the image was held once
  for (const StreamingRootfs::Layer& layer : rootfs->layers()) {
    if (!layer.streaming) continue;
    if (!id) {
      if (released.insert(layer.streaming.get()).second) layer.streaming->Release(id.error());
      continue;
    }
    auto blob = store_.OpenBlob(layer.streaming->diff_id());
    if (blob) {
      layer.streaming->Stored(std::move(*blob));
    } else if (released.insert(layer.streaming.get()).second) {
      layer.streaming->Release(blob.error());  // another image's pull may still store it
    }
  }
  std::lock_guard lock(mu_);
  streamed_[key].state = id ? "complete" : "failed: " + id.error().msg;
}

void RegistryTree::Complete(const std::string& key, RemoteAccess access) {
  std::vector<std::shared_ptr<ChunkedRemoteLayer>> layers;
  {
    std::lock_guard lock(mu_);
    layers = lazy_[key].layers;
  }
  // What the producer saw read first (before .prefetch.landmark), one request per layer.
  SetLazyState(key, "prefetching");
  for (const auto& layer : layers) {
    if (layer && !closing_) (void)layer->Prefetch();  // failures are reported by the layer
  }
  if (!mounter_.client.config().lazy_complete || closing_) {
    SetLazyState(key, "serving");
    return;
  }
  SetLazyState(key, "completing");
  auto id = Materialize(key, access);
  SetLazyState(key, id ? "complete" : "failed: " + id.error().msg);
}

std::vector<std::string> RegistryTree::EnforceQuota(const std::string& keep) {
  return LazyCache(store_).Evict(mounter_.client.config().quota_bytes, keep);
}

std::vector<std::string> RegistryTree::Hosts() {
  std::lock_guard lock(mu_);
  return {hosts_.begin(), hosts_.end()};
}

}  // namespace imagefs::fetch
