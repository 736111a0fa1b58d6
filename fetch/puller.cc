#include "fetch/puller.h"

#include <condition_variable>
#include <deque>
#include <nlohmann/json.hpp>
#include <thread>

#include "graph/base/log.h"
#include "graph/image_transaction.h"
#include "graph/loader.h"

namespace imagefs::fetch {
namespace {

constexpr size_t kPipeBytes = 8u << 20;

// A bounded byte pipe from the download thread (writer) to the store (reader).
class BlobPipe {
 public:
  Status Write(const char* data, size_t len) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return buffered_ < kPipeBytes || reader_closed_; });
    if (reader_closed_) return Fail(Code::kCancelled, "the store stopped reading");
    chunks_.emplace_back(data, len);
    buffered_ += len;
    cv_.notify_all();
    return {};
  }
  void CloseWrite(Status status) {
    std::lock_guard lock(mu_);
    writer_closed_ = true;
    if (!status) error_ = status.error();
    cv_.notify_all();
  }
  Result<size_t> Read(char* buf, size_t len) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !chunks_.empty() || writer_closed_; });
    if (chunks_.empty()) {
      if (error_) return Fail(*error_);
      return size_t{0};
    }
    size_t n = 0;
    while (n < len && !chunks_.empty()) {
      std::string& front = chunks_.front();
      size_t take = std::min(len - n, front.size() - offset_);
      std::memcpy(buf + n, front.data() + offset_, take);
      n += take;
      offset_ += take;
      if (offset_ == front.size()) {
        chunks_.pop_front();
        offset_ = 0;
      }
    }
    buffered_ -= n;
    cv_.notify_all();
    return n;
  }
  void CloseRead() {
    std::lock_guard lock(mu_);
    reader_closed_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> chunks_;  // guarded by mu_
  size_t offset_ = 0;               // into chunks_.front(); guarded by mu_
  size_t buffered_ = 0;             // guarded by mu_
  bool writer_closed_ = false;      // guarded by mu_
  bool reader_closed_ = false;      // guarded by mu_
  std::optional<Error> error_;      // guarded by mu_
};

// Reads the pipe, starting the download on the first read: a layer another process
// stores meanwhile (the store's DiffID lock) is then never downloaded at all.
class PipeSource final : public ByteSource {
 public:
  PipeSource(BlobPipe& pipe, std::function<void()> start) : pipe_(pipe), start_(std::move(start)) {}
  Result<size_t> Read(char* buf, size_t len) override {
    if (start_) {
      start_();
      start_ = nullptr;
    }
    return pipe_.Read(buf, len);
  }

 private:
  BlobPipe& pipe_;
  std::function<void()> start_;
};

// For layers the store holds already: RegisterLayer must not read.
class NeverSource final : public ByteSource {
 public:
  Result<size_t> Read(char*, size_t) override {
    return Fail(Code::kIo, "internal: stored layer read again");
  }
};

std::string ShortId(const Digest& d) { return d.hex().substr(0, 12); }

std::string V1Id(const std::string& v1_json) {
  auto j = nlohmann::json::parse(v1_json, nullptr, false);
  return j.is_object() && j.contains("id") && j["id"].is_string() ? j["id"].get<std::string>() : "";
}

void Say(PullObserver* o, const std::string& id, const std::string& status, uint64_t current = 0,
         uint64_t total = 0) {
  if (o != nullptr) o->LayerStatus(id, status, current, total);
}

}  // namespace

