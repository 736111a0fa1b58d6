// Small, errno-preserving file helpers for the store's commit protocol:
// write under tmp/, fsync the files, rename(2) into place, fsync the parent.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "graph/base/error.h"
#include "graph/base/unique_fd.h"

namespace imagefs {

// Files the store makes are its owner's alone: the default mode is 0600.
Result<UniqueFd> OpenFile(const std::filesystem::path& path, int flags, mode_t mode = 0600);
// Reads a whole file, refusing one larger than max_bytes (hostile or corrupt input).
Result<std::string> ReadFile(const std::filesystem::path& path, size_t max_bytes = 64u << 20);
Status WriteAll(int fd, const void* data, size_t len);
Status PreadAll(int fd, void* buf, size_t len, off_t off);
Status PwriteAll(int fd, const void* data, size_t len, off_t off);
Status FsyncPath(const std::filesystem::path& path);
// Of a relative path in an archive: "a/b/c" -> "a/b" and "c"; "c" -> "" and "c".
inline std::string_view DirName(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? std::string_view() : path.substr(0, slash);
}
inline std::string_view BaseName(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}
// 12 random characters [a-z0-9] for names of temporary files, unique across processes.
std::string RandomSuffix();
// Writes data to path atomically and durably (tmp file beside it + fsync + rename + fsync dir).
Status WriteFileAtomic(const std::filesystem::path& path, std::string_view data);
// Creates a directory and its missing parents, each private to its owner (0700), as the
// XDG base directory rules ask of directories made on a user's behalf.
Status MkdirAll(const std::filesystem::path& path);
// Removes a tree; a missing path is not an error.
Status RemoveTree(const std::filesystem::path& path);

// A directory under a parent that is removed on destruction unless Commit() renamed it.
class TempDir {
 public:
  static Result<TempDir> Create(const std::filesystem::path& parent, std::string_view prefix);
  TempDir(TempDir&& other) noexcept;
  TempDir& operator=(TempDir&& other) noexcept;
  ~TempDir();

  const std::filesystem::path& path() const { return path_; }
  // fsyncs every file directly inside, renames the directory to dest and fsyncs dest's
  // parent. Fails with kExists when dest exists already (a concurrent identical commit).
  Status Commit(const std::filesystem::path& dest);

 private:
  TempDir() = default;
  std::filesystem::path path_;
};

}  // namespace imagefs

namespace imagefs {
// Creates path (which must not exist) with data; durability comes from the caller's
// later fsync (TempDir::Commit fsyncs every file it renames into place).
Status WriteNewFile(const std::filesystem::path& path, std::string_view data);
}  // namespace imagefs
