// ByteSource: a pull-based stream of bytes (a file, a tar member, an HTTP body, a
// decompressor) that the store ingests from. Not thread-safe; owned by one reader.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "graph/base/error.h"
#include "graph/base/unique_fd.h"

namespace imagefs {

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Reads up to len bytes; returns 0 only at the end of the stream.
  virtual Result<size_t> Read(char* buf, size_t len) = 0;
};

class FdSource final : public ByteSource {
 public:
  explicit FdSource(UniqueFd fd, std::string name) : fd_(std::move(fd)), name_(std::move(name)) {}
  Result<size_t> Read(char* buf, size_t len) override;

 private:
  UniqueFd fd_;
  std::string name_;
};

class MemorySource final : public ByteSource {
 public:
  explicit MemorySource(std::string_view data) : data_(data) {}
  Result<size_t> Read(char* buf, size_t len) override;

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

// Wraps a possibly compressed stream (gzip, zstd, xz, bzip2, or none, detected from the
// first bytes) and yields the decompressed bytes. name is used in error messages.
std::unique_ptr<ByteSource> Decompress(std::unique_ptr<ByteSource> inner, std::string name);

}  // namespace imagefs
