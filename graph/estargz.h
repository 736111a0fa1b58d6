// eStargz layers (and stargz, their predecessor): a gzip tar in which every file's data
// starts a gzip member of its own, followed by a table of contents (the TOC: a tar holding
// stargz.index.json, in one gzip member) and a footer saying where the TOC starts. A reader
// takes footer and TOC, then only the members of the files it reads. This is the format's
// one home: footer, TOC and chunks are parsed and checked here, as hostile input; where the
// bytes come from (a local blob, Range requests) is the caller's business.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "graph/base/digest.h"
#include "graph/base/error.h"
#include "graph/tar_index.h"

namespace imagefs {

// The annotation on an eStargz layer's descriptor: sha256 of its TOC JSON.
inline constexpr std::string_view kStargzTocDigestAnnotation =
    "containerd.io/snapshot/stargz/toc.digest";
// eStargz's footer; stargz's is 47 bytes.
inline constexpr size_t kStargzFooterSize = 51;
// The TOC JSON is held in memory while it is read (the index it becomes is not): this
// bounds it, and with it the entries of one layer (a 100,000-file layer's TOC is ~25 MB).
inline constexpr uint64_t kMaxStargzTocBytes = 256ull << 20;

// A chunk is inflated in memory to be verified: chunks (and offsets into a shared member)
// above this are refused. Producers cut files into 4 MiB chunks by default.
inline constexpr uint64_t kMaxStargzChunkBytes = 64ull << 20;

struct StargzFooter {
  uint64_t toc_offset;   // where the TOC's gzip member starts in the blob
  uint64_t footer_size;  // 51 (eStargz) or 47 (stargz): the TOC member ends where it starts
};

// Reads the footer from the blob's last bytes (`tail`, up to kStargzFooterSize of them) of
// a blob of blob_size bytes. kCorrupt when there is no stargz footer or it points outside.
Result<StargzFooter> ParseStargzFooter(std::string_view tail, uint64_t blob_size);

// The TOC JSON out of the TOC's gzip member (the blob's bytes from toc_offset up to the
// footer): inflated under kMaxStargzTocBytes, and the one tar entry stargz.index.json taken.
Result<std::string> ExtractStargzToc(std::string_view member);

// Where a piece of a regular file lies in the blob. Files larger than the producer's chunk
// size (4 MiB by default) have several chunks; each is verified on its own.
struct StargzChunk {
  uint64_t content_offset;     // where its bytes go in the layer's content file (below)
  uint64_t size;               // uncompressed bytes
  uint64_t compressed_offset;  // its gzip member in the blob: [compressed_offset,
  uint64_t compressed_end;     //   compressed_end)
  uint64_t inner_offset;       // where it starts in the member's inflated bytes
  std::array<uint8_t, 32> sha256;
};

struct StargzLayer {
  std::vector<StargzChunk> chunks;  // in TOC order
  // The first prefetch_chunks chunks are those of files before .prefetch.landmark, which
  // the producer found were read first (0 with .no.prefetch.landmark or none).
  size_t prefetch_chunks = 0;
  // Size of the content file: every regular file's bytes at a 4 KiB-aligned offset, in
  // TOC order (a sparse file, filled chunk by chunk as they are fetched).
  uint64_t content_size = 0;
  IndexSummary summary;
};

// Checks the TOC JSON against toc_digest (the layer's annotation) and every entry and
// chunk against the layout of a blob whose TOC starts at toc_offset, and writes the layer's
// index (tar_index.h's format) at index_path: entries in TOC order, without the landmark
// files, data offsets into the content file. kCorrupt names the entry at fault: a name
// escaping the root, a chunk outside the blob or overlapping another, a file its chunks do
// not cover exactly, a chunk without a digest (nothing unverified is served), too many
// entries.
Result<StargzLayer> WriteStargzIndex(std::string_view toc_json, const Digest& toc_digest,
                                     uint64_t toc_offset, const std::filesystem::path& index_path);

// The chunk's bytes, from its member's bytes (the blob's [compressed_offset,
// compressed_end)): inflated only as far as the chunk reaches, and checked against its
// digest. kCorrupt on a mismatch or a member that ends too soon.
Result<std::string> InflateStargzChunk(std::string_view member, const StargzChunk& chunk);

}  // namespace imagefs
