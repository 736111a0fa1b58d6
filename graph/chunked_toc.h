// The table of contents that eStargz and zstd:chunked layers share (CRFS's TOC: a JSON list
// of entries, each file's data in compressed pieces of its own that a reader can fetch and
// decompress alone). The two formats differ in how the TOC is found and checked and in the
// compression (estargz.h, zstd_chunked.h); the entries and their checks are here, once.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "graph/base/error.h"
#include "graph/tar_index.h"

namespace imagefs {

enum class ChunkedFormat : uint8_t {
  kEstargz = 0,      // gzip members; a chunk may start inside a member (innerOffset)
  kZstdChunked = 1,  // zstd frames; podman's TOC also says where a file's frames end
};

// The TOC JSON is held in memory while it is read (the index it becomes is not): this
// bounds it, and with it the entries of one layer (a 100,000-file layer's TOC is ~25 MB).
inline constexpr uint64_t kMaxTocBytes = 256ull << 20;

// A chunk is decompressed in memory to be verified: chunks (and offsets into a shared
// member) above this are refused. Producers cut files into 4 MiB chunks by default.
inline constexpr uint64_t kMaxChunkBytes = 64ull << 20;

// Where a piece of a regular file lies in the blob. Files larger than the producer's chunk
// size have several chunks; each is verified on its own.
struct TocChunk {
  uint64_t content_offset;     // where its bytes go in the layer's content file (below)
  uint64_t size;               // uncompressed bytes
  uint64_t compressed_offset;  // its member or frame in the blob: [compressed_offset,
  uint64_t compressed_end;     //   compressed_end)
  uint64_t inner_offset;       // where it starts in the member's decompressed bytes
  std::array<uint8_t, 32> sha256;
};

struct ChunkedLayout {
  ChunkedFormat format = ChunkedFormat::kEstargz;
  std::vector<TocChunk> chunks;  // in TOC order
  // The first prefetch_chunks chunks are those of files before .prefetch.landmark, which
  // the producer found were read first (0 with .no.prefetch.landmark or none).
  size_t prefetch_chunks = 0;
  // Size of the content file: every regular file's bytes at a 4 KiB-aligned offset, in
  // TOC order (a sparse file, filled chunk by chunk as they are fetched).
  uint64_t content_size = 0;
  IndexSummary summary;
};

// Checks every entry and chunk of the TOC JSON (already checked against its digest by the
// format) against a blob whose compressed data ends at data_end, and writes the layer's
// index (tar_index.h's format) at index_path: entries in TOC order, without the landmark
// files, data offsets into the content file. kCorrupt names the entry at fault: a name
// escaping the root, a chunk outside the data or overlapping another, a file its chunks do
// not cover exactly, a chunk without a digest (nothing unverified is served), too many
// entries.
Result<ChunkedLayout> WriteChunkedTocIndex(ChunkedFormat format, std::string_view toc_json,
                                           uint64_t data_end,
                                           const std::filesystem::path& index_path);

// Whether data's sha256 is the chunk's.
bool ChunkDigestMatches(std::string_view data, const TocChunk& chunk);

// The chunk's bytes, from its member's or frame's bytes (the blob's [compressed_offset,
// compressed_end)), decompressed only as far as the chunk reaches and checked against its
// digest. kCorrupt on a mismatch or compressed data that ends too soon.
Result<std::string> DecompressChunk(ChunkedFormat format, std::string_view member,
                                    const TocChunk& chunk);

}  // namespace imagefs
