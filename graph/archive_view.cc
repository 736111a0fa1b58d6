#include "graph/archive_view.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "graph/archive_read.h"
#include "graph/base/fs_util.h"
#include "graph/tar_index.h"

namespace imagefs {
namespace {

constexpr int kMaxSymlinkDepth = 40;

// Resolves a symlink target relative to the link's directory; refuses to leave the root.
Result<std::string> ResolveLinkTarget(const std::string& link, const std::string& target,
                                      const std::string& archive_name) {
  if (!target.empty() && target.front() == '/') {
    return Fail(Code::kInvalid, archive_name + ": member \"" + link +
                                    "\" is a symlink to an absolute path (\"" + target + "\")");
  }
  std::string dir(DirName(link));
  std::string joined = dir.empty() ? target : dir + "/" + target;
  bool escaped = false;
  std::string resolved = CleanPath(joined, &escaped);
  if (escaped) {
    return Fail(Code::kInvalid, archive_name + ": member \"" + link +
                                    "\" is a symlink that escapes the archive (\"" + target +
                                    "\")");
  }
  return resolved;
}

struct Member {
  enum class Type { kFile, kDir, kSymlink, kHardlink, kOther } type;
  uint64_t offset = 0;
  uint64_t size = 0;
  std::string link;  // symlink target (raw), or hardlink target (cleaned)
};

class TarballView final : public ArchiveView {
 public:
  static Result<std::unique_ptr<ArchiveView>> Open(UniqueFd fd, std::string name) {
    std::unique_ptr<TarballView> view(new TarballView());
    view->name_ = std::move(name);
    view->fd_ = std::make_shared<UniqueFd>(std::move(fd));
    RETURN_IF_ERROR(view->Scan());
    return std::unique_ptr<ArchiveView>(std::move(view));
  }

  bool Exists(const std::string& name) const override { return Resolve(name).has_value(); }
  std::vector<std::string> List() const override {
    std::vector<std::string> out;
    for (const auto& n : order_) {
      if (members_.at(n).type != Member::Type::kDir) out.push_back(n);
    }
    return out;
  }
  Result<uint64_t> Size(const std::string& name) const override {
    ASSIGN_OR_RETURN(const Member* m, Resolve(name));
    return m->size;
  }
  Result<std::unique_ptr<ByteSource>> OpenMember(const std::string& name) const override {
    ASSIGN_OR_RETURN(const Member* m, Resolve(name));
    return std::unique_ptr<ByteSource>(
        std::make_unique<FileRangeSource>(fd_, m->offset, m->size, name_ + ": " + name));
  }
  const std::string& name() const override { return name_; }

 private:
  // Lists headers only: a data block's pointer inside the mapping gives its offset
  // without the data being read, and pages behind the scan are dropped as it goes.
  Status Scan() {
    struct stat st;
    if (fstat(fd_->get(), &st) != 0) return FailErrno("stat " + name_);
    uint64_t size = static_cast<uint64_t>(st.st_size);
    if (size == 0) return Fail(Code::kInvalid, name_ + ": empty file, not an image archive");
    void* map = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd_->get(), 0);
    if (map == MAP_FAILED) return FailErrno("mmap " + name_);
    const char* base = static_cast<const char*>(map);
    struct Unmap {
      void* p;
      size_t n;
      ~Unmap() { munmap(p, n); }
    } unmap{map, size};
    std::unique_ptr<archive, ArchiveReadDeleter> a(archive_read_new());
    archive_read_support_format_tar(a.get());
    archive_read_support_format_gnutar(a.get());
    if (archive_read_open_memory(a.get(), base, size) != ARCHIVE_OK) {
      return Fail(Code::kInvalid, name_ + ": not a tar archive: " + ArchiveError(a.get()));
    }
    uint64_t dropped = 0;
    archive_entry* ae;
    while (true) {
      int r = archive_read_next_header(a.get(), &ae);
      if (r == ARCHIVE_EOF) break;
      if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
        std::string after = order_.empty() ? "" : " (after member \"" + order_.back() + "\")";
        return Fail(Code::kInvalid, name_ + ": " + ArchiveError(a.get()) + after);
      }
      const char* raw = archive_entry_pathname(ae);
      if (raw == nullptr) return Fail(Code::kInvalid, name_ + ": member name cannot be decoded");
      auto checked = CheckMemberName(raw);
      if (!checked) return Fail(checked.error().WithContext(name_));
      std::string member_name = *checked;
      Member m;
      m.size = static_cast<uint64_t>(std::max<la_int64_t>(0, archive_entry_size(ae)));
      if (archive_entry_hardlink(ae) != nullptr) {
        m.type = Member::Type::kHardlink;
        auto target = CheckMemberName(archive_entry_hardlink(ae));
        if (!target) return Fail(target.error().WithContext(name_ + ": hardlink " + member_name));
        m.link = *target;
      } else {
        switch (archive_entry_filetype(ae)) {
          case AE_IFREG: m.type = Member::Type::kFile; break;
          case AE_IFDIR: m.type = Member::Type::kDir; break;
          case AE_IFLNK:
            m.type = Member::Type::kSymlink;
            m.link = archive_entry_symlink(ae) ? archive_entry_symlink(ae) : "";
            break;
          default: m.type = Member::Type::kOther; break;
        }
      }
      uint64_t got = 0;
      const void* buf;
      size_t len;
      la_int64_t logical;
      while ((r = archive_read_data_block(a.get(), &buf, &len, &logical)) == ARCHIVE_OK) {
        const char* p = static_cast<const char*>(buf);
        if (len == 0) continue;
        if (p < base || p + len > base + size || static_cast<uint64_t>(logical) != got) {
          return Fail(Code::kInvalid,
                      name_ + ": member \"" + member_name + "\" is sparse or malformed");
        }
        if (got == 0) m.offset = static_cast<uint64_t>(p - base);
        got += len;
      }
      if (r != ARCHIVE_EOF || got != m.size) {
        return Fail(Code::kInvalid, name_ + ": member \"" + member_name + "\" is truncated: " +
                                        (r != ARCHIVE_EOF ? ArchiveError(a.get())
                                                          : "size is larger than its data"));
      }
      if (m.type == Member::Type::kDir) {
        // A directory may be listed more than once (tar --append); keep the first.
        if (!members_.count(member_name)) members_.emplace(member_name, m);
      } else {
        if (members_.count(member_name) && members_.at(member_name).type != Member::Type::kDir) {
          return Fail(Code::kInvalid, name_ + ": duplicate member \"" + member_name + "\"");
        }
        members_[member_name] = m;
      }
      order_.push_back(member_name);
      uint64_t pos = m.offset + m.size;
      if (pos > dropped + (64u << 20)) {
        uint64_t upto = pos & ~uint64_t{4095};
        madvise(const_cast<char*>(base), upto, MADV_DONTNEED);
        dropped = upto;
      }
    }
    return {};
  }

