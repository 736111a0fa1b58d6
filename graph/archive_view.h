// ArchiveView: read access to the members of an image archive (a docker-save or OCI
// tarball, or an OCI layout directory) by name, treating the archive as hostile: member
// names are checked, symlinks are resolved inside the archive only, and sizes are
// checked against the data. Not thread-safe.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "graph/base/error.h"
#include "graph/base/unique_fd.h"
#include "graph/byte_source.h"

namespace imagefs {

class ArchiveView {
 public:
  virtual ~ArchiveView() = default;

  // Opens a tarball (possibly gzip/zstd/xz/bzip2 compressed; decompressed once into
  // scratch_dir) or an OCI layout directory.
  static Result<std::unique_ptr<ArchiveView>> Open(const std::filesystem::path& path,
                                                   const std::filesystem::path& scratch_dir);

  // Whether a regular member (after symlinks) exists.
  virtual bool Exists(const std::string& name) const = 0;
  // Names of all members, directories excluded, in archive order.
  virtual std::vector<std::string> List() const = 0;
  // The member's size after resolving symlinks.
  virtual Result<uint64_t> Size(const std::string& name) const = 0;
  virtual Result<std::unique_ptr<ByteSource>> OpenMember(const std::string& name) const = 0;
  // Reads a small member whole (JSON documents), refusing one larger than max_bytes.
  Result<std::string> ReadSmall(const std::string& name, uint64_t max_bytes = 16u << 20) const;
  // The archive's name, for messages.
  virtual const std::string& name() const = 0;
};

// Cleans a member name and refuses absolute paths and ".." components.
Result<std::string> CheckMemberName(const std::string& raw);

// A source over [offset, offset + length) of a file, read with pread.
class FileRangeSource final : public ByteSource {
 public:
  FileRangeSource(std::shared_ptr<UniqueFd> fd, uint64_t offset, uint64_t length, std::string name)
      : fd_(std::move(fd)), pos_(offset), end_(offset + length), name_(std::move(name)) {}
  Result<size_t> Read(char* buf, size_t len) override;

 private:
  std::shared_ptr<UniqueFd> fd_;
  uint64_t pos_, end_;
  std::string name_;
};

}  // namespace imagefs
