// The eStargz reader on hostile layers: an input that starts with '{' is a TOC JSON (its
// digest taken as annotated, so the fuzzer reaches past the check); any other is a whole
// layer blob: footer, TOC member, TOC, then every chunk inflated from the blob. What is
// accepted must hold the layout the mount will rely on.
#include <vector>

#include "graph/base/digest.h"
#include "graph/estargz.h"
#include "graph/tar_index.h"
#include "tests/fuzz/fuzz_util.h"

namespace imagefs::fuzz {
namespace {

constexpr uint64_t kJsonTocOffset = 1 << 20;

// Chunks inside the content file and the data; each file's chunks inside its own bytes.
void CheckLayout(const StargzLayer& layer, const TarIndex& index, uint64_t toc_offset) {
  FUZZ_CHECK(index.entries().size() == layer.summary.entries);
  FUZZ_CHECK(layer.prefetch_chunks <= layer.chunks.size());
  for (const StargzChunk& c : layer.chunks) {
    FUZZ_CHECK(c.size > 0 && c.size <= kMaxStargzChunkBytes);
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
  if (!input.empty() && input[0] == '{') {
    auto layer = WriteStargzIndex(input, Sha256::Of(input), kJsonTocOffset, index_path);
    if (!layer) return;
    auto index = TarIndex::Open(index_path);
    FUZZ_CHECK(index.has_value());
    CheckLayout(*layer, **index, kJsonTocOffset);
    return;
  }
  auto footer = ParseStargzFooter(input.substr(input.size() - std::min<size_t>(input.size(), 51)),
                                  input.size());
  if (!footer) return;
  FUZZ_CHECK(footer->toc_offset + footer->footer_size <= input.size());
  auto toc = ExtractStargzToc(
      input.substr(footer->toc_offset, input.size() - footer->footer_size - footer->toc_offset));
  if (!toc) return;
  FUZZ_CHECK(toc->size() <= kMaxStargzTocBytes);
  auto layer = WriteStargzIndex(*toc, Sha256::Of(*toc), footer->toc_offset, index_path);
  if (!layer) return;
  auto index = TarIndex::Open(index_path);
  FUZZ_CHECK(index.has_value());
  CheckLayout(*layer, **index, footer->toc_offset);
  size_t tried = 0;
  for (const StargzChunk& c : layer->chunks) {
    if (++tried > 64) break;
    auto data = InflateStargzChunk(
        input.substr(c.compressed_offset, c.compressed_end - c.compressed_offset), c);
    if (data) FUZZ_CHECK(data->size() == c.size);
  }
}

}  // namespace imagefs::fuzz
