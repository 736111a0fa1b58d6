// StreamingRootfs: the merged rootfs of an image whose plain layers are still arriving
// (StreamingLayer), answering each question once nothing still to come can change it:
// - a path, once its entry arrived in layer k and every layer above k is indexed completely
//   (no later whiteout, opaque marker or replacement can hide it);
// - a path's absence, a directory's listing, an implied directory, once every layer is;
// - the root at once (its attributes may change until decided: Node::settled).
// Answers are nodes of an epoch: the merged tree of the members known so far, rebuilt as
// more arrive (paced: 20 ms apart, or 3x the last build's time if longer), whose file reads
// wait for their bytes. A layer that fails makes every answer it could change EIO. Thread-safe.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "graph/streaming_layer.h"
#include "graph/tree.h"

namespace imagefs {

class StreamingRootfs {
 public:
  struct Layer {
    std::shared_ptr<const LayerBlob> stored;    // a layer the store held already, or
    std::shared_ptr<StreamingLayer> streaming;  // one arriving
  };
  struct Node {
    std::shared_ptr<const Tree> tree;
    uint32_t id = 0;
    // false: its own layer is still arriving (a later member of the same path would win), or
    // the root before the layer listing it arrived: what it is may still change.
    bool settled = true;
  };

  // name: for errors (the image's reference). layers: base first (it adds a failure
  // reporter to each streaming one, which other images may share).
  StreamingRootfs(std::string name, std::vector<Layer> layers,
                  std::shared_ptr<StreamSignal> signal);

  // The node at `path` ("" is the root; symlinks not followed), once decided: kNotFound
  // when it is decided absent, EIO when a failed layer keeps it from being decided.
  Result<Node> Find(const std::string& path);
  // The same once every layer is indexed: what a listing of the node may show.
  Result<Node> FindWhenComplete(const std::string& path);
  // Whether every layer is indexed and none failed.
  bool Complete();
  // Fails every layer still arriving (the mount is going away): waiters get EIO.
  void Cancel();
  // Called, on the thread that found it, when a layer fails (not when cancelled): what was
  // read of it must be dropped from caches.
  void OnFailure(std::function<void()> hook);

  const std::string& name() const { return name_; }
  const std::vector<Layer>& layers() const { return layers_; }

 private:
  struct Epoch {
    std::shared_ptr<const Tree> tree;
    std::vector<bool> indexed;
    int failed = -1;  // the highest failed layer
    std::optional<Error> failure;
    uint64_t generation = 0;
    bool IndexedAbove(int k) const;
  };
  // The epoch of the current generation, built if need be (paced while members arrive).
  Result<std::shared_ptr<const Epoch>> Current();
  Result<std::shared_ptr<const Epoch>> Build(uint64_t generation);  // build_mu_ held
  std::shared_ptr<const Epoch> Latest() const;  // the last built, without waiting for a build
  // Every layer indexed, or one failed: what an epoch built now decides is final.
  bool Final() const;
  bool AnyFailed() const;
  // The answer the epoch gives for `path`, if it decides it.
  std::optional<Result<Node>> Decide(const Epoch& epoch, const std::string& path,
                                     bool complete) const;
  Result<Node> Wait(const std::string& path, bool complete);
  // What one waiter learnt of each layer's members so far.
  struct Seen {
    std::vector<size_t> from;  // members looked at
    std::vector<bool> has;     // the path is among them (or may be: a stored layer)
  };
  // Whether an epoch built now could decide `path`: some layer holds (or may hold) it and
  // every layer above is indexed, or every layer is, or one failed. Cheap, unlike a build
  // (O(members) of every layer): a waiter builds only once this holds.
  bool MayDecide(const std::string& path, bool complete, Seen& seen) const;

  const std::string name_;
  const std::vector<Layer> layers_;
  const std::shared_ptr<StreamSignal> signal_;
  struct Hooks {
    std::mutex mu;
    std::vector<std::function<void()>> hooks;  // guarded by mu
  };
  // Shared with the layers' reporters, which may outlive this.
  const std::shared_ptr<Hooks> hooks_ = std::make_shared<Hooks>();
  std::mutex build_mu_;                               // one build at a time
  std::shared_ptr<const Epoch> epoch_;                // guarded by build_mu_
  std::chrono::steady_clock::time_point built_at_{};  // guarded by build_mu_
  std::chrono::steady_clock::duration build_time_{};  // of the last build; guarded by build_mu_
  mutable std::mutex latest_mu_;
  std::shared_ptr<const Epoch>
      latest_;  // epoch_, for readers a build must not hold; guarded by latest_mu_
};

}  // namespace imagefs
