// zstd:chunked layers (containers/storage, written by podman and buildah): a zstd tar in
// which every file's data starts zstd frames of its own, followed by skippable frames that
// hold the TOC (zstd-compressed JSON in CRFS's format: chunked_toc.h), the tar-split data
// and a footer. The layer's descriptor says where the TOC is and gives the sha256 of its
// compressed bytes, so a reader takes the TOC with one Range request and then only the
// frames of the files it reads. This is the format's one home: annotations, TOC and chunks
// are parsed and checked here, as hostile input.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "graph/base/digest.h"
#include "graph/base/error.h"
#include "graph/chunked_toc.h"
#include "graph/descriptor.h"

namespace imagefs {

// Where a zstd:chunked layer's TOC is, from its descriptor's annotations.
struct ZstdChunkedToc {
  uint64_t offset;             // the compressed TOC (inside its skippable frame)
  uint64_t length;             // its compressed bytes
  uint64_t uncompressed_size;  // the JSON's
  Digest checksum;             // sha256 of the compressed bytes
};

// The TOC's place and checksum if the layer is zstd:chunked (both annotations present, under
// the current `io.github.containers.` names or the older `io.containers.` ones), nullopt if
// it is not; kCorrupt if the annotations are there but malformed or point outside the blob.
Result<std::optional<ZstdChunkedToc>> ZstdChunkedTocOf(const Descriptor& layer);

// The TOC JSON out of its compressed bytes (the blob's [offset, offset + length)): checked
// against the checksum, then decompressed, which must give exactly uncompressed_size bytes
// (at most kMaxTocBytes).
Result<std::string> ExtractZstdChunkedToc(std::string_view compressed, const ZstdChunkedToc& toc);

// Writes the layer's index as WriteChunkedTocIndex does, for a blob whose file data ends
// where the TOC's skippable frame begins.
Result<ChunkedLayout> WriteZstdChunkedIndex(std::string_view toc_json, const ZstdChunkedToc& toc,
                                            const std::filesystem::path& index_path);

// The chunk's bytes from its frames' bytes (the blob's [compressed_offset, compressed_end),
// whole frames), decompressed only as far as the chunk reaches, and checked against its
// digest. podman
// gives a chunk frames of its own; ctr-remote, like its eStargz, lets a file's frame run on
// into the tar headers after it, and may pack small files into one (innerOffset).
Result<std::string> DecompressZstdChunk(std::string_view frames, const TocChunk& chunk);

}  // namespace imagefs
