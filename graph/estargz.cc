#include "graph/estargz.h"

#include <archive.h>
#include <archive_entry.h>
#include <isa-l/igzip_lib.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>

#include "graph/archive_read.h"
#include "graph/layer_names.h"

namespace imagefs {
namespace {

std::optional<uint64_t> Hex16(std::string_view s) {
  if (s.size() != 16) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return std::nullopt;
    v = v << 4 | static_cast<uint64_t>(d);
  }
  return v;
}

uint16_t Le16(const char* p) {
  return static_cast<uint16_t>(static_cast<uint8_t>(p[0]) | static_cast<uint8_t>(p[1]) << 8);
}

inflate_state GzipInflater(std::string_view in) {
  inflate_state st;
  isal_inflate_init(&st);
  st.crc_flag = ISAL_GZIP;
  st.next_in = reinterpret_cast<uint8_t*>(const_cast<char*>(in.data()));
  st.avail_in = static_cast<uint32_t>(std::min<size_t>(in.size(), UINT32_MAX));
  return st;
}

// The first n bytes that the gzip member at the start of `in` inflates to. Its CRC is not
// checked (the member goes on past them): the caller checks the bytes' sha256.
Result<std::string> InflatePrefix(std::string_view in, size_t n) {
  inflate_state st = GzipInflater(in);
  std::string out(n, '\0');
  st.next_out = reinterpret_cast<uint8_t*>(out.data());
  st.avail_out = static_cast<uint32_t>(n);
  while (st.avail_out > 0) {
    int r = isal_inflate(&st);
    if (r < 0) return Fail(Code::kCorrupt, "invalid gzip data (error " + std::to_string(r) + ")");
    if (st.block_state == ISAL_BLOCK_FINISH || (st.avail_in == 0 && st.avail_out > 0)) {
      out.resize(n - st.avail_out);
      break;
    }
  }
  return out;
}

// The whole gzip member at the start of `in`, CRC and length checked, if it inflates to at
// most max bytes.
Result<std::string> InflateMember(std::string_view in, size_t max) {
  inflate_state st = GzipInflater(in);
  std::string out(std::min<size_t>(max, std::max<size_t>(in.size() * 4, 1 << 16)), '\0');
  size_t produced = 0;
  while (true) {
    st.next_out = reinterpret_cast<uint8_t*>(out.data() + produced);
    st.avail_out = static_cast<uint32_t>(out.size() - produced);
    int r = isal_inflate(&st);
    if (r == ISAL_INCORRECT_CHECKSUM) return Fail(Code::kCorrupt, "gzip checksum mismatch");
    if (r < 0) return Fail(Code::kCorrupt, "invalid gzip data (error " + std::to_string(r) + ")");
    produced = static_cast<size_t>(reinterpret_cast<char*>(st.next_out) - out.data());
    if (st.block_state == ISAL_BLOCK_FINISH) {
      out.resize(produced);
      return out;
    }
    if (st.avail_out == 0) {
      if (out.size() >= max) return Fail(Code::kCorrupt, "inflates past the limit");
      out.resize(std::min<size_t>(max, out.size() * 2));
    } else if (st.avail_in == 0) {
      return Fail(Code::kCorrupt, "gzip member cut short");
    }
  }
}

}  // namespace

Result<StargzFooter> ParseStargzFooter(std::string_view tail, uint64_t blob_size) {
  auto gzip_with_extra = [](std::string_view f, uint16_t xlen) {
    return static_cast<uint8_t>(f[0]) == 0x1f && static_cast<uint8_t>(f[1]) == 0x8b && f[2] == 8 &&
           (f[3] & 4) != 0 && Le16(f.data() + 10) == xlen;
  };
  std::optional<StargzFooter> found;
  if (tail.size() >= 51) {  // eStargz: one extra subfield "SG" of 22 bytes
    std::string_view f = tail.substr(tail.size() - 51);
    if (gzip_with_extra(f, 26) && f[12] == 'S' && f[13] == 'G' && Le16(f.data() + 14) == 22 &&
        f.substr(32, 6) == "STARGZ") {
      if (auto off = Hex16(f.substr(16, 16))) found = StargzFooter{*off, 51};
    }
  }
  if (!found && tail.size() >= 47) {  // stargz: the 22 bytes are the whole extra field
    std::string_view f = tail.substr(tail.size() - 47);
    if (gzip_with_extra(f, 22) && f.substr(28, 6) == "STARGZ") {
      if (auto off = Hex16(f.substr(12, 16))) found = StargzFooter{*off, 47};
    }
  }
  if (!found) return Fail(Code::kCorrupt, "no stargz footer at the end of the layer");
  if (blob_size < found->footer_size || found->toc_offset >= blob_size - found->footer_size) {
    return Fail(Code::kCorrupt, "stargz footer: TOC offset " + std::to_string(found->toc_offset) +
                                    " is outside the layer of " + std::to_string(blob_size) +
                                    " bytes");
  }
  return *found;
}

