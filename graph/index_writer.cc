#include "graph/index_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <tuple>

#include "graph/base/fs_util.h"

namespace imagefs {

// Appends to a file through a buffer, which grows to kSize as needed (most indexes are
// small: reserving it whole cost every small layer two 1 MiB allocations).
class IndexWriter::Appender {
 public:
  explicit Appender(int fd) : fd_(fd) {}
  Status Append(const void* data, size_t len) {
    const char* p = static_cast<const char*>(data);
    written_ += len;
    if (buf_.size() + len > kSize) RETURN_IF_ERROR(Flush());
    if (len >= kSize) return WriteAll(fd_, p, len);
    buf_.insert(buf_.end(), p, p + len);
    return {};
  }
  Status Flush() {
    RETURN_IF_ERROR(WriteAll(fd_, buf_.data(), buf_.size()));
    buf_.clear();
    return {};
  }
  uint64_t written() const { return written_; }

 private:
  static constexpr size_t kSize = 1 << 20;
  int fd_;
  std::vector<char> buf_;
  uint64_t written_ = 0;
};

IndexWriter::IndexWriter(UniqueFd fd, UniqueFd strings_fd)
    : fd_(std::move(fd)),
      strings_fd_(std::move(strings_fd)),
      entries_(std::make_unique<Appender>(fd_.get())),
      strings_(std::make_unique<Appender>(strings_fd_.get())) {}

IndexWriter::~IndexWriter() = default;

Result<std::unique_ptr<IndexWriter>> IndexWriter::Create(const std::filesystem::path& out_path) {
  ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(out_path, O_RDWR | O_CREAT | O_TRUNC, 0600));
  // Strings go to a scratch file as they come and are appended at the end.
  std::filesystem::path strings_path = out_path;
  strings_path += ".strings";
  ASSIGN_OR_RETURN(UniqueFd strings_fd, OpenFile(strings_path, O_RDWR | O_CREAT | O_TRUNC, 0600));
  ::unlink(strings_path.c_str());  // gone with its descriptor
  IndexHeader h{};
  RETURN_IF_ERROR(WriteAll(fd.get(), &h, sizeof h));  // the real one goes in at the end
  return std::unique_ptr<IndexWriter>(new IndexWriter(std::move(fd), std::move(strings_fd)));
}

Result<std::pair<uint32_t, uint32_t>> IndexWriter::AddString(std::string_view s) {
  if (strings_->written() + s.size() > UINT32_MAX) {
    return Fail(Code::kInvalid, "layer index string table exceeds 4 GiB");
  }
  auto off = static_cast<uint32_t>(strings_->written());
  RETURN_IF_ERROR(strings_->Append(s.data(), s.size()));
  return std::make_pair(off, static_cast<uint32_t>(s.size()));
}

Status IndexWriter::AddXattr(std::string_view name, std::string_view value) {
  IndexXattr x{};
  ASSIGN_OR_RETURN(std::tie(x.name_off, x.name_len), AddString(name));
  ASSIGN_OR_RETURN(std::tie(x.value_off, x.value_len), AddString(value));
  xattrs_.push_back(x);
  ++pending_xattrs_;
  return {};
}

Status IndexWriter::AddEntry(IndexEntry e, std::span<const IndexExtent> runs) {
  if (xattrs_.size() > UINT32_MAX || extents_.size() + runs.size() > UINT32_MAX) {
    return Fail(Code::kInvalid, "layer index: too many xattrs or extents");
  }
  e.xattr_first = static_cast<uint32_t>(xattrs_.size() - pending_xattrs_);
  e.xattr_count = pending_xattrs_;
  pending_xattrs_ = 0;
  if (!runs.empty()) {
    e.extent_first = static_cast<uint32_t>(extents_.size());
    e.extent_count = static_cast<uint32_t>(runs.size());
    extents_.insert(extents_.end(), runs.begin(), runs.end());
  }
  if (e.kind == EntryKind::kFile) summary_.content_bytes += e.size;
  RETURN_IF_ERROR(entries_->Append(&e, sizeof e));
  ++entry_count_;
  return {};
}

Result<IndexSummary> IndexWriter::Finish(uint64_t tar_size) {
  summary_.entries = entry_count_;
  RETURN_IF_ERROR(entries_->Append(xattrs_.data(), xattrs_.size() * sizeof(IndexXattr)));
  RETURN_IF_ERROR(entries_->Append(extents_.data(), extents_.size() * sizeof(IndexExtent)));
  RETURN_IF_ERROR(entries_->Flush());
  RETURN_IF_ERROR(strings_->Flush());
  // The string table follows, copied in the kernel from the scratch file (by hand where
  // copy_file_range is refused: old kernels, sandboxes).
  loff_t from = 0;
  for (uint64_t left = strings_->written(); left > 0;) {
    ssize_t n = copy_file_range(strings_fd_.get(), &from, fd_.get(), nullptr, left, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == ENOSYS || errno == EPERM || errno == EXDEV || errno == EINVAL ||
                  errno == EOPNOTSUPP)) {
      std::vector<char> buf(1 << 20);
      while (left > 0) {
        size_t chunk = static_cast<size_t>(std::min<uint64_t>(left, buf.size()));
        RETURN_IF_ERROR(PreadAll(strings_fd_.get(), buf.data(), chunk, from));
        RETURN_IF_ERROR(WriteAll(fd_.get(), buf.data(), chunk));
        from += static_cast<loff_t>(chunk);
        left -= chunk;
      }
      break;
    }
    if (n <= 0)
      return n < 0 ? FailErrno("copy index strings") : Fail(Code::kIo, "copy index strings: short");
    left -= static_cast<uint64_t>(n);
  }
  IndexHeader h{};
  std::memcpy(h.magic, kIndexMagic, sizeof kIndexMagic);
  h.version = 1;
  h.entry_count = entry_count_;
  h.xattr_count = xattrs_.size();
  h.extent_count = extents_.size();
  h.strings_size = strings_->written();
  h.tar_size = tar_size;
  h.content_bytes = summary_.content_bytes;
  if (pwrite(fd_.get(), &h, sizeof h, 0) != static_cast<ssize_t>(sizeof h))
    return FailErrno("write index header");
  return summary_;
}

Status AddMember(IndexWriter& out, const ScannedMember& m) {
  IndexEntry e = m.entry;
  ASSIGN_OR_RETURN(std::tie(e.path_off, e.path_len), out.AddString(m.path));
  if (e.kind == EntryKind::kHardlink || e.kind == EntryKind::kSymlink) {
    ASSIGN_OR_RETURN(std::tie(e.link_off, e.link_len), out.AddString(m.link));
  }
  for (const auto& [name, value] : m.xattrs) RETURN_IF_ERROR(out.AddXattr(name, value));
  return out.AddEntry(e, m.runs);
}

}  // namespace imagefs
