// Puller: turns a reference into a registered image. Resolve fetches the manifest (and
// picks the platform from an index) and the config only; Pull downloads the layers the
// store lacks, at most FetchConfig::concurrency at a time, each streamed from the
// registry through its digest check and decompression straight into the store, then
// records the layers in chain order, the image and its tag. Layers being fetched are
// retained, so `rm` cannot remove them mid-pull. A layer two pulls want at once is
// downloaded once (TransferManager); one partly fetched by Range already is completed from
// what was fetched (AddPartialBlob). Thread-safe.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "fetch/chunked_remote_layer.h"
#include "fetch/registry_client.h"
#include "fetch/transfer_manager.h"
#include "graph/platform.h"
#include "graph/store.h"
#include "graph/streaming_layer.h"

namespace imagefs::fetch {

struct ResolvedImage {
  Reference ref;  // as asked for (a tag or a digest)
  Digest digest;  // of the manifest the reference names (an index's, for multi-platform)
  std::string image_id;
  std::string config;                      // config bytes (the top v1 JSON for schema1)
  std::vector<Descriptor> layers;          // blobs, base first
  std::vector<Digest> diff_ids;            // modern images: from the config
  std::optional<Schema1Manifest> schema1;  // schema1 images register as legacy v1 chains
  uint64_t download_bytes = 0;             // sum of the layer blob sizes
};

// Docker-style status of a pull. Layer ids are the first 12 hex digits of the blob digest.
class PullObserver {
 public:
  virtual ~PullObserver() = default;
  // status: "Pulling fs layer", "Waiting", "Downloading", "Verifying Checksum",
  // "Download complete", "Pull complete", "Already exists"; bytes for "Downloading".
  virtual void LayerStatus(const std::string& id, const std::string& status, uint64_t current,
                           uint64_t total) = 0;
  virtual void Message(const std::string& line) = 0;
};

class Puller {
 public:
  Puller(Store& store, RegistryClient& client)
      : store_(store), client_(client), transfers_(client.config().concurrency) {}

  Result<ResolvedImage> Resolve(const Reference& ref,
                                const std::optional<Platform>& platform = std::nullopt);
  // Fetches what the store lacks and registers the image; tags it when ref has a tag.
  // Returns the image ID. cancel, when set, abandons this pull (other pulls sharing its
  // transfers go on).
  Result<std::string> Pull(const ResolvedImage& image, PullObserver* observer = nullptr,
                           const std::atomic<bool>* cancel = nullptr);

  TransferManager& transfers() { return transfers_; }

  // A layer read by Range before it was pulled: a pull of its blob streams it from there,
  // fetching only what reads did not (ChunkedRemoteLayer::StreamBlob), and takes the blob
  // whole from the registry should that fail. Held weakly: it serves while it lives.
  void AddPartialBlob(const std::shared_ptr<ChunkedRemoteLayer>& layer);
  // A layer served while it streams (graph/streaming_layer.h): its download is told how
  // the store writes its tar and how that ended, and starts at once (no transfer slot).
  // Held weakly.
  void AddStreamingLayer(const std::shared_ptr<StreamingLayer>& layer);
  // The layer streamed as diff_id now, if any: another image's stream may share it.
  std::shared_ptr<StreamingLayer> Streaming(const Digest& diff_id);

 private:
  Result<std::string> PullModern(const ResolvedImage& image, PullObserver* observer,
                                 const std::atomic<bool>* cancel);
  Result<std::string> PullSchema1(const ResolvedImage& image, PullObserver* observer,
                                  const std::atomic<bool>* cancel);
  // Downloads one blob into the store as diff_id (or, with no diff_id, registers it on
  // parent directly: schema1), retrying when the data arrived wrong.
  Status FetchDiff(Transfer& transfer, const Reference& ref, const Descriptor& blob,
                   const Digest& diff_id);

  std::shared_ptr<ChunkedRemoteLayer> PartialBlob(const Digest& blob);

  Store& store_;
  RegistryClient& client_;
  TransferManager transfers_;
  std::mutex partial_mu_;
  std::map<std::string, std::weak_ptr<ChunkedRemoteLayer>> partial_;  // guarded by partial_mu_
  std::map<std::string, std::weak_ptr<StreamingLayer>> streaming_;    // guarded by partial_mu_
};

}  // namespace imagefs::fetch