Result<std::string> ExtractStargzToc(std::string_view member) {
  constexpr size_t kTarSlack = 1 << 20;  // headers and padding around the JSON
  auto tar = InflateMember(member, kMaxTocBytes + kTarSlack);
  if (!tar) return Fail(Code::kCorrupt, "stargz TOC: " + tar.error().msg);
  std::unique_ptr<archive, ArchiveReadDeleter> a(archive_read_new());
  if (!a) throw std::bad_alloc();
  archive_read_support_format_tar(a.get());
  if (archive_read_open_memory(a.get(), tar->data(), tar->size()) != ARCHIVE_OK) {
    return Fail(Code::kCorrupt, "stargz TOC: not a tar: " + ArchiveError(a.get()));
  }
  archive_entry* ae = nullptr;
  while (archive_read_next_header(a.get(), &ae) == ARCHIVE_OK) {
    const char* name = archive_entry_pathname(ae);
    if (name == nullptr || std::string_view(name) != kStargzToc) continue;
    la_int64_t size = archive_entry_size(ae);
    if (size < 0 || static_cast<uint64_t>(size) > kMaxTocBytes) {
      return Fail(Code::kCorrupt, "stargz TOC: bad size " + std::to_string(size));
    }
    std::string toc(static_cast<size_t>(size), '\0');
    la_ssize_t got = archive_read_data(a.get(), toc.data(), toc.size());
    if (got != size) return Fail(Code::kCorrupt, "stargz TOC: truncated");
    return toc;
  }
  return Fail(Code::kCorrupt, "stargz TOC: no stargz.index.json in the TOC member");
}

Result<ChunkedLayout> WriteStargzIndex(std::string_view toc_json, const Digest& toc_digest,
                                       uint64_t toc_offset,
                                       const std::filesystem::path& index_path) {
  Digest got = Sha256::Of(toc_json);
  if (got != toc_digest) {
    return Fail(Code::kCorrupt,
                "stargz TOC digest mismatch: expected " + toc_digest.str() + ", got " + got.str());
  }
  return WriteChunkedTocIndex(ChunkedFormat::kEstargz, toc_json, toc_offset, index_path);
}

Result<std::string> InflateStargzChunk(std::string_view member, const TocChunk& chunk) {
  if (chunk.inner_offset > kMaxChunkBytes || chunk.size > kMaxChunkBytes) {
    return Fail(Code::kInvalid, "chunk out of range");
  }
  auto out = InflatePrefix(member, chunk.inner_offset + chunk.size);
  if (!out) {
    return Fail(Code::kCorrupt, "chunk at offset " + std::to_string(chunk.compressed_offset) +
                                    ": " + out.error().msg);
  }
  if (out->size() != chunk.inner_offset + chunk.size) {
    return Fail(Code::kCorrupt, "chunk at offset " + std::to_string(chunk.compressed_offset) +
                                    ": its gzip member ends after " + std::to_string(out->size()) +
                                    " of " + std::to_string(chunk.inner_offset + chunk.size) +
                                    " bytes");
  }
  out->erase(0, chunk.inner_offset);
  if (!ChunkDigestMatches(*out, chunk)) {
    return Fail(Code::kCorrupt,
                "chunk at offset " + std::to_string(chunk.compressed_offset) + ": digest mismatch");
  }
  return out;
}

}  // namespace imagefs