  Result<const Member*> Resolve(std::string name) const {
    for (int depth = 0; depth < kMaxSymlinkDepth; ++depth) {
      auto it = members_.find(name);
      if (it == members_.end()) {
        return Fail(Code::kNotFound, name_ + ": no member \"" + name + "\"");
      }
      const Member& m = it->second;
      switch (m.type) {
        case Member::Type::kFile: return &m;
        case Member::Type::kHardlink: name = m.link; continue;
        case Member::Type::kSymlink: {
          ASSIGN_OR_RETURN(name, ResolveLinkTarget(name, m.link, name_));
          continue;
        }
        default:
          return Fail(Code::kInvalid, name_ + ": member \"" + name + "\" is not a regular file");
      }
    }
    return Fail(Code::kInvalid, name_ + ": too many levels of links resolving a member (a cycle?)");
  }

  std::string name_;
  std::shared_ptr<UniqueFd> fd_;
  std::map<std::string, Member> members_;
  std::vector<std::string> order_;
};

// An OCI layout directory on disk. Members are opened with openat2(RESOLVE_IN_ROOT
// semantics done by hand): every symlink is resolved against the layout's root.
class DirectoryView final : public ArchiveView {
 public:
  explicit DirectoryView(std::filesystem::path root)
      : root_(std::move(root)), name_(root_.string()) {}

  bool Exists(const std::string& name) const override { return ResolvePath(name).has_value(); }
  std::vector<std::string> List() const override {
    std::vector<std::string> out;
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(root_, ec);
         it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      if (ec) break;
      if (!it->is_directory()) out.push_back(std::filesystem::relative(it->path(), root_).string());
    }
    return out;
  }
  Result<uint64_t> Size(const std::string& name) const override {
    ASSIGN_OR_RETURN(std::filesystem::path p, ResolvePath(name));
    struct stat st;
    if (stat(p.c_str(), &st) != 0) return FailErrno("stat " + p.string());
    return static_cast<uint64_t>(st.st_size);
  }
  Result<std::unique_ptr<ByteSource>> OpenMember(const std::string& name) const override {
    ASSIGN_OR_RETURN(std::filesystem::path p, ResolvePath(name));
    ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(p, O_RDONLY | O_NOFOLLOW));
    return std::unique_ptr<ByteSource>(std::make_unique<FdSource>(std::move(fd), p.string()));
  }
  const std::string& name() const override { return name_; }

 private:
  Result<std::filesystem::path> ResolvePath(std::string name) const {
    ASSIGN_OR_RETURN(name, CheckMemberName(name));
    for (int depth = 0; depth < kMaxSymlinkDepth; ++depth) {
      // Walk component by component so that a symlinked directory cannot lead outside.
      std::string resolved;
      bool restarted = false;
      size_t i = 0;
      while (i <= name.size() && !restarted) {
        size_t j = name.find('/', i);
        if (j == std::string::npos) j = name.size();
        std::string comp = name.substr(i, j - i);
        std::string next = resolved.empty() ? comp : resolved + "/" + comp;
        struct stat st;
        std::filesystem::path p = root_ / next;
        if (lstat(p.c_str(), &st) != 0) return FailErrno(name_ + ": " + name);
        if (S_ISLNK(st.st_mode)) {
          std::error_code ec;
          auto target = std::filesystem::read_symlink(p, ec);
          if (ec) return Fail(Error::FromErrno("readlink " + p.string(), ec.value()));
          ASSIGN_OR_RETURN(std::string via, ResolveLinkTarget(next, target.string(), name_));
          name = j < name.size() ? via + name.substr(j) : via;
          restarted = true;
        } else if (j == name.size()) {
          if (!S_ISREG(st.st_mode)) {
            return Fail(Code::kInvalid, name_ + ": \"" + name + "\" is not a regular file");
          }
          return p;
        }
        resolved = next;
        i = j + 1;
      }
    }
    return Fail(Code::kInvalid, name_ + ": too many levels of symbolic links");
  }

  std::filesystem::path root_;
  std::string name_;
};

}  // namespace

