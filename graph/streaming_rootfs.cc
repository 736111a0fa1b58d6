#include "graph/streaming_rootfs.h"

#include <thread>

namespace imagefs {
namespace {

// Rebuilds are at least 20 ms apart, and at least kRestPerBuild times the last build's time:
// a layer of a million members takes most of a second to rebuild, and back-to-back rebuilds
// would take a core from the download they wait for.
constexpr auto kMinRebuild = std::chrono::milliseconds(20);
constexpr int kRestPerBuild = 3;

}  // namespace

StreamingRootfs::StreamingRootfs(std::string name, std::vector<Layer> layers,
                                 std::shared_ptr<StreamSignal> signal)
    : name_(std::move(name)), layers_(std::move(layers)), signal_(std::move(signal)) {
  for (const Layer& layer : layers_) {
    if (!layer.streaming) continue;
    layer.streaming->AddFailureReporter([hooks = hooks_](const Error&) {
      std::vector<std::function<void()>> run;
      {
        std::lock_guard lock(hooks->mu);
        run = hooks->hooks;
      }
      for (const auto& hook : run) hook();
    });
  }
}

void StreamingRootfs::OnFailure(std::function<void()> hook) {
  std::lock_guard lock(hooks_->mu);
  hooks_->hooks.push_back(std::move(hook));
}

bool StreamingRootfs::Epoch::IndexedAbove(int k) const {
  for (size_t j = static_cast<size_t>(k + 1); j < indexed.size(); ++j) {
    if (!indexed[j]) return false;
  }
  return true;
}

bool StreamingRootfs::Final() const {
  bool indexed = true;
  for (const Layer& layer : layers_) {
    if (!layer.streaming) continue;
    if (layer.streaming->failed()) return true;
    indexed = indexed && layer.streaming->indexed();
  }
  return indexed;
}

bool StreamingRootfs::AnyFailed() const {
  for (const Layer& layer : layers_) {
    if (layer.streaming && layer.streaming->failed()) return true;
  }
  return false;
}

std::shared_ptr<const StreamingRootfs::Epoch> StreamingRootfs::Latest() const {
  std::lock_guard lock(latest_mu_);
  return latest_;
}

Result<std::shared_ptr<const StreamingRootfs::Epoch>> StreamingRootfs::Current() {
  for (;;) {
    std::unique_lock lock(build_mu_);
    // Read first: whatever changes during the build bumps it past this.
    const uint64_t generation = signal_->generation();
    if (epoch_ && epoch_->generation == generation) return epoch_;
    // Paced while members arrive; the final build (or one showing a failure) at once. The
    // wait is not under the lock: a caller the current epoch answers need not wait for it.
    if (epoch_ && !Final()) {
      auto next = built_at_ + std::max<std::chrono::steady_clock::duration>(
                                  kMinRebuild, kRestPerBuild * build_time_);
      if (next > std::chrono::steady_clock::now()) {
        lock.unlock();
        std::this_thread::sleep_until(next);
        continue;
      }
    }
    return Build(generation);
  }
}

Result<std::shared_ptr<const StreamingRootfs::Epoch>> StreamingRootfs::Build(uint64_t generation) {
  const auto started = std::chrono::steady_clock::now();
  auto epoch = std::make_shared<Epoch>();
  epoch->generation = generation;
  std::vector<std::shared_ptr<const LayerBlob>> blobs;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const Layer& layer = layers_[i];
    if (layer.stored) {
      blobs.push_back(layer.stored);
      epoch->indexed.push_back(true);
      continue;
    }
    ASSIGN_OR_RETURN(StreamingLayer::State state, layer.streaming->Current());
    blobs.push_back(std::move(state.blob));
    epoch->indexed.push_back(state.indexed);
    if (state.failed) {
      epoch->failed = static_cast<int>(i);
      epoch->failure = std::move(state.failed);
    }
  }
  // Complete, the tree must hold what the stored image's does (a dangling hardlink fails).
  const bool partial = epoch->failed >= 0 || !epoch->IndexedAbove(-1);
  auto tree = Tree::BuildMergedFrom(std::move(blobs), partial);
  if (!tree) return Fail(tree.error().WithContext(name_));
  epoch->tree = std::move(*tree);
  built_at_ = std::chrono::steady_clock::now();
  build_time_ = built_at_ - started;
  epoch_ = epoch;
  {
    std::lock_guard lock(latest_mu_);
    latest_ = epoch;
  }
  return std::shared_ptr<const Epoch>(std::move(epoch));
}

