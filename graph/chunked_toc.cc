#include "graph/chunked_toc.h"

#include <openssl/evp.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "graph/base/digest.h"
#include "graph/estargz.h"
#include "graph/index_writer.h"
#include "graph/layer_names.h"
#include "graph/records.h"
#include "graph/zstd_chunked.h"

namespace imagefs {
namespace {

// Entries and chunks of one layer, together: bounds the index and the chunk table that a
// hostile TOC within kMaxTocBytes could ask for.
constexpr uint64_t kMaxTocRecords = 4'000'000;
constexpr uint64_t kContentAlign = 4096;

std::optional<std::string> Base64Decode(std::string_view in) {
  if (in.size() % 4 != 0 || in.size() > INT32_MAX) return std::nullopt;
  std::string out(in.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  if (n < 0) return std::nullopt;
  size_t pad = in.ends_with("==") ? 2 : in.ends_with("=") ? 1 : 0;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

std::optional<std::array<uint8_t, 32>> Sha256Bytes(std::string_view digest) {
  auto d = Digest::Parse(digest);
  if (!d) return std::nullopt;
  std::array<uint8_t, 32> out;
  for (size_t i = 0; i < 32; ++i) {
    out[i] = static_cast<uint8_t>(std::stoi(d->hex().substr(2 * i, 2), nullptr, 16));
  }
  return out;
}

// One TOC entry as the JSON gives it.
struct TocEntry {
  std::string name, type, link, modtime, chunk_digest;
  std::string digest;  // the whole file's: verifies a file of one chunk without chunkDigest
  uint64_t size = 0, offset = 0, end_offset = 0, chunk_offset = 0, chunk_size = 0;
  uint64_t inner_offset = 0, mode = 0, uid = 0, gid = 0, dev_major = 0, dev_minor = 0;
  bool has_offset = false, has_end_offset = false;
  std::vector<std::pair<std::string, std::string>> xattrs;  // values still base64
};

// Turns TOC entries, as they come, into index entries and chunks.
class TocIndexer {
 public:
  TocIndexer(IndexWriter& out, ChunkedFormat format, uint64_t data_end)
      : out_(out), format_(format), data_end_(data_end) {
    layer_.format = format;
  }

  Status Add(const TocEntry& t) {
    if (++records_ > kMaxTocRecords) {
      return Fail(Code::kCorrupt,
                  "TOC has more than " + std::to_string(kMaxTocRecords) + " entries and chunks");
    }
    bool escaped = false;
    std::string path = CleanPath(t.name, &escaped);
    if (escaped) return Bad(t.name, "name escapes the root");
    // Every offset starts a member, also those of entries that are not served (landmarks);
    // a zstd:chunked file's endOffset starts whatever follows its frames.
    if (t.has_offset && t.offset < data_end_) starts_.push_back(t.offset);
    if (t.has_end_offset) {
      if (!t.has_offset || t.end_offset <= t.offset || t.end_offset > data_end_) {
        return Bad(t.name, "endOffset " + std::to_string(t.end_offset) +
                               " is not after its offset and within the data (which ends at " +
                               std::to_string(data_end_) + ")");
      }
      starts_.push_back(t.end_offset);
    }
    if (t.type == "chunk") return AddChunk(path, t);
    RETURN_IF_ERROR(CloseFile());
    if (path.find('/') == std::string::npos && IsStargzMeta(path)) {
      if (path == ".prefetch.landmark") layer_.prefetch_chunks = layer_.chunks.size();
      return {};
    }
    IndexEntry e{};
    static const std::pair<std::string_view, EntryKind> kKinds[] = {
        {"reg", EntryKind::kFile},        {"dir", EntryKind::kDir},
        {"symlink", EntryKind::kSymlink}, {"hardlink", EntryKind::kHardlink},
        {"char", EntryKind::kCharDev},    {"block", EntryKind::kBlockDev},
        {"fifo", EntryKind::kFifo},
    };
    auto kind = std::find_if(std::begin(kKinds), std::end(kKinds),
                             [&](const auto& k) { return k.first == t.type; });
    if (kind == std::end(kKinds)) return Bad(t.name, "unknown type \"" + t.type + "\"");
    e.kind = kind->second;
    if (t.uid > UINT32_MAX || t.gid > UINT32_MAX) return Bad(t.name, "uid/gid out of range");
    if (t.dev_major > UINT32_MAX || t.dev_minor > UINT32_MAX) return Bad(t.name, "bad device");
    e.uid = static_cast<uint32_t>(t.uid);
    e.gid = static_cast<uint32_t>(t.gid);
    e.mode = static_cast<uint32_t>(t.mode & 07777) | TypeBits(e.kind);
    if (!t.modtime.empty()) {
      auto mtime = ParseRfc3339Nanos(t.modtime);
      if (!mtime) return Bad(t.name, "modtime \"" + t.modtime + "\" is not RFC 3339");
      std::tie(e.mtime_sec, e.mtime_nsec) = *mtime;
    }
    ASSIGN_OR_RETURN(std::tie(e.path_off, e.path_len), out_.AddString(path));
    if (e.kind == EntryKind::kHardlink) {
      ASSIGN_OR_RETURN(std::tie(e.link_off, e.link_len), out_.AddString(CleanPath(t.link)));
    } else if (e.kind == EntryKind::kSymlink) {
      ASSIGN_OR_RETURN(std::tie(e.link_off, e.link_len), out_.AddString(t.link));
    } else if (e.kind == EntryKind::kCharDev || e.kind == EntryKind::kBlockDev) {
      e.rdev_major = static_cast<uint32_t>(t.dev_major);
      e.rdev_minor = static_cast<uint32_t>(t.dev_minor);
    }
    for (const auto& [name, value] : t.xattrs) {
      auto bytes = Base64Decode(value);
      if (!bytes) return Bad(t.name, "xattr " + name + ": value is not base64");
      RETURN_IF_ERROR(out_.AddXattr(name, *bytes));
    }
    if (e.kind == EntryKind::kFile) {
      if (t.size > (uint64_t{1} << 62)) return Bad(t.name, "size out of range");
      e.size = t.size;
      e.data_offset = t.size > 0 ? layer_.content_size : 0;
      if (t.size > 0) {
        file_ = FileInProgress{path, t.size, 0, layer_.content_size, t.name};
        layer_.content_size += (t.size + kContentAlign - 1) / kContentAlign * kContentAlign;
        RETURN_IF_ERROR(AddChunk(path, t));
      }
    }
    return out_.AddEntry(e);
  }

  Result<ChunkedLayout> Finish() {
    RETURN_IF_ERROR(CloseFile());
    // Each chunk's member ends where the next member starts: the next larger offset of any
    // entry, or the TOC.
    std::vector<uint64_t>& starts = starts_;
    std::sort(starts.begin(), starts.end());
    starts.erase(std::unique(starts.begin(), starts.end()), starts.end());
    for (TocChunk& c : layer_.chunks) {
      auto next = std::upper_bound(starts.begin(), starts.end(), c.compressed_offset);
      c.compressed_end = next == starts.end() ? data_end_ : *next;
    }
    // Chunks sharing a member (newer writers pack small files) must not overlap in it.
    std::vector<const TocChunk*> order;
    order.reserve(layer_.chunks.size());
    for (const TocChunk& c : layer_.chunks) order.push_back(&c);
    std::sort(order.begin(), order.end(), [](const TocChunk* a, const TocChunk* b) {
      return std::tie(a->compressed_offset, a->inner_offset) <
             std::tie(b->compressed_offset, b->inner_offset);
    });
    for (size_t i = 1; i < order.size(); ++i) {
      const TocChunk& a = *order[i - 1];
      const TocChunk& b = *order[i];
      if (a.compressed_offset == b.compressed_offset && a.inner_offset + a.size > b.inner_offset) {
        return Fail(Code::kCorrupt, "TOC: two chunks overlap in the member at offset " +
                                        std::to_string(a.compressed_offset));
      }
    }
    ASSIGN_OR_RETURN(layer_.summary, out_.Finish(layer_.content_size));
    return std::move(layer_);
  }

 private:
  struct FileInProgress {
    std::string path;
    uint64_t size, covered, content_offset;
    std::string name;  // as the TOC spells it, for errors
  };

  tl::unexpected<Error> Bad(std::string_view name, const std::string& why) {
    return Fail(Code::kCorrupt, "TOC entry \"" + std::string(name) + "\": " + why);
  }

  // The first chunk comes with its file's entry, the others as entries of type "chunk".
  Status AddChunk(const std::string& path, const TocEntry& t) {
    if (!file_ || file_->path != path) return Bad(t.name, "chunk of no file before it");
    if (t.chunk_offset != file_->covered) {
      return Bad(t.name, "chunk at " + std::to_string(t.chunk_offset) + " where " +
                             std::to_string(file_->covered) +
                             " was expected (chunks overlap or "
                             "leave a gap)");
    }
    uint64_t left = file_->size - file_->covered;
    uint64_t size = t.chunk_size == 0 ? left : t.chunk_size;
    if (size == 0 || size > left) return Bad(t.name, "chunk runs past the end of the file");
    if (size > kMaxChunkBytes || t.inner_offset > kMaxChunkBytes) {
      return Bad(t.name, "chunk of " + std::to_string(size) + " bytes at inner offset " +
                             std::to_string(t.inner_offset) + ": larger than 64 MiB");
    }
    if (!t.has_offset || t.offset >= data_end_) {
      return Bad(t.name, "chunk offset " + std::to_string(t.offset) +
                             " is outside the data (which ends at " + std::to_string(data_end_) +
                             ")");
    }
    // podman gives a file of one chunk only the file's digest, which is the chunk's.
    const bool whole_file = t.chunk_offset == 0 && size == file_->size;
    auto sha = Sha256Bytes(!t.chunk_digest.empty() || !whole_file ? t.chunk_digest : t.digest);
    if (!sha) return Bad(t.name, "chunk without a sha256 chunkDigest: it could not be verified");
    layer_.chunks.push_back(
        TocChunk{file_->content_offset + file_->covered, size, t.offset, 0, t.inner_offset, *sha});
    file_->covered += size;
    return {};
  }

  Status CloseFile() {
    if (file_ && file_->covered != file_->size) {
      return Bad(file_->name, "chunks cover " + std::to_string(file_->covered) + " of its " +
                                  std::to_string(file_->size) + " bytes");
    }
    file_.reset();
    return {};
  }

  IndexWriter& out_;
  const ChunkedFormat format_;
  const uint64_t data_end_;
  uint64_t records_ = 0;
  std::optional<FileInProgress> file_;
  std::vector<uint64_t> starts_;
  ChunkedLayout layer_;
};

// nlohmann's SAX events for {"version": 1, "entries": [{...}, ...]}: each entry is handed
// on as it closes, so the TOC is never a DOM in memory.
class TocSax : public nlohmann::json_sax<nlohmann::json> {
 public:
  explicit TocSax(TocIndexer& indexer) : indexer_(indexer) {}
  Status status;

  bool start_object(std::size_t) override {
    ++depth_;
    if (depth_ == 3 && in_entries_) entry_ = TocEntry{};
    if (depth_ == 4 && in_entries_ && key_ == "xattrs") in_xattrs_ = true;
    return true;
  }
  bool end_object() override {
    if (depth_ == 4) in_xattrs_ = false;
    if (depth_ == 3 && in_entries_) {
      auto st = indexer_.Add(entry_);
      if (!st) return Stop(st.error());
    }
    --depth_;
    return true;
  }
  bool saw_entries = false;
  bool start_array(std::size_t) override {
    ++depth_;
    if (depth_ == 2 && key_ == "entries") in_entries_ = saw_entries = true;
    return true;
  }
  bool end_array() override {
    if (depth_ == 2) in_entries_ = false;
    --depth_;
    return true;
  }
  bool key(string_t& k) override {
    key_ = k;
    return true;
  }
  bool string(string_t& v) override {
    if (in_xattrs_ && depth_ == 4) {
      entry_.xattrs.emplace_back(key_, std::move(v));
    } else if (depth_ == 3 && in_entries_) {
      if (key_ == "name")
        entry_.name = std::move(v);
      else if (key_ == "type")
        entry_.type = std::move(v);
      else if (key_ == "linkName")
        entry_.link = std::move(v);
      else if (key_ == "modtime")
        entry_.modtime = std::move(v);
      else if (key_ == "chunkDigest")
        entry_.chunk_digest = std::move(v);
      else if (key_ == "digest")
        entry_.digest = std::move(v);
    }
    return true;
  }
  bool number_unsigned(number_unsigned_t v) override { return Number(v); }
  bool number_integer(number_integer_t v) override {
    if (v < 0 && Numeric()) return Stop(Error::Make(Code::kCorrupt, "TOC: negative " + key_));
    return Number(static_cast<uint64_t>(v));
  }
  bool number_float(number_float_t, const string_t&) override {
    if (Numeric()) return Stop(Error::Make(Code::kCorrupt, "TOC: " + key_ + " is not an integer"));
    return true;
  }
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool parse_error(std::size_t pos, const std::string&,
                   const nlohmann::detail::exception& ex) override {
    return Stop(Error::Make(
        Code::kCorrupt, "TOC is not valid JSON at byte " + std::to_string(pos) + ": " + ex.what()));
  }

 private:
  bool Stop(Error e) {
    status = tl::unexpected(std::move(e));
    return false;
  }
  // A number the indexer reads: at the top, "version"; in an entry, its numeric fields.
  bool Numeric() const {
    return (depth_ == 1 && key_ == "version") || (depth_ == 3 && in_entries_ && !in_xattrs_);
  }
  bool Number(uint64_t v) {
    if (depth_ == 1 && key_ == "version" && v != 1) {
      return Stop(Error::Make(Code::kUnsupported, "TOC version " + std::to_string(v)));
    }
    if (depth_ != 3 || !in_entries_) return true;
    if (key_ == "size")
      entry_.size = v;
    else if (key_ == "offset")
      entry_.offset = v, entry_.has_offset = true;
    else if (key_ == "endOffset")
      entry_.end_offset = v, entry_.has_end_offset = true;
    else if (key_ == "chunkOffset")
      entry_.chunk_offset = v;
    else if (key_ == "chunkSize")
      entry_.chunk_size = v;
    else if (key_ == "innerOffset")
      entry_.inner_offset = v;
    else if (key_ == "mode")
      entry_.mode = v;
    else if (key_ == "uid")
      entry_.uid = v;
    else if (key_ == "gid")
      entry_.gid = v;
    else if (key_ == "devMajor")
      entry_.dev_major = v;
    else if (key_ == "devMinor")
      entry_.dev_minor = v;
    return true;
  }

  TocIndexer& indexer_;
  int depth_ = 0;
  bool in_entries_ = false, in_xattrs_ = false;
  std::string key_;
  TocEntry entry_;
};

}  // namespace

Result<ChunkedLayout> WriteChunkedTocIndex(ChunkedFormat format, std::string_view toc_json,
                                           uint64_t data_end,
                                           const std::filesystem::path& index_path) {
  ASSIGN_OR_RETURN(std::unique_ptr<IndexWriter> out, IndexWriter::Create(index_path));
  TocIndexer indexer(*out, format, data_end);
  TocSax sax(indexer);
  bool ok = nlohmann::json::sax_parse(toc_json, &sax);
  if (!sax.status) return Fail(sax.status.error());
  if (!ok) return Fail(Code::kCorrupt, "TOC is not valid JSON");
  if (!sax.saw_entries) return Fail(Code::kCorrupt, "TOC has no \"entries\" array");
  return indexer.Finish();
}

bool ChunkDigestMatches(std::string_view data, const TocChunk& chunk) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return len == 32 && std::memcmp(md, chunk.sha256.data(), 32) == 0;
}

Result<std::string> DecompressChunk(ChunkedFormat format, std::string_view member,
                                    const TocChunk& chunk) {
  return format == ChunkedFormat::kZstdChunked ? DecompressZstdChunk(member, chunk)
                                               : InflateStargzChunk(member, chunk);
}

}  // namespace imagefs
