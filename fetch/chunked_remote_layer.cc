#include "fetch/chunked_remote_layer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <thread>

#include "graph/base/fs_util.h"
#include "graph/base/log.h"
#include "graph/zstd_chunked.h"

namespace imagefs::fetch {
namespace {

// The tail fetched first: the footer, and the whole TOC of a layer of a few thousand
// entries; larger ones (a Debian base layer's TOC member is ~120 KB) take a second request.
// Every layer of an image opens at once, so on a slow link the sum of these tails is what
// the first file waits for: 256 KiB each made 5 layers cost 0.1 s at 100 Mbit/s.
constexpr uint64_t kTailBytes = 64 << 10;
// Neighbouring missing chunks are fetched in one request up to this span.
constexpr uint64_t kMaxSpan = 32ull << 20;
// ... also across a gap this short: zstd:chunked puts each tar header in a frame of its own
// between two files' frames, a few hundred bytes that are cheaper than a round trip.
constexpr uint64_t kMaxGap = 32 << 10;
// Completing a blob, a cached stretch shorter than this between two gaps is fetched again
// with them: cheaper than another request's round trip.
constexpr uint64_t kRefetchBelow = 256 << 10;

constexpr char kChunksMagic[8] = {'I', 'M', 'G', 'F', 'S', 'S', 'C', '2'};
struct ChunksHeader {
  char magic[8];
  uint64_t count, prefetch, content_size, format;
};
static_assert(std::is_trivially_copyable_v<TocChunk>);

Status SaveChunks(const ChunkedLayout& layout, const std::filesystem::path& path) {
  ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(path, O_WRONLY | O_CREAT | O_TRUNC, 0600));
  ChunksHeader h{};
  std::memcpy(h.magic, kChunksMagic, sizeof h.magic);
  h.count = layout.chunks.size();
  h.prefetch = layout.prefetch_chunks;
  h.content_size = layout.content_size;
  h.format = static_cast<uint64_t>(layout.format);
  RETURN_IF_ERROR(WriteAll(fd.get(), &h, sizeof h));
  return WriteAll(fd.get(), layout.chunks.data(), layout.chunks.size() * sizeof(TocChunk));
}

Result<ChunkedLayout> LoadChunks(const std::filesystem::path& path) {
  ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(path, O_RDONLY));
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return FailErrno("stat " + path.string());
  ChunksHeader h{};
  auto size = static_cast<uint64_t>(st.st_size);
  if (size < sizeof h) return Fail(Code::kCorrupt, path.string() + ": truncated");
  RETURN_IF_ERROR(PreadAll(fd.get(), &h, sizeof h, 0));
  if (std::memcmp(h.magic, kChunksMagic, sizeof h.magic) != 0 ||
      h.count != (size - sizeof h) / sizeof(TocChunk) ||
      size != sizeof h + h.count * sizeof(TocChunk) || h.prefetch > h.count ||
      h.format > static_cast<uint64_t>(ChunkedFormat::kZstdChunked)) {
    return Fail(Code::kCorrupt, path.string() + ": damaged chunk table");
  }
  ChunkedLayout layout;
  layout.chunks.resize(h.count);
  layout.prefetch_chunks = h.prefetch;
  layout.content_size = h.content_size;
  layout.format = static_cast<ChunkedFormat>(h.format);
  RETURN_IF_ERROR(PreadAll(fd.get(), layout.chunks.data(), h.count * sizeof(TocChunk), sizeof h));
  return layout;
}

std::optional<Digest> TocDigestOf(const Descriptor& layer) {
  if (!layer.annotations.is_object()) return std::nullopt;
  auto it = layer.annotations.find(std::string(kStargzTocDigestAnnotation));
  if (it == layer.annotations.end() || !it->is_string()) return std::nullopt;
  auto d = Digest::Parse(it->get<std::string>());
  return d ? std::optional<Digest>(*d) : std::nullopt;
}

