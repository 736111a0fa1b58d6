// The eStargz and zstd:chunked readers on hostile layers. An input that starts with '{' is an
// eStargz TOC JSON, with 'Z{' a zstd:chunked one (their digests taken as annotated, so the
// fuzzer reaches past the check); with zstd's magic, a TOC's or a chunk's frames; with 'P', a
// zstd:chunked TOC position annotation; any other is a whole
// eStargz blob: footer, TOC member, TOC, then every chunk inflated from the blob. What is
// accepted must hold the layout the mount will rely on.
#include <vector>

#include "graph/base/digest.h"
#include "graph/estargz.h"
#include "graph/tar_index.h"
#include "graph/zstd_chunked.h"
#include "tests/fuzz/fuzz_util.h"

namespace imagefs::fuzz {
namespace {

constexpr uint64_t kJsonTocOffset = 1 << 20;

// Chunks inside the content file and the data; each file's chunks inside its own bytes.
void CheckLayout(const ChunkedLayout& layer, const TarIndex& index, uint64_t toc_offset) {
  FUZZ_CHECK(index.entries().size() == layer.summary.entries);
  FUZZ_CHECK(layer.prefetch_chunks <= layer.chunks.size());
  for (const TocChunk& c : layer.chunks) {
    FUZZ_CHECK(c.size > 0 && c.size <= kMaxChunkBytes);
    FUZZ_CHECK(c.content_offset + c.size <= layer.content_size);
    FUZZ_CHECK(c.compressed_offset < c.compressed_end && c.compressed_end <= toc_offset);
  }
  for (const IndexEntry& e : index.entries()) {
    (void)index.Path(e);
    (void)index.Link(e);
    if (e.kind == EntryKind::kFile && e.size > 0) {
      FUZZ_CHECK(e.data_offset % 4096 == 0 && e.data_offset + e.size <= layer.content_size);
    }
  }
}

}  // namespace

void FuzzOne(std::string_view input) {
  static ScratchDir dir("imagefs-fuzz-estargz");
  std::filesystem::path index_path = dir.path() / "index";
  const bool zstd_toc = input.starts_with("Z{");
  if (input.starts_with("{") || zstd_toc) {
    auto layer = zstd_toc ? WriteChunkedTocIndex(ChunkedFormat::kZstdChunked, input.substr(1),
                                                 kJsonTocOffset, index_path)
                          : WriteStargzIndex(input, Sha256::Of(input), kJsonTocOffset, index_path);
    if (!layer) return;
    auto index = TarIndex::Open(index_path);
    FUZZ_CHECK(index.has_value());
    CheckLayout(*layer, **index, kJsonTocOffset);
    return;
  }
  if (input.starts_with("\x28\xb5\x2f\xfd")) {
    // The frames as a TOC (checksum taken as annotated) and as a chunk (its digest will not
    // match: what matters is how decompressing hostile frames fails).
    ZstdChunkedToc toc{8, input.size(), input.size() * 4, Sha256::Of(input)};
    if (auto json = ExtractZstdChunkedToc(input, toc)) FUZZ_CHECK(json->size() == input.size() * 4);
    TocChunk chunk{0, std::min<uint64_t>(input.size() * 8, 64 << 10), 0, input.size(), 0, {}};
    FUZZ_CHECK(!DecompressZstdChunk(input, chunk).has_value());
    return;
  }
  if (input.starts_with("P")) {  // a zstd:chunked position annotation
    Descriptor d;
    d.size = 1 << 30;
    d.annotations["io.github.containers.zstd-chunked.manifest-position"] =
        std::string(input.substr(1));
    d.annotations["io.github.containers.zstd-chunked.manifest-checksum"] = Sha256::Of("").str();
    auto toc = ZstdChunkedTocOf(d);
    if (toc && *toc) {
      FUZZ_CHECK((*toc)->offset >= 8 && (*toc)->length <= d.size - (*toc)->offset);
      FUZZ_CHECK((*toc)->uncompressed_size <= kMaxTocBytes);
    }
    return;
  }
  auto footer = ParseStargzFooter(input.substr(input.size() - std::min<size_t>(input.size(), 51)),
                                  input.size());
  if (!footer) return;
  FUZZ_CHECK(footer->toc_offset + footer->footer_size <= input.size());
  auto toc = ExtractStargzToc(
      input.substr(footer->toc_offset, input.size() - footer->footer_size - footer->toc_offset));
  if (!toc) return;
  FUZZ_CHECK(toc->size() <= kMaxTocBytes);
  auto layer = WriteStargzIndex(*toc, Sha256::Of(*toc), footer->toc_offset, index_path);
  if (!layer) return;
  auto index = TarIndex::Open(index_path);
  FUZZ_CHECK(index.has_value());
  CheckLayout(*layer, **index, footer->toc_offset);
  size_t tried = 0;
  for (const TocChunk& c : layer->chunks) {
    if (++tried > 64) break;
    auto data = InflateStargzChunk(
        input.substr(c.compressed_offset, c.compressed_end - c.compressed_offset), c);
    if (data) FUZZ_CHECK(data->size() == c.size);
  }
}

}  // namespace imagefs::fuzz