Result<ResolvedImage> Puller::Resolve(const Reference& ref,
                                      const std::optional<Platform>& platform) {
  ResolvedImage out;
  out.ref = ref;
  ASSIGN_OR_RETURN(FetchedManifest m, client_.GetManifest(ref));
  out.digest = m.digest;
  if (m.manifest.index) {
    Platform wanted = platform.value_or(HostPlatform());
    auto chosen = SelectPlatform(*m.manifest.index, wanted);
    if (!chosen) return Fail(chosen.error().WithContext(ref.FamiliarString()));
    Reference by_digest = ref;
    by_digest.tag.clear();
    by_digest.digest = chosen->digest;
    ASSIGN_OR_RETURN(m, client_.GetManifest(by_digest));
    if (m.manifest.index)
      return Fail(Code::kUnsupported, ref.FamiliarString() + ": an index inside an index");
  }
  if (m.manifest.schema1) {
    const Schema1Manifest& s1 = *m.manifest.schema1;
    out.schema1 = s1;
    out.config = s1.v1_compatibility.back();
    out.image_id = V1Id(out.config);
    for (const Digest& d : s1.blob_sums)
      out.layers.push_back(Descriptor{"", d, 0, std::nullopt, nlohmann::json::object(), {}});
    return out;
  }
  if (!m.manifest.image)
    return Fail(Code::kUnsupported, ref.FamiliarString() + ": the manifest names no image");
  const ImageManifest& image = *m.manifest.image;
  // A config the store holds already is not fetched again (mounts re-resolve tags often).
  if (auto stored = store_.ReadConfig(image.config.digest.hex());
      stored && Sha256::Of(*stored) == image.config.digest) {
    out.config = std::move(*stored);
  } else {
    ASSIGN_OR_RETURN(out.config, client_.GetSmallBlob(ref, image.config));
  }
  out.image_id = image.config.digest.hex();  // verified: sha256 of the config bytes
  std::string what = "config " + image.config.digest.str() + " of " + ref.FamiliarString();
  auto config = nlohmann::json::parse(out.config, nullptr, false);
  ASSIGN_OR_RETURN(out.diff_ids, DiffIdsOf(config, what));
  if (out.diff_ids.size() != image.layers.size()) {
    return Fail(Code::kInvalid,
                ref.FamiliarString() + ": the manifest has " + std::to_string(image.layers.size()) +
                    " layers but the config " + std::to_string(out.diff_ids.size()) + " diff_ids");
  }
  out.layers = image.layers;
  for (const Descriptor& l : out.layers) out.download_bytes += l.size;
  return out;
}

Status Puller::FetchDiff(Transfer& t, const Reference& ref, const Descriptor& blob,
                         const Digest& diff_id) {
  std::string what = "layer " + blob.digest.str() + " of " + ref.Name();
  // One budget for the layer: the client's request retries and resumes, and the refetches
  // here, draw from it alike.
  RetryPolicy::Attempts attempts = client_.retry_policy().Start();
  std::shared_ptr<ChunkedRemoteLayer> partial = PartialBlob(blob.digest);
  std::shared_ptr<StreamingLayer> streaming = Streaming(diff_id);
  for (;;) {
    BlobPipe pipe;
    std::thread producer;
    BodySink sink = [&](const char* data, size_t len) -> Status {
      t.add_done(len);
      return pipe.Write(data, len);
    };
    auto start = [&] {
      t.set_phase(Transfer::kDownloading);
      producer = std::thread([&] {
        Status st = partial ? partial->StreamBlob(sink, &t.cancelled())
                            : client_.GetBlob(ref, blob, sink, &t.cancelled(), &attempts);
        if (st) t.set_phase(Transfer::kVerifying);
        pipe.CloseWrite(std::move(st));
      });
    };
    auto source = Decompress(std::make_unique<PipeSource>(pipe, start), what);
    // Another process storing this DiffID is waited for, until the pull or the client ends.
    auto stored = store_.StoreDiff(*source, diff_id, streaming.get(),
                                   [&] { return t.cancelled().load() || client_.closed(); });
    pipe.CloseRead();
    if (producer.joinable()) producer.join();
    if (stored) {
      if (streaming) {
        auto held = store_.OpenBlob(diff_id);
        if (held) {
          streaming->Stored(std::move(*held));
        } else {
          streaming->Failed(held.error());
        }
      }
      return {};
    }
    Error e = stored.error();
    // Bytes served from a layer whose digest did not match: none may be read again.
    if (streaming && e.code == Code::kCorrupt) streaming->Failed(e);
    if (t.cancelled().load()) return Fail(Code::kCancelled, what + ": cancelled");
    if (partial && e.code == Code::kCancelled) return Fail(e.WithContext(what));
    if (partial) {  // the registry's whole blob, as for any layer
      FetchLog()->warn("complete layer {} from its fetched chunks: {}; fetching it whole",
                       blob.digest.str(), e.msg);
      partial.reset();
      t.reset_done();
      continue;
    }
    // Wrong or cut data cannot be patched once it went into the store's stream: fetch the
    // whole layer again (the store kept none of it).
    bool again = e.code == Code::kCorrupt    ? attempts.Refetch(&t.cancelled())
                 : RetryPolicy::Retryable(e) ? attempts.Again(-1, &t.cancelled())
                                             : false;
    if (!again) {
      if (streaming) streaming->Failed(e);
      return Fail(e.WithContext(what));
    }
    FetchLog()->warn("retry layer {}: {}", blob.digest.str(), e.msg);
    t.reset_done();
  }
}

