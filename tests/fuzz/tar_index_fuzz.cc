// The layer indexer on raw tar bytes (ustar, GNU long names and sparse files, PAX headers
// and sparse maps, hardlinks, whiteouts): WriteTarIndex, then the index opened and every
// entry read back through it.
#include <sys/mman.h>

#include <cstring>
#include <vector>

#include "graph/tar_index.h"
#include "tests/fuzz/fuzz_util.h"

namespace imagefs::fuzz {
namespace {

// The blob as the store holds it: a file the indexer's offsets point into.
UniqueFd BlobOf(std::string_view tar) {
  int fd = memfd_create("layer.tar", MFD_CLOEXEC);
  FUZZ_CHECK(fd >= 0);
  UniqueFd blob(fd);
  FUZZ_CHECK(WriteAll(blob.get(), tar.data(), tar.size()).has_value());
  return blob;
}

void ReadBack(const TarIndex& index, int blob_fd, uint64_t tar_size) {
  std::vector<char> buf(4096);
  for (const IndexEntry& e : index.entries()) {
    (void)index.Path(e);
    (void)index.Link(e);
    for (const IndexXattr& x : index.Xattrs(e)) {
      (void)index.Str(x.name_off, x.name_len);
      (void)index.Str(x.value_off, x.value_len);
    }
    for (const IndexExtent& x : index.Extents(e)) {
      // Every run the indexer recorded lies inside the tar and inside the file.
      FUZZ_CHECK(x.physical + x.length <= tar_size);
      FUZZ_CHECK(x.logical + x.length <= e.size);
    }
    if (e.kind != EntryKind::kFile) continue;
    if (e.data_offset != kUseExtents) FUZZ_CHECK(e.data_offset + e.size <= tar_size);
    // The start and the end of the file: enough to cross a sparse map's holes and runs.
    for (uint64_t off : {uint64_t{0}, e.size > buf.size() ? e.size - buf.size() : 0}) {
      auto n = ReadEntryData(blob_fd, index, e, off, buf.size(), buf.data());
      FUZZ_CHECK(n.has_value());
      FUZZ_CHECK(*n == std::min<uint64_t>(buf.size(), e.size - off));
    }
  }
}

}  // namespace

void FuzzOne(std::string_view tar) {
  static ScratchDir dir("imagefs-fuzz-tar-index");
  std::filesystem::path index_path = dir.path() / "index";
  auto summary = WriteTarIndex(tar.data(), tar.size(), index_path);
  if (!summary) return;
  auto index = TarIndex::Open(index_path);
  FUZZ_CHECK(index.has_value());  // what WriteTarIndex wrote must open
  FUZZ_CHECK((*index)->entries().size() == summary->entries);
  FUZZ_CHECK((*index)->tar_size() == tar.size());
  UniqueFd blob = BlobOf(tar);
  ReadBack(**index, blob.get(), tar.size());
}

}  // namespace imagefs::fuzz
