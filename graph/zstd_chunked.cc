#include "graph/zstd_chunked.h"

#include <archive.h>
#include <archive_entry.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <memory>
#include <span>

#include "graph/archive_read.h"

namespace imagefs {
namespace {

constexpr std::string_view kPositionKeys[] = {
    "io.github.containers.zstd-chunked.manifest-position",
    "io.containers.zstd-chunked.manifest-position",  // podman before 4.9 (Debian 12's)
};
constexpr std::string_view kChecksumKeys[] = {
    "io.github.containers.zstd-chunked.manifest-checksum",
    "io.containers.zstd-chunked.manifest-checksum",
};
// The TOC's skippable frame header: magic and size, 4 bytes each.
constexpr uint64_t kSkippableHeader = 8;
constexpr uint64_t kManifestTypeCrfs = 1;

std::optional<std::string> Annotation(const Descriptor& layer,
                                      std::span<const std::string_view> keys) {
  if (!layer.annotations.is_object()) return std::nullopt;
  for (std::string_view key : keys) {
    auto it = layer.annotations.find(std::string(key));
    if (it != layer.annotations.end() && it->is_string()) return it->get<std::string>();
  }
  return std::nullopt;
}

// "OFFSET:LENGTH:ULEN:TYPE", four decimal numbers.
std::optional<std::array<uint64_t, 4>> ParsePosition(std::string_view s) {
  std::array<uint64_t, 4> v{};
  const char* p = s.data();
  const char* end = s.data() + s.size();
  for (size_t i = 0; i < v.size(); ++i) {
    if (i > 0) {
      if (p == end || *p != ':') return std::nullopt;
      ++p;
    }
    auto [next, ec] = std::from_chars(p, end, v[i]);
    if (ec != std::errc() || next == p) return std::nullopt;
    p = next;
  }
  if (p != end) return std::nullopt;
  return v;
}

// The first bytes the zstd frames in `in` decompress to, at most max of them. libarchive's
// zstd filter is libzstd, which libarchive links already. The filter is appended, not bid
// for: bidding would run again on the output and decompress a file that is itself zstd.
// The output grows as it comes, so an annotated size is not memory taken on trust.
Result<std::string> Unzstd(std::string_view in, size_t max) {
  static constexpr char kMagic[] = {'\x28', '\xb5', '\x2f', '\xfd'};
  if (in.size() < 4 || in.substr(0, 4) != std::string_view(kMagic, 4)) {
    return Fail(Code::kCorrupt, "not a zstd frame");
  }
  std::unique_ptr<archive, ArchiveReadDeleter> a(archive_read_new());
  if (!a) throw std::bad_alloc();
  if (archive_read_append_filter(a.get(), ARCHIVE_FILTER_ZSTD) != ARCHIVE_OK) {
    return Fail(Code::kUnsupported, "zstd: " + ArchiveError(a.get()));
  }
  archive_read_support_format_raw(a.get());
  archive_entry* ae = nullptr;
  if (archive_read_open_memory(a.get(), in.data(), in.size()) != ARCHIVE_OK ||
      archive_read_next_header(a.get(), &ae) != ARCHIVE_OK) {
    return Fail(Code::kCorrupt, "zstd: " + ArchiveError(a.get()));
  }
  std::string out(std::min(max, std::max<size_t>(in.size() * 4, 64 << 10)), '\0');
  size_t got = 0;
  while (got < max) {
    if (got == out.size()) out.resize(std::min(max, out.size() * 2));
    la_ssize_t n = archive_read_data(a.get(), out.data() + got, out.size() - got);
    if (n < 0) return Fail(Code::kCorrupt, "zstd: " + ArchiveError(a.get()));
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  out.resize(got);
  return out;
}

}  // namespace

Result<std::optional<ZstdChunkedToc>> ZstdChunkedTocOf(const Descriptor& layer) {
  auto position = Annotation(layer, kPositionKeys);
  auto checksum = Annotation(layer, kChecksumKeys);
  if (!position && !checksum) return std::optional<ZstdChunkedToc>();
  std::string what = "zstd:chunked layer " + layer.digest.str();
  if (!position || !checksum) {
    return Fail(Code::kCorrupt, what + ": the TOC's position or checksum annotation is missing");
  }
  auto v = ParsePosition(*position);
  if (!v) return Fail(Code::kCorrupt, what + ": TOC position \"" + *position + "\" is malformed");
  auto [offset, length, ulen, type] = *v;
  if (type != kManifestTypeCrfs) {
    return Fail(Code::kUnsupported, what + ": TOC type " + std::to_string(type));
  }
  if (offset < kSkippableHeader || length == 0 || offset > layer.size ||
      length > layer.size - offset) {
    return Fail(Code::kCorrupt, what + ": TOC at " + std::to_string(offset) + "+" +
                                    std::to_string(length) + " is outside the layer of " +
                                    std::to_string(layer.size) + " bytes");
  }
  if (length > kMaxTocBytes || ulen > kMaxTocBytes) {
    return Fail(Code::kCorrupt, what + ": TOC of " + std::to_string(ulen) +
                                    " bytes is over the limit of " + std::to_string(kMaxTocBytes));
  }
  auto digest = Digest::Parse(*checksum);
  if (!digest) return Fail(Code::kCorrupt, what + ": TOC checksum \"" + *checksum + "\" is bad");
  return std::optional<ZstdChunkedToc>(ZstdChunkedToc{offset, length, ulen, *digest});
}

Result<std::string> ExtractZstdChunkedToc(std::string_view compressed, const ZstdChunkedToc& toc) {
  Digest got = Sha256::Of(compressed);
  if (got != toc.checksum) {
    return Fail(Code::kCorrupt, "zstd:chunked TOC checksum mismatch: expected " +
                                    toc.checksum.str() + ", got " + got.str());
  }
  auto json = Unzstd(compressed, toc.uncompressed_size + 1);  // + 1: to see it is longer
  if (!json) return Fail(json.error().WithContext("zstd:chunked TOC"));
  if (json->size() != toc.uncompressed_size) {
    return Fail(Code::kCorrupt, "zstd:chunked TOC: decompressed to " +
                                    std::to_string(json->size()) + " bytes, not the " +
                                    std::to_string(toc.uncompressed_size) + " annotated");
  }
  return json;
}

Result<ChunkedLayout> WriteZstdChunkedIndex(std::string_view toc_json, const ZstdChunkedToc& toc,
                                            const std::filesystem::path& index_path) {
  return WriteChunkedTocIndex(ChunkedFormat::kZstdChunked, toc_json, toc.offset - kSkippableHeader,
                              index_path);
}

Result<std::string> DecompressZstdChunk(std::string_view frames, const TocChunk& chunk) {
  if (chunk.size > kMaxChunkBytes || chunk.inner_offset > kMaxChunkBytes) {
    return Fail(Code::kInvalid, "chunk out of range");
  }
  std::string at = "chunk at offset " + std::to_string(chunk.compressed_offset);
  const uint64_t want = chunk.inner_offset + chunk.size;
  auto out = Unzstd(frames, want);
  if (!out) return Fail(out.error().WithContext(at));
  if (out->size() != want) {
    return Fail(Code::kCorrupt, at + ": its frames end after " + std::to_string(out->size()) +
                                    " of " + std::to_string(want) + " bytes");
  }
  out->erase(0, chunk.inner_offset);
  if (!ChunkDigestMatches(*out, chunk)) return Fail(Code::kCorrupt, at + ": digest mismatch");
  return out;
}

}  // namespace imagefs