void Puller::AddPartialBlob(const std::shared_ptr<ChunkedRemoteLayer>& layer) {
  std::lock_guard lock(partial_mu_);
  partial_[layer->descriptor().digest.str()] = layer;
}

void Puller::AddStreamingLayer(const std::shared_ptr<StreamingLayer>& layer) {
  std::lock_guard lock(partial_mu_);
  streaming_[layer->diff_id().str()] = layer;
}

std::shared_ptr<StreamingLayer> Puller::Streaming(const Digest& diff_id) {
  std::lock_guard lock(partial_mu_);
  auto it = streaming_.find(diff_id.str());
  if (it == streaming_.end()) return nullptr;
  auto layer = it->second.lock();
  if (!layer) streaming_.erase(it);
  return layer;
}

std::shared_ptr<ChunkedRemoteLayer> Puller::PartialBlob(const Digest& blob) {
  std::lock_guard lock(partial_mu_);
  auto it = partial_.find(blob.str());
  if (it == partial_.end()) return nullptr;
  auto layer = it->second.lock();
  if (!layer) partial_.erase(it);
  return layer;
}

Result<std::string> Puller::Pull(const ResolvedImage& image, PullObserver* observer,
                                 const std::atomic<bool>* cancel) {
  if (observer != nullptr) {
    observer->Message((image.ref.digest ? image.ref.digest->str()
                                        : (image.ref.tag.empty() ? "latest" : image.ref.tag)) +
                      ": Pulling from " + image.ref.FamiliarName());
  }
  bool existed = static_cast<bool>(store_.GetImage(image.image_id));
  Result<std::string> id = existed         ? Result<std::string>(image.image_id)
                           : image.schema1 ? PullSchema1(image, observer, cancel)
                                           : PullModern(image, observer, cancel);
  if (!id) return id;
  if (!image.ref.tag.empty() && !image.ref.digest) {
    auto current = store_.ResolveImage(image.ref.String());
    if (!current || *current != *id) RETURN_IF_ERROR(store_.Tag(image.ref, *id));
  }
  if (observer != nullptr) {
    observer->Message("Digest: " + image.digest.str());
    observer->Message(std::string(existed ? "Status: Image is up to date for "
                                          : "Status: Downloaded newer image for ") +
                      image.ref.FamiliarString());
  }
  FetchLog()->info("pull {} digest={} id={}", image.ref.String(), image.digest.str(), *id);
  if (!existed) PrepareTree(store_, *id);  // the first look inside need not build it
  return id;
}

