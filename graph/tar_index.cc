#include "graph/tar_index.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "graph/archive_read.h"
#include "graph/base/fs_util.h"
#include "graph/base/log.h"
#include "graph/index_writer.h"

namespace imagefs {
namespace {

EntryKind KindOf(archive_entry* ae) {
  if (archive_entry_hardlink(ae) != nullptr) return EntryKind::kHardlink;
  switch (archive_entry_filetype(ae)) {
    case AE_IFDIR: return EntryKind::kDir;
    case AE_IFLNK: return EntryKind::kSymlink;
    case AE_IFCHR: return EntryKind::kCharDev;
    case AE_IFBLK: return EntryKind::kBlockDev;
    case AE_IFIFO: return EntryKind::kFifo;
    case AE_IFSOCK: return EntryKind::kSocket;
    default: return EntryKind::kFile;
  }
}

// A tar number field: octal digits, or GNU's base-256 (high bit of the first byte set).
std::optional<uint64_t> TarNumber(const char* field, size_t len) {
  auto* u = reinterpret_cast<const unsigned char*>(field);
  if (u[0] & 0x80) {
    uint64_t v = u[0] & 0x3f;
    for (size_t i = 1; i < len; ++i) {
      if (v >> 56) return std::nullopt;
      v = (v << 8) | u[i];
    }
    return v;
  }
  uint64_t v = 0;
  size_t i = 0;
  while (i < len && field[i] == ' ') ++i;
  for (; i < len && field[i] >= '0' && field[i] <= '7'; ++i) {
    if (v >> 60) return std::nullopt;
    v = v * 8 + static_cast<uint64_t>(field[i] - '0');
  }
  return v;
}

std::string_view UpToNul(const char* p, size_t max) { return std::string_view(p, strnlen(p, max)); }

// The name and link target of the entry whose headers start at `pos`, as the archive holds
// their bytes. libarchive hands names over converted to the locale's charset, and PAX names
// (UTF-8 by definition) normalised to NFC on the way: "café" written with U+00E9 and with
// "e" + U+0301 became one name, and one of two files vanished. Names are bytes here: a PAX
// path or linkpath record (GNU.sparse.name first), else a GNU long name or link, else the ustar
// fields (prefix +
// "/" + name for POSIX ustar). Nothing found (a malformed header) leaves libarchive's.
struct RawNames {
  std::optional<std::string> path, link;
};

RawNames ReadRawNames(const char* tar, uint64_t size, uint64_t pos) {
  RawNames pax, gnu;
  std::optional<std::string> sparse_name;
  for (int extensions = 0; extensions < 64 && pos + 512 <= size; ++extensions) {
    const char* h = tar + pos;
    char type = h[156];
    if (type != 'x' && type != 'L' && type != 'K' && type != 'g') {
      RawNames out;
      out.path = sparse_name ? sparse_name : pax.path ? pax.path : gnu.path;
      out.link = pax.link ? pax.link : gnu.link;
      if (!out.path) {
        std::string name(UpToNul(h, 100));
        bool posix = std::memcmp(h + 257, "ustar\0", 6) == 0;
        std::string_view prefix = posix ? UpToNul(h + 345, 155) : std::string_view();
        out.path = prefix.empty() ? name : std::string(prefix) + "/" + name;
      }
      if (!out.link) out.link = std::string(UpToNul(h + 157, 100));
      return out;
    }
    auto body = TarNumber(h + 124, 12);
    if (!body || *body > size - pos - 512) return {};
    std::string_view data(h + 512, *body);
    if (type == 'x') {
      // Records "LENGTH KEY=VALUE\n"; LENGTH counts the whole record.
      while (!data.empty()) {
        size_t space = data.find(' ');
        if (space == std::string_view::npos || space > 20) return {};
        uint64_t len = 0;
        for (char c : data.substr(0, space)) {
          if (c < '0' || c > '9') return {};
          len = len * 10 + static_cast<uint64_t>(c - '0');
        }
        if (len <= space + 1 || len > data.size()) return {};
        std::string_view record = data.substr(space + 1, len - space - 2);  // without "\n"
        size_t eq = record.find('=');
        if (eq != std::string_view::npos) {
          std::string_view key = record.substr(0, eq), value = record.substr(eq + 1);
          // GNU tar's PAX sparse files keep their real name apart (the path is made up).
          if (key == "GNU.sparse.name") sparse_name = std::string(value);
          if (key == "path") pax.path = std::string(value);
          if (key == "linkpath") pax.link = std::string(value);
        }
        data.remove_prefix(len);
      }
    } else if (type == 'L') {
      gnu.path = std::string(UpToNul(data.data(), data.size()));
    } else if (type == 'K') {
      gnu.link = std::string(UpToNul(data.data(), data.size()));
    }
    pos += 512 + ((*body + 511) & ~uint64_t{511});
  }
  return {};
}

}  // namespace

uint32_t TypeBits(EntryKind k) {
  switch (k) {
    case EntryKind::kDir: return S_IFDIR;
    case EntryKind::kSymlink: return S_IFLNK;
    case EntryKind::kCharDev: return S_IFCHR;
    case EntryKind::kBlockDev: return S_IFBLK;
    case EntryKind::kFifo: return S_IFIFO;
    case EntryKind::kSocket: return S_IFSOCK;
    case EntryKind::kFile:
    case EntryKind::kHardlink: return S_IFREG;
  }
  return S_IFREG;
}

std::string CleanPath(std::string_view name, bool* escaped) {
  if (escaped) *escaped = false;
  std::vector<std::string_view> parts;
  size_t i = 0;
  while (i <= name.size()) {
    size_t j = name.find('/', i);
    if (j == std::string_view::npos) j = name.size();
    std::string_view comp = name.substr(i, j - i);
    if (comp == "..") {
      if (!parts.empty()) {
        parts.pop_back();
      } else if (escaped) {
        *escaped = true;
      }
    } else if (!comp.empty() && comp != ".") {
      parts.push_back(comp);
    }
    i = j + 1;
  }
  std::string out;
  for (auto p : parts) {
    if (!out.empty()) out += '/';
    out.append(p);
  }
  return out;
}

Result<TarScanEnd> ScanTar(const char* tar, uint64_t size, uint64_t start, TarScanMode mode,
                           const std::function<Status(ScannedMember&)>& each, bool drop_behind) {
  const bool prefix = mode == TarScanMode::kPrefix;
  uint64_t dropped = 0, high_water = 0;
  TarScanEnd end{start, false};
  // An empty blob is a valid empty layer (some tools write zero bytes for "no changes").
  if (size <= start) {
    end.whole = !prefix;
    return end;
  }
  std::unique_ptr<archive, ArchiveReadDeleter> a(archive_read_new());
  if (!a) throw std::bad_alloc();
  archive_read_support_format_tar(a.get());
  archive_read_support_format_gnutar(a.get());
  if (archive_read_open_memory(a.get(), tar + start, size - start) != ARCHIVE_OK) {
    if (prefix) return end;
    return Fail(Code::kCorrupt, std::string("not a tar archive: ") + ArchiveError(a.get()));
  }
  uint64_t entry_count = 0;
  archive_entry* ae = nullptr;
  ScannedMember m;
  while (true) {
    int r = archive_read_next_header(a.get(), &ae);
    // A prefix ends where its bytes do: libarchive cannot tell that from the archive's end.
    if (prefix && r != ARCHIVE_OK && r != ARCHIVE_WARN) return end;
    if (r == ARCHIVE_EOF) break;
    if (r == ARCHIVE_WARN) {
      Logger("graph")->debug("index tar entry: warning: {}", ArchiveError(a.get()));
    } else if (r != ARCHIVE_OK) {
      return Fail(Code::kCorrupt,
                  "tar entry " + std::to_string(entry_count) + ": " + ArchiveError(a.get()));
    }
    const char* raw_name = archive_entry_pathname(ae);
    if (raw_name == nullptr) {
      return Fail(Code::kCorrupt,
                  "tar entry " + std::to_string(entry_count) + ": name cannot be decoded");
    }
    la_int64_t at = archive_read_header_position(a.get());
    m.header_at = start + static_cast<uint64_t>(std::max<la_int64_t>(0, at));
    IndexEntry& e = m.entry;
    e = IndexEntry{};
    e.kind = KindOf(ae);
    RawNames raw = at >= 0 ? ReadRawNames(tar, size, m.header_at) : RawNames{};
    m.path = CleanTarPath(raw.path ? *raw.path : raw_name);
    const std::string& path = m.path;
    la_int64_t uid = archive_entry_uid(ae), gid = archive_entry_gid(ae);
    if (uid < 0 || uid > UINT32_MAX || gid < 0 || gid > UINT32_MAX) {
      return Fail(Code::kCorrupt, "tar entry \"" + path + "\": uid/gid out of range");
    }
    e.uid = static_cast<uint32_t>(uid);
    e.gid = static_cast<uint32_t>(gid);
    e.mode = (archive_entry_perm(ae) & 07777) | TypeBits(e.kind);
    e.mtime_sec = archive_entry_mtime(ae);
    e.mtime_nsec = static_cast<uint32_t>(archive_entry_mtime_nsec(ae));
    la_int64_t entry_size = archive_entry_size(ae);
    if (entry_size < 0) return Fail(Code::kCorrupt, "tar entry \"" + path + "\": negative size");
    e.size = static_cast<uint64_t>(entry_size);
    m.link.clear();
    if (e.kind == EntryKind::kHardlink) {
      const char* target = archive_entry_hardlink(ae);
      m.link = CleanTarPath(raw.link ? *raw.link : target);
    } else if (e.kind == EntryKind::kSymlink) {
      const char* target = archive_entry_symlink(ae);
      m.link = raw.link ? *raw.link : std::string(target ? target : "");
    }
    if (e.kind == EntryKind::kCharDev || e.kind == EntryKind::kBlockDev) {
      e.rdev_major = static_cast<uint32_t>(archive_entry_rdevmajor(ae));
      e.rdev_minor = static_cast<uint32_t>(archive_entry_rdevminor(ae));
    }
    m.xattrs.clear();
    archive_entry_xattr_reset(ae);
    const char* xname;
    const void* xvalue;
    size_t xsize;
    while (archive_entry_xattr_next(ae, &xname, &xvalue, &xsize) == ARCHIVE_OK)
      m.xattrs.emplace_back(xname, std::string(static_cast<const char*>(xvalue), xsize));

    // Walk the data blocks: each pointer lies inside the mapped blob, so its distance
    // from the start is the data's offset. Adjacent runs are merged; a file left with
    // one run starting at logical 0 covering its size is contiguous.
    std::vector<IndexExtent>& runs = m.runs;
    runs.clear();
    const void* buf;
    size_t len;
    la_int64_t logical;
    uint64_t present = 0;
    while ((r = archive_read_data_block(a.get(), &buf, &len, &logical)) == ARCHIVE_OK) {
      if (len == 0) continue;
      const char* p = static_cast<const char*>(buf);
      if (p < tar || p + len > tar + size || logical < 0 ||
          static_cast<uint64_t>(logical) + len > e.size) {
        return Fail(Code::kCorrupt, "tar entry \"" + path + "\": data outside the archive");
      }
      present += len;
      uint64_t physical = static_cast<uint64_t>(p - tar);
      high_water = std::max<uint64_t>(high_water, physical + len);
      if (!runs.empty()) {
        IndexExtent& last = runs.back();
        if (last.logical + last.length == static_cast<uint64_t>(logical) &&
            last.physical + last.length == physical) {
          last.length += len;
          continue;
        }
      }
      runs.push_back({static_cast<uint64_t>(logical), physical, len});
    }
    const bool sparse = archive_entry_sparse_count(ae) > 0;
    m.data_complete = r == ARCHIVE_EOF;
    if (!m.data_complete) {
      // Cut short: in a prefix, a plain file whose first bytes are here is known already
      // (its data follows in order); anything else waits for the rest.
      bool known = prefix && !sparse && runs.size() == 1 && runs[0].logical == 0;
      if (!known) {
        if (prefix) return end;
        return Fail(Code::kCorrupt, "tar entry \"" + path + "\": " + ArchiveError(a.get()));
      }
      runs[0].length = e.size;
    }
    bool contiguous = runs.size() == 1 && runs[0].logical == 0 && runs[0].length == e.size;
    if (contiguous) {
      e.data_offset = runs[0].physical;
      runs.clear();
    } else if (!runs.empty() || sparse) {
      e.data_offset = kUseExtents;
    } else if (e.size > 0 && e.kind == EntryKind::kFile) {
      if (prefix && !m.data_complete) return end;
      return Fail(Code::kCorrupt, "tar entry \"" + path + "\": data missing");
    }
    // Progress counts headers too: a layer of empty files has no data blocks at all.
    high_water = std::max<uint64_t>(high_water, m.header_at);
    RETURN_IF_ERROR(each(m));
    ++entry_count;
    end.resume = m.header_at;
    if (!m.data_complete) return end;
    if (drop_behind && high_water > dropped + (64u << 20)) {
      uint64_t upto = high_water & ~uint64_t{4095};
      madvise(const_cast<char*>(tar), upto > (1u << 20) ? upto - (1u << 20) : 0, MADV_DONTNEED);
      dropped = upto;
    }
  }
  end.whole = true;
  return end;
}

Result<IndexSummary> WriteTarIndex(const char* tar, uint64_t tar_size,
                                   const std::filesystem::path& out_path, bool drop_behind) {
  ASSIGN_OR_RETURN(std::unique_ptr<IndexWriter> out, IndexWriter::Create(out_path));
  RETURN_IF_ERROR(ScanTar(
      tar, tar_size, 0, TarScanMode::kWhole, [&](ScannedMember& m) { return AddMember(*out, m); },
      drop_behind));
  return out->Finish(tar_size);
}

void TarIndex::DropResidentPages() const {
  if (map_ != nullptr) madvise(map_, map_size_, MADV_DONTNEED);
}

Result<std::shared_ptr<const TarIndex>> TarIndex::Open(const std::filesystem::path& path) {
  ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(path, O_RDONLY));
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return FailErrno("stat " + path.string());
  auto corrupt = [&](const std::string& why) {
    return Fail(Code::kCorrupt, "layer index " + path.string() + ": " + why);
  };
  if (static_cast<size_t>(st.st_size) < sizeof(IndexHeader)) return corrupt("truncated");
  std::shared_ptr<TarIndex> idx(new TarIndex());
  idx->map_size_ = static_cast<size_t>(st.st_size);
  idx->map_ = mmap(nullptr, idx->map_size_, PROT_READ, MAP_SHARED, fd.get(), 0);
  if (idx->map_ == MAP_FAILED) {
    idx->map_ = nullptr;
    return FailErrno("mmap " + path.string());
  }
  const char* base = static_cast<const char*>(idx->map_);
  IndexHeader h;
  std::memcpy(&h, base, sizeof h);
  if (std::memcmp(h.magic, kIndexMagic, sizeof kIndexMagic) != 0 || h.version != 1) {
    return corrupt("bad magic or version");
  }
  // Each count is bounded by the file size first, so that hostile counts cannot wrap.
  const uint64_t size = idx->map_size_;
  if (h.entry_count > size / sizeof(IndexEntry) || h.xattr_count > size / sizeof(IndexXattr) ||
      h.extent_count > size / sizeof(IndexExtent) || h.strings_size > size) {
    return corrupt("counts exceed the file size");
  }
  uint64_t want = sizeof h + h.entry_count * sizeof(IndexEntry) +
                  h.xattr_count * sizeof(IndexXattr) + h.extent_count * sizeof(IndexExtent) +
                  h.strings_size;
  if (want != idx->map_size_) return corrupt("size does not match its header");
  const char* p = base + sizeof h;
  idx->entries_ = {reinterpret_cast<const IndexEntry*>(p), h.entry_count};
  p += h.entry_count * sizeof(IndexEntry);
  idx->xattrs_ = {reinterpret_cast<const IndexXattr*>(p), h.xattr_count};
  p += h.xattr_count * sizeof(IndexXattr);
  idx->extents_ = {reinterpret_cast<const IndexExtent*>(p), h.extent_count};
  p += h.extent_count * sizeof(IndexExtent);
  idx->strings_ = {p, h.strings_size};
  idx->tar_size_ = h.tar_size;
  idx->content_bytes_ = h.content_bytes;
  // No pass over the entries: opening costs the same for ten entries or ten million. The
  // index is ours, written whole before its layer was committed; the accessors keep a
  // damaged one inside its mapping.
  return std::shared_ptr<const TarIndex>(std::move(idx));
}

TarIndex::~TarIndex() {
  if (map_ != nullptr) munmap(map_, map_size_);
}

Result<size_t> ReadEntryData(int blob_fd, const TarIndex& index, const IndexEntry& e, uint64_t off,
                             size_t len, char* buf) {
  if (off >= e.size) return 0;
  len = static_cast<size_t>(std::min<uint64_t>(len, e.size - off));
  if (e.data_offset != kUseExtents) {
    RETURN_IF_ERROR(PreadAll(blob_fd, buf, len, static_cast<off_t>(e.data_offset + off)));
    return len;
  }
  std::memset(buf, 0, len);
  for (const IndexExtent& x : index.Extents(e)) {
    uint64_t lo = std::max(off, x.logical);
    uint64_t hi = std::min(off + len, x.logical + x.length);
    if (lo >= hi) continue;
    RETURN_IF_ERROR(PreadAll(blob_fd, buf + (lo - off), static_cast<size_t>(hi - lo),
                             static_cast<off_t>(x.physical + (lo - x.logical))));
  }
  return len;
}

}  // namespace imagefs