Result<std::string> CheckMemberName(const std::string& raw) {
  if (raw.empty()) return Fail(Code::kInvalid, "empty member name");
  if (raw.front() == '/')
    return Fail(Code::kInvalid, "member \"" + raw + "\" has an absolute path");
  size_t i = 0;
  while (i <= raw.size()) {
    size_t j = raw.find('/', i);
    if (j == std::string::npos) j = raw.size();
    if (raw.compare(i, j - i, "..") == 0) {
      return Fail(Code::kInvalid, "member \"" + raw + "\" has a \"..\" component");
    }
    i = j + 1;
  }
  return CleanTarPath(raw);
}

Result<size_t> FileRangeSource::Read(char* buf, size_t len) {
  if (pos_ >= end_) return 0;
  len = static_cast<size_t>(std::min<uint64_t>(len, end_ - pos_));
  while (true) {
    ssize_t n = ::pread(fd_->get(), buf, len, static_cast<off_t>(pos_));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return FailErrno("read " + name_);
    if (n == 0) return Fail(Code::kCorrupt, name_ + ": file shrank while reading");
    pos_ += static_cast<uint64_t>(n);
    return static_cast<size_t>(n);
  }
}

Result<std::string> ArchiveView::ReadSmall(const std::string& member, uint64_t max_bytes) const {
  ASSIGN_OR_RETURN(uint64_t size, Size(member));
  if (size > max_bytes) {
    return Fail(Code::kInvalid, name() + ": member \"" + member + "\" is too large (" +
                                    std::to_string(size) + " bytes)");
  }
  ASSIGN_OR_RETURN(auto src, OpenMember(member));
  std::string out(size, '\0');
  size_t got = 0;
  while (got < size) {
    ASSIGN_OR_RETURN(size_t n, src->Read(out.data() + got, size - got));
    if (n == 0) break;
    got += n;
  }
  out.resize(got);
  return out;
}

Result<std::unique_ptr<ArchiveView>> ArchiveView::Open(const std::filesystem::path& path,
                                                       const std::filesystem::path& scratch_dir) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return FailErrno(path.string());
  if (S_ISDIR(st.st_mode)) {
    if (!std::filesystem::exists(path / "oci-layout")) {
      return Fail(Code::kInvalid,
                  path.string() + ": directory is not an OCI image layout (no oci-layout file)");
    }
    return std::unique_ptr<ArchiveView>(std::make_unique<DirectoryView>(path));
  }
  ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(path, O_RDONLY));
  unsigned char magic[6] = {};
  ssize_t n = pread(fd.get(), magic, sizeof magic, 0);
  bool compressed = n >= 2 && ((magic[0] == 0x1f && magic[1] == 0x8b) ||  // gzip
                               (n >= 4 && magic[0] == 0x28 && magic[1] == 0xb5 &&
                                magic[2] == 0x2f && magic[3] == 0xfd) ||           // zstd
                               (n >= 6 && magic[0] == 0xfd && magic[1] == '7') ||  // xz
                               (n >= 3 && magic[0] == 'B' && magic[1] == 'Z' && magic[2] == 'h'));
  if (!compressed) return TarballView::Open(std::move(fd), path.string());

  // A compressed tarball is inflated once into scratch space (unlinked at once, so it
  // vanishes with the process) and then read like an uncompressed one.
  RETURN_IF_ERROR(MkdirAll(scratch_dir));
  int tmp = ::open(scratch_dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (tmp < 0) return FailErrno("create scratch file in " + scratch_dir.string());
  UniqueFd out(tmp);
  auto src = Decompress(std::make_unique<FdSource>(std::move(fd), path.string()), path.string());
  std::vector<char> buf(1 << 20);
  while (true) {
    ASSIGN_OR_RETURN(size_t got, src->Read(buf.data(), buf.size()));
    if (got == 0) break;
    RETURN_IF_ERROR(WriteAll(out.get(), buf.data(), got));
  }
  return TarballView::Open(std::move(out), path.string());
}

}  // namespace imagefs