bool StreamingRootfs::MayDecide(const std::string& path, bool complete, Seen& seen) const {
  if (path.empty() && !complete) return true;
  bool indexed_above = true;  // every layer above layer i
  for (size_t i = layers_.size(); i-- > 0;) {
    const Layer& layer = layers_[i];
    if (layer.stored) {
      if (indexed_above && !complete) return true;  // it may hold the path
      continue;
    }
    const StreamingLayer& streaming = *layer.streaming;
    if (streaming.failed()) return true;
    if (indexed_above && !complete && !seen.has[i]) {
      std::optional<bool> has = streaming.HasMember(path, &seen.from[i]);
      seen.has[i] = !has || *has;  // members no longer kept: it may
    }
    if (indexed_above && !complete && seen.has[i]) return true;
    if (!streaming.indexed()) indexed_above = false;
  }
  return indexed_above;
}

std::optional<Result<StreamingRootfs::Node>> StreamingRootfs::Decide(const Epoch& epoch,
                                                                     const std::string& path,
                                                                     bool complete) const {
  const Tree& tree = *epoch.tree;
  std::optional<uint32_t> id = tree.Resolve(path);
  if (epoch.failed < 0 && epoch.IndexedAbove(-1)) {
    if (!id) return Fail(Code::kNotFound, name_ + ": /" + path + ": not in the image");
    return Node{epoch.tree, *id};
  }
  if (id && !complete) {
    uint32_t k = tree.node(*id).layer;
    // Settled once its own layer is indexed too: a later member of that layer with the
    // same path (or replacing a parent) would win. Until then the kernel does not cache it.
    if (k != Tree::kImplied && static_cast<int>(k) > epoch.failed &&
        epoch.IndexedAbove(static_cast<int>(k)))
      return Node{epoch.tree, *id, epoch.indexed[k]};
  }
  // The root is there from the start, even if its own attributes are not known yet.
  if (path.empty() && !complete) return Node{epoch.tree, Tree::kRoot, /*settled=*/false};
  // Nothing above the failed layer can decide it any more.
  if (epoch.failed >= 0 && (complete || epoch.IndexedAbove(epoch.failed))) {
    return Fail(Error{Code::kIo, EIO, name_ + ": /" + path + ": " + epoch.failure->msg});
  }
  return std::nullopt;
}

Result<StreamingRootfs::Node> StreamingRootfs::Wait(const std::string& path, bool complete) {
  // What the latest epoch decides stays decided (an answer not settled says so itself)
  // unless a layer failed since: then what it decides is EIO, which a new epoch shows.
  if (auto latest = Latest(); latest && !AnyFailed()) {
    if (auto answer = Decide(*latest, path, complete)) return std::move(*answer);
  }
  Seen seen{std::vector<size_t>(layers_.size()), std::vector<bool>(layers_.size())};
  for (;;) {
    // Read first: whatever arrives after the check bumps it past this.
    const uint64_t generation = signal_->generation();
    if (!MayDecide(path, complete, seen)) {
      signal_->WaitPast(generation, std::chrono::seconds(1));
      continue;
    }
    ASSIGN_OR_RETURN(std::shared_ptr<const Epoch> epoch, Current());
    if (auto answer = Decide(*epoch, path, complete)) return std::move(*answer);
    signal_->WaitPast(epoch->generation, std::chrono::seconds(1));
  }
}

Result<StreamingRootfs::Node> StreamingRootfs::Find(const std::string& path) {
  return Wait(path, false);
}

Result<StreamingRootfs::Node> StreamingRootfs::FindWhenComplete(const std::string& path) {
  return Wait(path, true);
}

bool StreamingRootfs::Complete() {
  auto epoch = Current();
  return epoch && (*epoch)->failed < 0 && (*epoch)->IndexedAbove(-1);
}

void StreamingRootfs::Cancel() {
  for (const Layer& layer : layers_) {
    if (layer.streaming)
      layer.streaming->Failed(Error{Code::kCancelled, ECANCELED, "the mount is going away"});
  }
}

}  // namespace imagefs
