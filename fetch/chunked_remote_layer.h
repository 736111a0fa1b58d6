// ChunkedRemoteLayer: an eStargz or zstd:chunked layer of a remote image, read chunk by
// chunk on demand instead of whole. Opening takes the TOC by Range (eStargz: footer and TOC
// in one request when the TOC is small, two otherwise; zstd:chunked: the TOC where its
// annotation says, in one), checks it against the digest annotated on the layer's descriptor
// and writes the layer's index (graph/chunked_toc.h) and chunk table into the layer's cache
// directory. Ensure() then makes a range of the layer's content file present:
// missing chunks are fetched (neighbours in one request), each verified against its digest
// before it is written. Nothing unverified is ever in the content file as present.
//
// Cache directory: `index` (tar_index.h's format), `chunks` (the chunk table), `content`
// (sparse: every file at its offset in the index), `present` (one byte per chunk), `blob`
// (sparse: the compressed bytes fetched, at their offsets, so that completing the layer
// fetches only what no read fetched: StreamBlob). A reopened cache serves its chunks again without
// fetching them; since a crash can leave a `present` byte whose content never reached the disk,
// each such chunk is verified once more the first time it is used after opening. Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "fetch/registry_client.h"
#include "graph/base/unique_fd.h"
#include "graph/estargz.h"
#include "graph/store.h"
#include "graph/tar_index.h"

namespace imagefs::fetch {

// Reads that a process waits for go before background work on one link: a layer's
// completion (StreamBlob) holds its next request while a read or a TOC is being fetched and
// for a quiet period after, as stargz-snapshotter silences its background fetches. Without
// it, a completion that starts with the serving shares the link with the first reads. A
// request is held max_hold at most: a completion holds a transfer slot and the DiffID's
// store lock, which other pulls may be waiting for, and reads that never stop must not
// starve it. Thread-safe; one per mount, shared by its layers.
class DemandGate {
 public:
  DemandGate(std::chrono::milliseconds quiet, std::chrono::milliseconds max_hold)
      : quiet_(quiet), max_hold_(max_hold) {}
  void Begin() { in_flight_ += 1; }
  void End() {
    last_end_ns_ = Now();
    in_flight_ -= 1;
  }
  // Returns once nothing is in flight and nothing ended within the quiet period, once
  // max_hold passed, or once either flag is set.
  void WaitQuiet(const std::atomic<bool>* cancel, const std::atomic<bool>& cancelled) const;

 private:
  static int64_t Now();
  const std::chrono::milliseconds quiet_, max_hold_;
  std::atomic<int> in_flight_{0};
  std::atomic<int64_t> last_end_ns_{0};
};

class ChunkedRemoteLayer final : public BlobFetcher,
                                 public std::enable_shared_from_this<ChunkedRemoteLayer> {
 public:
  // Whether the layer's descriptor announces an eStargz or zstd:chunked TOC (a malformed
  // announcement is not one: such a layer is taken whole).
  static bool Seekable(const Descriptor& layer);

  // Opens the layer's cache in dir (created if missing), fetching footer and TOC if the
  // cache has no index yet. kUnsupported when the registry refuses ranges (the caller takes
  // the layer whole); kCorrupt on a TOC that fails its digest or any check.
  // With a gate, the TOC and Ensure's fetches are reads it counts, and StreamBlob waits on it.
  static Result<std::shared_ptr<ChunkedRemoteLayer>> Open(
      RegistryClient& client, Reference ref, Descriptor layer, const std::filesystem::path& dir,
      std::shared_ptr<DemandGate> gate = nullptr);

  const TarIndex& index() const { return *index_; }
  // The content file, for reads at the index's data offsets once Ensure succeeded.
  int content_fd() const { return content_.get(); }
  const ChunkedLayout& layout() const { return layout_; }
  // "eStargz layer sha256:… of host/repo", for errors.
  std::string Name() const;

  // Makes bytes [offset, offset + len) of the content file present.
  Status Ensure(uint64_t offset, uint64_t len) override;
  // The layer as a tree's layer (graph/tree.h: Tree::BuildMergedFrom), whose reads fetch
  // through this; diff_id is the layer's DiffID from the image config.
  Result<std::shared_ptr<const LayerBlob>> Blob(const Digest& diff_id);
  // The chunks of the files the producer marked to prefetch (before .prefetch.landmark).
  Status Prefetch();
  // The whole compressed blob to sink, in order: what reads fetched already from the cache,
  // the gaps by Range (nearby gaps in one request). Verified against the blob's digest at
  // the end (kCorrupt if it fails), so the caller may store what it decompressed from it.
  Status StreamBlob(const BodySink& sink, const std::atomic<bool>* cancel);

  // Aborts fetches in progress and refuses new ones (kCancelled): the mount is going.
  void Cancel() { cancelled_ = true; }
  // Called with every failed fetch or check, for the mount's error report (null: none). The
  // layer may outlive its reporter's owner (a pull holds it): that owner clears it first.
  void SetErrorReporter(std::function<void(const Error&)> report) {
    std::lock_guard lock(report_mu_);
    report_ = std::move(report);
  }

  const Descriptor& descriptor() const { return layer_; }
  uint64_t bytes_fetched() const { return bytes_fetched_.load(); }
  uint64_t requests() const { return requests_.load(); }
  size_t chunks_present() const { return chunks_present_.load(); }
  // Whether StreamBlob last completed the blob from the cache (false: not run, or failed).
  bool streamed() const { return streamed_.load(); }
  uint64_t errors() const { return errors_.load(); }

 private:
  ChunkedRemoteLayer(RegistryClient& client, Reference ref, Descriptor layer)
      : client_(client), ref_(std::move(ref)), layer_(std::move(layer)) {}
  // Chunks [first, last) present, fetching what is missing; a demand fetch counts in gate_.
  Status EnsureChunks(size_t first, size_t last, bool demand);
  // Whether chunk i is present, verifying once a chunk an earlier run marked.
  bool Present(size_t i);
  Result<std::string> FetchRange(uint64_t offset, uint64_t len, const std::atomic<bool>* cancel);
  Status Report(Status status);
  // Reads the TOC from the registry and writes index and chunk table into dir. Returns the
  // stretches of the blob it fetched, for `blob`.
  Result<std::vector<std::pair<uint64_t, std::string>>> FetchToc(const std::filesystem::path& dir);

  RegistryClient& client_;
  const Reference ref_;
  const Descriptor layer_;
  std::shared_ptr<DemandGate> gate_;  // null: none
  std::shared_ptr<const TarIndex> index_;
  ChunkedLayout layout_;
  UniqueFd content_, present_fd_, blob_fd_;
  // The stretches of `blob` this open fetched for the TOC, [first, second).
  std::vector<std::pair<uint64_t, uint64_t>> toc_fetched_;
  // Per chunk: 0 missing, 1 present, 2 marked by an earlier run, not yet verified.
  std::unique_ptr<std::atomic<uint8_t>[]> present_;
  std::mutex fetch_mu_;  // one fetch at a time per layer; readers of present chunks never wait
  std::atomic<uint64_t> bytes_fetched_{0}, requests_{0}, errors_{0};
  std::atomic<size_t> chunks_present_{0};
  std::atomic<bool> cancelled_{false}, streamed_{false};
  std::mutex report_mu_;  // held while reporting: taken before the reporter's own locks
  std::function<void(const Error&)> report_;  // guarded by report_mu_
};

}  // namespace imagefs::fetch