// Counts a demand fetch in a gate (none: nothing) for the scope's life.
class DemandScope {
 public:
  explicit DemandScope(DemandGate* gate) : gate_(gate) {
    if (gate_ != nullptr) gate_->Begin();
  }
  ~DemandScope() {
    if (gate_ != nullptr) gate_->End();
  }
  DemandScope(const DemandScope&) = delete;
  DemandScope& operator=(const DemandScope&) = delete;

 private:
  DemandGate* gate_;
};

}  // namespace

int64_t DemandGate::Now() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void DemandGate::WaitQuiet(const std::atomic<bool>* cancel,
                           const std::atomic<bool>& cancelled) const {
  const int64_t quiet_ns = std::chrono::nanoseconds(quiet_).count();
  const int64_t until = Now() + std::chrono::nanoseconds(max_hold_).count();
  while (!cancelled.load() && (cancel == nullptr || !cancel->load()) && Now() < until) {
    if (in_flight_.load() == 0 && Now() - last_end_ns_.load() >= quiet_ns) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

bool ChunkedRemoteLayer::Seekable(const Descriptor& layer) {
  if (TocDigestOf(layer)) return true;
  auto zstd = ZstdChunkedTocOf(layer);
  return zstd && zstd->has_value();
}

std::string ChunkedRemoteLayer::Name() const {
  return std::string(layout_.format == ChunkedFormat::kZstdChunked ? "zstd:chunked" : "eStargz") +
         " layer " + layer_.digest.str() + " of " + ref_.Name();
}

Result<std::shared_ptr<ChunkedRemoteLayer>> ChunkedRemoteLayer::Open(
    RegistryClient& client, Reference ref, Descriptor layer, const std::filesystem::path& dir,
    std::shared_ptr<DemandGate> gate) {
  std::shared_ptr<ChunkedRemoteLayer> self(new ChunkedRemoteLayer(client, ref, layer));
  self->gate_ = std::move(gate);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Fail(Code::kIo, "create " + dir.string() + ": " + ec.message());

  auto cached = LoadChunks(dir / "chunks");
  auto index = cached ? TarIndex::Open(dir / "index") : Fail(cached.error());
  std::vector<std::pair<uint64_t, std::string>> fetched;
  if (cached && index) {
    self->layout_ = std::move(*cached);
    self->index_ = std::move(*index);
  } else {
    DemandScope demand(self->gate_.get());
    ASSIGN_OR_RETURN(fetched, self->FetchToc(dir));
  }

  ASSIGN_OR_RETURN(self->content_, OpenFile(dir / "content", O_RDWR | O_CREAT, 0600));
  struct stat st;
  if (fstat(self->content_.get(), &st) != 0) return FailErrno("stat content");
  if (static_cast<uint64_t>(st.st_size) != self->layout_.content_size &&
      ftruncate(self->content_.get(), static_cast<off_t>(self->layout_.content_size)) != 0) {
    return FailErrno("size " + (dir / "content").string());
  }
  const size_t n = self->layout_.chunks.size();
  self->present_ = std::make_unique<std::atomic<uint8_t>[]>(n);
  ASSIGN_OR_RETURN(self->present_fd_, OpenFile(dir / "present", O_RDWR | O_CREAT, 0600));
  std::vector<uint8_t> marks(n, 0);
  ssize_t got = pread(self->present_fd_.get(), marks.data(), n, 0);
  for (size_t i = 0; got > 0 && i < static_cast<size_t>(got); ++i) {
    self->present_[i].store(marks[i] == 1 ? 2 : 0);
    self->chunks_present_ += marks[i] == 1;
  }
  ASSIGN_OR_RETURN(self->blob_fd_, OpenFile(dir / "blob", O_RDWR | O_CREAT, 0600));
  for (const auto& [offset, bytes] : fetched) {
    RETURN_IF_ERROR(
        PwriteAll(self->blob_fd_.get(), bytes.data(), bytes.size(), static_cast<off_t>(offset)));
    self->toc_fetched_.emplace_back(offset, offset + bytes.size());
  }
  return self;
}

Result<std::vector<std::pair<uint64_t, std::string>>> ChunkedRemoteLayer::FetchToc(
    const std::filesystem::path& dir) {
  std::vector<std::pair<uint64_t, std::string>> fetched;
  const uint64_t size = layer_.size;
  ChunkedLayout written;
  ASSIGN_OR_RETURN(
      std::optional<ZstdChunkedToc> zstd,
      ZstdChunkedTocOf(layer_).map_error([&](Error e) { return e.WithContext(ref_.Name()); }));
  if (zstd) {
    layout_.format = ChunkedFormat::kZstdChunked;  // for Name()
    ASSIGN_OR_RETURN(std::string compressed, FetchRange(zstd->offset, zstd->length, nullptr));
    fetched.emplace_back(zstd->offset, compressed);
    auto toc = ExtractZstdChunkedToc(compressed, *zstd);
    if (!toc) return Fail(toc.error().WithContext(Name()));
    auto index = WriteZstdChunkedIndex(*toc, *zstd, dir / "index.tmp");
    if (!index) return Fail(index.error().WithContext(Name()));
    written = std::move(*index);
  } else {
    auto toc_digest = TocDigestOf(layer_);
    if (!toc_digest) return Fail(Code::kInvalid, Name() + ": no TOC annotation");
    uint64_t tail_len = std::min(size, kTailBytes);
    ASSIGN_OR_RETURN(std::string tail, FetchRange(size - tail_len, tail_len, nullptr));
    fetched.emplace_back(size - tail_len, tail);
    auto footer = ParseStargzFooter(tail, size);
    if (!footer) return Fail(footer.error().WithContext(Name()));
    const uint64_t toc_end = size - footer->footer_size;
    std::string member;
    if (footer->toc_offset >= size - tail_len) {
      member = tail.substr(footer->toc_offset - (size - tail_len), toc_end - footer->toc_offset);
    } else {
      if (toc_end - footer->toc_offset > kMaxTocBytes) {
        return Fail(Code::kCorrupt, Name() + ": TOC of " +
                                        std::to_string(toc_end - footer->toc_offset) +
                                        " compressed bytes is over the limit");
      }
      ASSIGN_OR_RETURN(std::string head, FetchRange(footer->toc_offset,
                                                    size - tail_len - footer->toc_offset, nullptr));
      fetched.emplace_back(footer->toc_offset, head);
      member = std::move(head) + tail.substr(0, tail_len - footer->footer_size);
    }
    auto toc = ExtractStargzToc(member);
    if (!toc) return Fail(toc.error().WithContext(Name()));
    auto index = WriteStargzIndex(*toc, *toc_digest, footer->toc_offset, dir / "index.tmp");
    if (!index) return Fail(index.error().WithContext(Name()));
    written = std::move(*index);
  }
  RETURN_IF_ERROR(SaveChunks(written, dir / "chunks.tmp"));
  // The index last: a cache with an index is a whole one.
  std::error_code ec;
  std::filesystem::rename(dir / "chunks.tmp", dir / "chunks", ec);
  if (!ec) std::filesystem::rename(dir / "index.tmp", dir / "index", ec);
  if (ec) return Fail(Code::kIo, "commit " + dir.string() + ": " + ec.message());
  // A new index: whatever content and marks an older attempt left mean nothing now.
  std::filesystem::remove(dir / "present", ec);
  std::filesystem::remove(dir / "content", ec);
  std::filesystem::remove(dir / "blob", ec);
  ASSIGN_OR_RETURN(index_, TarIndex::Open(dir / "index"));
  layout_ = std::move(written);
  return fetched;
}

Result<std::shared_ptr<const LayerBlob>> ChunkedRemoteLayer::Blob(const Digest& diff_id) {
  int fd = fcntl(content_.get(), F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return FailErrno("dup the content file");
  auto blob = std::make_shared<LayerBlob>();
  blob->diff_id = diff_id;
  blob->index = index_;
  blob->fd = UniqueFd(fd);
  blob->fetcher = shared_from_this();
  return std::shared_ptr<const LayerBlob>(std::move(blob));
}

bool ChunkedRemoteLayer::Present(size_t i) {
  uint8_t state = present_[i].load(std::memory_order_acquire);
  if (state != 2) return state == 1;
  const TocChunk& c = layout_.chunks[i];
  std::string data(c.size, '\0');
  bool ok = PreadAll(content_.get(), data.data(), data.size(), static_cast<off_t>(c.content_offset))
                .has_value() &&
            ChunkDigestMatches(data, c);
  // Two readers may verify it at once: the one that settles it counts it.
  if (present_[i].compare_exchange_strong(state, ok ? 1 : 0, std::memory_order_acq_rel) && !ok)
    chunks_present_ -= 1;
  return ok;
}

Result<std::string> ChunkedRemoteLayer::FetchRange(uint64_t offset, uint64_t len,
                                                   const std::atomic<bool>* cancel) {
  if (cancelled_.load()) return Fail(Code::kCancelled, Name() + ": cancelled");
  // The caller's flag, else the mount's (the caller's follows the mount's: Puller).
  const std::atomic<bool>* abort = cancel != nullptr ? cancel : &cancelled_;
  auto data = client_.GetBlobRange(ref_, layer_, offset, len, abort);
  if (data) {
    requests_ += 1;
    bytes_fetched_ += data->size();
  }
  return data;
}

Status ChunkedRemoteLayer::Report(Status status) {
  if (!status && status.error().code != Code::kCancelled) {
    errors_ += 1;
    std::lock_guard lock(report_mu_);
    if (report_) report_(status.error());
  }
  return status;
}

Status ChunkedRemoteLayer::Ensure(uint64_t offset, uint64_t len) {
  const auto& chunks = layout_.chunks;
  // Chunks lie in content order: the first one ending after offset, up to offset + len.
  auto first = std::partition_point(chunks.begin(), chunks.end(), [&](const TocChunk& c) {
    return c.content_offset + c.size <= offset;
  });
  auto last = std::partition_point(
      first, chunks.end(), [&](const TocChunk& c) { return c.content_offset < offset + len; });
  return Report(EnsureChunks(static_cast<size_t>(first - chunks.begin()),
                             static_cast<size_t>(last - chunks.begin()), /*demand=*/true));
}

Status ChunkedRemoteLayer::Prefetch() {
  return Report(EnsureChunks(0, layout_.prefetch_chunks, /*demand=*/false));
}

Status ChunkedRemoteLayer::EnsureChunks(size_t first, size_t last, bool demand) {
  auto all_present = [&] {
    for (size_t i = first; i < last; ++i) {
      if (!Present(i)) return false;
    }
    return true;
  };
  if (all_present()) return {};
  DemandScope scope(demand ? gate_.get() : nullptr);
  std::lock_guard lock(fetch_mu_);
  const auto& chunks = layout_.chunks;
  size_t i = first;
  while (i < last) {
    if (Present(i)) {
      ++i;
      continue;
    }
    // A run of missing chunks whose members follow each other: one request.
    size_t j = i + 1;
    uint64_t start = chunks[i].compressed_offset, end = chunks[i].compressed_end;
    while (j < last && !Present(j) && chunks[j].compressed_offset >= start &&
           chunks[j].compressed_offset <= end + kMaxGap &&
           std::max(end, chunks[j].compressed_end) - start <= kMaxSpan) {
      end = std::max(end, chunks[j].compressed_end);
      ++j;
    }
    ASSIGN_OR_RETURN(std::string data, FetchRange(start, end - start, nullptr));
    // Unverified here: the blob as a whole is, when StreamBlob reads it back.
    RETURN_IF_ERROR(PwriteAll(blob_fd_.get(), data.data(), data.size(), static_cast<off_t>(start)));
    for (size_t k = i; k < j; ++k) {
      const TocChunk& c = chunks[k];
      auto bytes =
          DecompressChunk(layout_.format,
                          std::string_view(data).substr(c.compressed_offset - start,
                                                        c.compressed_end - c.compressed_offset),
                          c);
      if (!bytes) return Fail(bytes.error().WithContext(Name()));
      if (pwrite(content_.get(), bytes->data(), bytes->size(),
                 static_cast<off_t>(c.content_offset)) != static_cast<ssize_t>(bytes->size())) {
        return FailErrno("write chunk to the content file");
      }
      present_[k].store(1, std::memory_order_release);
      chunks_present_ += 1;
      uint8_t mark = 1;
      if (pwrite(present_fd_.get(), &mark, 1, static_cast<off_t>(k)) != 1) {
        FetchLog()->warn("mark chunk {} present: {}", k, std::strerror(errno));
      }
    }
    i = j;
  }
  return {};
}

Status ChunkedRemoteLayer::StreamBlob(const BodySink& sink, const std::atomic<bool>* cancel) {
  const uint64_t size = layer_.size;
  const auto& chunks = layout_.chunks;
  // What `blob` holds: the members of present chunks, and this open's footer and TOC.
  std::vector<std::pair<uint64_t, uint64_t>> held;
  for (size_t i = 0; i < chunks.size(); ++i) {
    if (Present(i)) held.emplace_back(chunks[i].compressed_offset, chunks[i].compressed_end);
  }
  held.insert(held.end(), toc_fetched_.begin(), toc_fetched_.end());
  std::sort(held.begin(), held.end());
  std::vector<std::pair<uint64_t, uint64_t>> merged;
  for (const auto& r : held) {
    if (!merged.empty() && r.first <= merged.back().second) {
      merged.back().second = std::max(merged.back().second, r.second);
    } else {
      merged.push_back(r);
    }
  }
  Sha256 hash;
  constexpr size_t kPiece = 1 << 20;
  auto emit = [&](std::string_view data) -> Status {
    for (size_t at = 0; at < data.size(); at += kPiece) {
      std::string_view piece = data.substr(at, kPiece);
      hash.Update(piece);
      RETURN_IF_ERROR(sink(piece.data(), piece.size()));
    }
    return {};
  };
  std::string buf;
  uint64_t pos = 0;
  size_t h = 0;
  while (pos < size) {
    while (h < merged.size() && merged[h].second <= pos) ++h;
    if (h < merged.size() && merged[h].first <= pos) {
      for (const uint64_t end = merged[h].second; pos < end;) {
        if ((cancel != nullptr && cancel->load()) || cancelled_.load())
          return Fail(Code::kCancelled, Name() + ": cancelled");
        buf.resize(std::min<uint64_t>(kPiece, end - pos));
        RETURN_IF_ERROR(PreadAll(blob_fd_.get(), buf.data(), buf.size(), static_cast<off_t>(pos)));
        RETURN_IF_ERROR(emit(buf));
        pos += buf.size();
      }
      continue;
    }
    // A gap: one request to its end, taking in short cached stretches and the gaps after.
    uint64_t end = h < merged.size() ? merged[h].first : size;
    for (size_t k = h; k < merged.size() && merged[k].second - merged[k].first < kRefetchBelow;
         ++k) {
      uint64_t next_end = k + 1 < merged.size() ? merged[k + 1].first : size;
      if (next_end - pos > kMaxSpan) break;
      end = next_end;
    }
    end = std::min(end, pos + kMaxSpan);
    if (gate_) gate_->WaitQuiet(cancel, cancelled_);
    ASSIGN_OR_RETURN(std::string data, FetchRange(pos, end - pos, cancel));
    RETURN_IF_ERROR(emit(data));
    pos = end;
  }
  Digest got = hash.Finish();
  streamed_ = got == layer_.digest;
  if (got != layer_.digest) {
    return Report(Fail(Code::kCorrupt, Name() + ": the blob completed from cached chunks " +
                                           "and Range requests has digest " + got.str()));
  }
  return {};
}

}  // namespace imagefs::fetch
