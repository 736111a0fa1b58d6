// TarIndex: an mmap'd, read-only index of one layer tar's entries, written once at
// registration. Each entry says where its data lies in the stored blob, so reading a
// file is a pread at an offset: nothing is ever extracted. Immutable after Open(), so
// shared without locks. On-disk format: see graph/README.md ("Layer index").
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "graph/base/error.h"

namespace imagefs {

enum class EntryKind : uint8_t {
  kFile = 0,
  kDir = 1,
  kSymlink = 2,
  kHardlink = 3,  // link_* names the target path in the same or a lower layer
  kCharDev = 4,
  kBlockDev = 5,
  kFifo = 6,
  kSocket = 7,
};

// The S_IFMT bits of an entry of kind k (a hardlink's are its target's: a regular file).
uint32_t TypeBits(EntryKind k);

// data_offset of a sparse file, whose data runs are listed in the extent table.
inline constexpr uint64_t kUseExtents = UINT64_MAX;

// One tar member, in tar order. 88 bytes; all integers little-endian (host order: the
// index is a cache of the blob and is rebuilt, never copied, between machines).
struct IndexEntry {
  uint64_t size;         // st_size (logical size for sparse files)
  uint64_t data_offset;  // offset of the first data byte in the blob, or kUseExtents
  int64_t mtime_sec;
  uint32_t mtime_nsec;
  uint32_t mode;  // permission and type bits (S_IFMT | 07777)
  uint32_t uid;
  uint32_t gid;
  uint32_t path_off, path_len;  // into the string table; "" is the root directory
  uint32_t link_off, link_len;  // symlink target, or hardlink target path
  uint32_t rdev_major, rdev_minor;
  uint32_t xattr_first, xattr_count;
  uint32_t extent_first, extent_count;  // extent_count == 0: contiguous at data_offset
  EntryKind kind;
  uint8_t reserved[7];
};
static_assert(sizeof(IndexEntry) == 88);

struct IndexXattr {
  uint32_t name_off, name_len, value_off, value_len;
};
// A data run of a sparse file; logical ranges not covered are holes (read as zeros).
struct IndexExtent {
  uint64_t logical, physical, length;
};

// The index file's first 64 bytes; entries, xattrs, extents and strings follow in that order.
inline constexpr char kIndexMagic[8] = {'I', 'M', 'G', 'F', 'S', 'I', 'X', '1'};
struct IndexHeader {
  char magic[8];
  uint32_t version;
  uint32_t reserved;
  uint64_t entry_count, xattr_count, extent_count, strings_size, tar_size, content_bytes;
};
static_assert(sizeof(IndexHeader) == 64);

struct IndexSummary {
  uint64_t entries = 0;
  uint64_t content_bytes = 0;  // sum of regular files' sizes
};

// One tar member as ScanTar finds it: the entry (its string and table offsets unset), its
// cleaned path, link target, xattrs and, for a sparse file, its data runs.
struct ScannedMember {
  IndexEntry entry{};
  std::string path, link;
  std::vector<std::pair<std::string, std::string>> xattrs;
  std::vector<IndexExtent> runs;
  uint64_t header_at = 0;      // where its first header block starts in the tar
  bool data_complete = false;  // false: a plain file of a prefix, its data still to come
};

// kWhole: the bytes are the whole tar, and a member cut short is corrupt. kPrefix: the tar
// is still arriving; the scan stops, without error, at the first member it cannot describe
// yet, and gives a plain file whose header and first data bytes are there (data_complete
// false) as its last member.
enum class TarScanMode { kWhole, kPrefix };
struct TarScanEnd {
  uint64_t resume = 0;  // the last member's header: where the next scan of a prefix starts
  bool whole = false;   // the archive's end was reached (kWhole only)
};
// Scans the members of the tar in memory at [tar, tar + size) from `start` (a header
// boundary), calling each() for every member, with data offsets counted from `tar` (each()
// may move the member's strings and vectors away).
// Members at or after `start` are scanned again by a scan from there.
Result<TarScanEnd> ScanTar(const char* tar, uint64_t size, uint64_t start, TarScanMode mode,
                           const std::function<Status(ScannedMember&)>& each,
                           bool drop_behind = false);

// Indexes the tar held in memory at [tar, tar + tar_size) and writes the index to
// out_path. tar must be the whole blob (an mmap of it): offsets are taken from where
// libarchive's data pointers fall inside it. Fails with kCorrupt on a malformed tar.
// With drop_behind (only for a file mapping), pages already indexed are released as the
// scan goes, so a large layer does not inflate the process's resident memory.
Result<IndexSummary> WriteTarIndex(const char* tar, uint64_t tar_size,
                                   const std::filesystem::path& out_path, bool drop_behind = false);

class TarIndex {
 public:
  static Result<std::shared_ptr<const TarIndex>> Open(const std::filesystem::path& path);
  ~TarIndex();
  TarIndex(const TarIndex&) = delete;
  TarIndex& operator=(const TarIndex&) = delete;

  std::span<const IndexEntry> entries() const { return entries_; }
  std::string_view Path(const IndexEntry& e) const { return Str(e.path_off, e.path_len); }
  std::string_view Link(const IndexEntry& e) const { return Str(e.link_off, e.link_len); }
  // Ranges out of bounds (a damaged index: Open checks only what costs no pass over the
  // entries) come back empty, never past the mapping.
  std::span<const IndexXattr> Xattrs(const IndexEntry& e) const {
    if (uint64_t{e.xattr_first} + e.xattr_count > xattrs_.size()) return {};
    return xattrs_.subspan(e.xattr_first, e.xattr_count);
  }
  std::span<const IndexExtent> Extents(const IndexEntry& e) const {
    if (uint64_t{e.extent_first} + e.extent_count > extents_.size()) return {};
    return extents_.subspan(e.extent_first, e.extent_count);
  }
  std::string_view Str(uint32_t off, uint32_t len) const {
    if (uint64_t{off} + len > strings_.size()) return {};
    return strings_.substr(off, len);
  }
  uint64_t tar_size() const { return tar_size_; }
  // Unmaps the pages a pass over the whole index made resident in this process (they stay
  // in the page cache and fault back in when used): a tree build of a million-entry layer
  // would otherwise keep its 100 MB index resident on top of the tree.
  void DropResidentPages() const;
  uint64_t content_bytes() const { return content_bytes_; }

 private:
  TarIndex() = default;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::span<const IndexEntry> entries_;
  std::span<const IndexXattr> xattrs_;
  std::span<const IndexExtent> extents_;
  std::string_view strings_;
  uint64_t tar_size_ = 0;
  uint64_t content_bytes_ = 0;
};

// Reads up to len bytes of entry e's data at logical offset off from the blob fd,
// filling holes of sparse files with zeros. Returns the bytes read (short at EOF).
Result<size_t> ReadEntryData(int blob_fd, const TarIndex& index, const IndexEntry& e, uint64_t off,
                             size_t len, char* buf);

// Lexically cleans a path: no leading "/" or "./", no empty or "." components, ".."
// clamped at the root, no trailing "/". *escaped (if given) says whether a ".." tried to
// leave the root.
std::string CleanPath(std::string_view path, bool* escaped = nullptr);
// A tar member name cleaned as umoci's securejoin does.
inline std::string CleanTarPath(std::string_view name) { return CleanPath(name); }

}  // namespace imagefs
