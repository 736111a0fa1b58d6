// eStargz layers (and stargz, their predecessor): a gzip tar in which every file's data
// starts a gzip member of its own, followed by a table of contents (the TOC: a tar holding
// stargz.index.json, in one gzip member) and a footer saying where the TOC starts. A reader
// takes footer and TOC, then only the members of the files it reads. This is the format's
// one home: footer, TOC and chunks are parsed and checked here, as hostile input; where the
// bytes come from (a local blob, Range requests) is the caller's business.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "graph/base/digest.h"
#include "graph/base/error.h"
#include "graph/chunked_toc.h"

namespace imagefs {

// The annotation on an eStargz layer's descriptor: sha256 of its TOC JSON.
inline constexpr std::string_view kStargzTocDigestAnnotation =
    "containerd.io/snapshot/stargz/toc.digest";
// eStargz's footer; stargz's is 47 bytes.
inline constexpr size_t kStargzFooterSize = 51;

struct StargzFooter {
  uint64_t toc_offset;   // where the TOC's gzip member starts in the blob
  uint64_t footer_size;  // 51 (eStargz) or 47 (stargz): the TOC member ends where it starts
};

// Reads the footer from the blob's last bytes (`tail`, up to kStargzFooterSize of them) of
// a blob of blob_size bytes. kCorrupt when there is no stargz footer or it points outside.
Result<StargzFooter> ParseStargzFooter(std::string_view tail, uint64_t blob_size);

// The TOC JSON out of the TOC's gzip member (the blob's bytes from toc_offset up to the
// footer): inflated under kMaxTocBytes, and the one tar entry stargz.index.json taken.
Result<std::string> ExtractStargzToc(std::string_view member);

// Checks the TOC JSON against toc_digest (the layer's annotation), then writes the layer's
// index as WriteChunkedTocIndex does, for a blob whose TOC starts at toc_offset.
Result<ChunkedLayout> WriteStargzIndex(std::string_view toc_json, const Digest& toc_digest,
                                       uint64_t toc_offset,
                                       const std::filesystem::path& index_path);

// The chunk's bytes, from its member's bytes (the blob's [compressed_offset,
// compressed_end)): inflated only as far as the chunk reaches, and checked against its
// digest. kCorrupt on a mismatch or a member that ends too soon.
Result<std::string> InflateStargzChunk(std::string_view member, const TocChunk& chunk);

}  // namespace imagefs
