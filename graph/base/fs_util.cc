#include "graph/base/fs_util.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <random>
#include <system_error>

namespace imagefs {

namespace fs = std::filesystem;

Result<UniqueFd> OpenFile(const fs::path& path, int flags, mode_t mode) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  if (fd < 0) return FailErrno("open " + path.string());
  return UniqueFd(fd);
}

Result<std::string> ReadFile(const fs::path& path, size_t max_bytes) {
  ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(path, O_RDONLY));
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return FailErrno("stat " + path.string());
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    return Fail(Code::kInvalid, path.string() + ": file too large (" + std::to_string(st.st_size) +
                                    " bytes, limit " + std::to_string(max_bytes) + ")");
  }
  std::string out(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < out.size()) {
    ssize_t n = ::read(fd.get(), out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return FailErrno("read " + path.string());
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  out.resize(got);
  return out;
}

Status WriteAll(int fd, const void* data, size_t len) {
  const char* p = static_cast<const char*>(data);
  while (len > 0) {
    ssize_t n = ::write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return FailErrno("write");
    p += n;
    len -= static_cast<size_t>(n);
  }
  return {};
}

Status PreadAll(int fd, void* buf, size_t len, off_t off) {
  char* p = static_cast<char*>(buf);
  while (len > 0) {
    ssize_t n = ::pread(fd, p, len, off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return FailErrno("pread");
    if (n == 0) return Fail(Code::kCorrupt, "unexpected end of file");
    p += n;
    off += n;
    len -= static_cast<size_t>(n);
  }
  return {};
}

Status PwriteAll(int fd, const void* data, size_t len, off_t off) {
  const char* p = static_cast<const char*>(data);
  while (len > 0) {
    ssize_t n = ::pwrite(fd, p, len, off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return FailErrno("pwrite");
    p += n;
    off += n;
    len -= static_cast<size_t>(n);
  }
  return {};
}

Status FsyncPath(const fs::path& path) {
  ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(path, O_RDONLY));
  if (::fsync(fd.get()) != 0) return FailErrno("fsync " + path.string());
  return {};
}

std::string RandomSuffix() {
  static thread_local std::mt19937_64 rng(std::random_device{}() ^ (uint64_t(getpid()) << 32));
  static const char kChars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string s(12, 'x');
  for (char& c : s) c = kChars[rng() % 36];
  return s;
}

Status WriteFileAtomic(const fs::path& path, std::string_view data) {
  fs::path tmp = path;
  tmp += ".tmp-" + RandomSuffix();
  {
    ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(tmp, O_WRONLY | O_CREAT | O_EXCL, 0600));
    Status st = WriteAll(fd.get(), data.data(), data.size());
    if (st && ::fsync(fd.get()) != 0) st = FailErrno("fsync " + tmp.string());
    if (!st) {
      ::unlink(tmp.c_str());
      return Fail(st.error().WithContext("write " + tmp.string()));
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    auto err = Error::FromErrno("rename " + tmp.string() + " to " + path.string());
    ::unlink(tmp.c_str());
    return Fail(err);
  }
  return FsyncPath(path.parent_path());
}

Status MkdirAll(const fs::path& path) {
  struct stat st;
  if (path.empty() || stat(path.c_str(), &st) == 0) return {};
  if (path.has_parent_path() && path.parent_path() != path)
    RETURN_IF_ERROR(MkdirAll(path.parent_path()));
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST)
    return FailErrno("mkdir " + path.string());
  return {};
}

Status RemoveTree(const fs::path& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
  if (ec) return Fail(Error::FromErrno("remove " + path.string(), ec.value()));
  return {};
}

Result<TempDir> TempDir::Create(const fs::path& parent, std::string_view prefix) {
  RETURN_IF_ERROR(MkdirAll(parent));
  for (int attempt = 0; attempt < 16; ++attempt) {
    fs::path p = parent / (std::string(prefix) + RandomSuffix());
    if (::mkdir(p.c_str(), 0700) == 0) {
      TempDir t;
      t.path_ = p;
      return t;
    }
    if (errno != EEXIST) return FailErrno("mkdir " + p.string());
  }
  return Fail(Code::kIo, "could not create a temporary directory in " + parent.string());
}

TempDir::TempDir(TempDir&& other) noexcept : path_(std::move(other.path_)) { other.path_.clear(); }
TempDir& TempDir::operator=(TempDir&& other) noexcept {
  if (this != &other) {
    if (!path_.empty()) (void)RemoveTree(path_);
    path_ = std::move(other.path_);
    other.path_.clear();
  }
  return *this;
}
TempDir::~TempDir() {
  if (!path_.empty()) (void)RemoveTree(path_);
}

Status TempDir::Commit(const fs::path& dest) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(path_, ec)) {
    if (entry.is_regular_file()) RETURN_IF_ERROR(FsyncPath(entry.path()));
  }
  if (ec) return Fail(Error::FromErrno("list " + path_.string(), ec.value()));
  RETURN_IF_ERROR(FsyncPath(path_));
  // RENAME_NOREPLACE: never clobber a committed directory that another writer won.
  if (::renameat2(AT_FDCWD, path_.c_str(), AT_FDCWD, dest.c_str(), RENAME_NOREPLACE) != 0) {
    int e = errno;
    if (e == EEXIST || e == ENOTEMPTY) {
      return Fail(Error{Code::kExists, EEXIST, dest.string() + " exists already"});
    }
    return Fail(Error::FromErrno("rename " + path_.string() + " to " + dest.string(), e));
  }
  path_.clear();
  return FsyncPath(dest.parent_path());
}

}  // namespace imagefs

namespace imagefs {
Status WriteNewFile(const fs::path& path, std::string_view data) {
  ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(path, O_WRONLY | O_CREAT | O_EXCL, 0600));
  RETURN_IF_ERROR(WriteAll(fd.get(), data.data(), data.size()));
  return {};
}
}  // namespace imagefs