Result<std::string> Puller::PullModern(const ResolvedImage& image, PullObserver* observer,
                                       const std::atomic<bool>* cancel) {
  const size_t n = image.layers.size();
  std::vector<Digest> chains;
  std::vector<RetainHandle> retains;
  for (size_t i = 0; i < n; ++i) {
    chains.push_back(ChainIdOf(i == 0 ? nullptr : &chains[i - 1], image.diff_ids[i]));
    ASSIGN_OR_RETURN(RetainHandle r, store_.Retain(chains[i]));
    retains.push_back(std::move(r));
  }
  RETURN_IF_ERROR(store_.Refresh());  // held now: see what other processes removed before
  struct Pending {
    size_t index;
    std::shared_ptr<Transfer> transfer;
    Transfer::Phase said = Transfer::kWaiting;
    uint64_t said_bytes = 0;
  };
  std::vector<Pending> pending;
  for (size_t i = 0; i < n; ++i) {
    std::string id = ShortId(image.layers[i].digest);
    if (store_.GetLayer(chains[i])) {
      Say(observer, id, "Already exists");
      continue;
    }
    Say(observer, id, "Pulling fs layer");
    Descriptor blob = image.layers[i];
    Digest diff = image.diff_ids[i];
    Reference ref = image.ref;
    auto t = transfers_.Join(
        diff.str(), blob.size,
        [this, ref, blob, diff](Transfer& tr) { return FetchDiff(tr, ref, blob, diff); },
        /*slotted=*/!Streaming(diff));
    pending.push_back({i, std::move(t)});
  }
  std::optional<Error> failure;
  for (auto& p : pending) Say(observer, ShortId(image.layers[p.index].digest), "Waiting");
  while (!pending.empty()) {
    bool cancelled = cancel != nullptr && cancel->load();
    for (auto it = pending.begin(); it != pending.end();) {
      Transfer& t = *it->transfer;
      std::string id = ShortId(image.layers[it->index].digest);
      Transfer::Phase phase = t.phase();
      if (phase == Transfer::kDownloading && t.done() != it->said_bytes) {
        it->said_bytes = t.done();
        Say(observer, id, "Downloading", t.done(), t.total());
      }
      if (phase >= Transfer::kVerifying && it->said < Transfer::kVerifying) {
        Say(observer, id, "Verifying Checksum");
        it->said = Transfer::kVerifying;
      }
      if (phase == Transfer::kComplete || phase == Transfer::kFailed || cancelled) {
        Status st = transfers_.Wait(it->transfer, cancel);
        if (st) Say(observer, id, "Download complete");
        if (!st && !failure) failure = st.error();
        it = pending.erase(it);
      } else {
        ++it;
      }
    }
    // Progress is reported every 100 ms; the end of a transfer is seen at once.
    if (!pending.empty()) pending.front().transfer->WaitFor(std::chrono::milliseconds(100));
  }
  if (failure) return Fail(*failure);
  // Every diff is stored and verified: the chain and the image are registered as a
  // load registers them, all or nothing.
  ImageTransaction tx(store_);
  std::optional<Digest> parent;
  NeverSource never;
  for (size_t i = 0; i < n; ++i) {
    bool created = false;
    ASSIGN_OR_RETURN(LayerInfo layer, tx.AddLayer(parent, never, image.diff_ids[i], &created));
    if (created) Say(observer, ShortId(image.layers[i].digest), "Pull complete");
    parent = layer.chain_id;
  }
  ASSIGN_OR_RETURN(ImageInfo info,
                   tx.Commit(ImageSpec{image.image_id, image.config, parent, std::nullopt}));
  return info.id;
}

Result<std::string> Puller::PullSchema1(const ResolvedImage& image, PullObserver* observer,
                                        const std::atomic<bool>* cancel) {
  // A legacy v1 chain: each history entry is an image with its own layer, registered base
  // first; images already present are not fetched again.
  const Schema1Manifest& s1 = *image.schema1;
  std::optional<Digest> parent_layer;
  std::optional<std::string> parent_image;
  for (size_t i = 0; i < s1.blob_sums.size(); ++i) {
    std::string v1_id = V1Id(s1.v1_compatibility[i]);
    std::string id = ShortId(s1.blob_sums[i]);
    if (auto existing = store_.GetImage(v1_id)) {
      Say(observer, id, "Already exists");
      parent_layer = existing->top_layer;
      parent_image = v1_id;
      continue;
    }
    if (cancel != nullptr && cancel->load())
      return Fail(Code::kCancelled, "pull " + image.ref.String() + ": cancelled");
    Say(observer, id, "Downloading");
    BlobPipe pipe;
    std::thread producer;
    Descriptor blob{"",           s1.blob_sums[i],          RegistryClient::kUnknownSize,
                    std::nullopt, nlohmann::json::object(), {}};
    std::atomic<bool> stop{false};
    auto start = [&] {
      producer = std::thread([&] {
        // Schema1 gives no sizes: verify the digest over whatever arrives.
        Status st = client_.GetBlob(
            image.ref, blob, [&](const char* d, size_t len) { return pipe.Write(d, len); }, &stop);
        pipe.CloseWrite(std::move(st));
      });
    };
    auto source =
        Decompress(std::make_unique<PipeSource>(pipe, start), "layer " + blob.digest.str());
    ImageTransaction tx(store_);  // one v1 image: its layer, then the image
    auto layer = tx.AddLayer(parent_layer, *source, std::nullopt);
    pipe.CloseRead();
    stop = true;
    if (producer.joinable()) producer.join();
    if (!layer)
      return Fail(
          layer.error().WithContext("layer " + blob.digest.str() + " of " + image.ref.Name()));
    Say(observer, id, "Pull complete");
    ASSIGN_OR_RETURN(ImageInfo info, tx.Commit(ImageSpec{v1_id, s1.v1_compatibility[i],
                                                         layer->chain_id, parent_image}));
    parent_layer = layer->chain_id;
    parent_image = info.id;
  }
  return *parent_image;
}

}  // namespace imagefs::fetch
