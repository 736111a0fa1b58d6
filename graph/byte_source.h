// ByteSource: a pull-based stream of bytes (a file, a tar member, an HTTP body, a
// decompressor) that the store ingests from. Not thread-safe; owned by one reader.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "graph/base/digest.h"
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

// Passes bytes through while hashing them; at the end of the stream, fails with
// kCorrupt unless they match the expected digest (and size, when given).
class VerifyingSource final : public ByteSource {
 public:
  VerifyingSource(std::unique_ptr<ByteSource> inner, Digest digest, std::optional<uint64_t> size,
                  std::string name)
      : inner_(std::move(inner)), digest_(std::move(digest)), size_(size), name_(std::move(name)) {}
  Result<size_t> Read(char* buf, size_t len) override;

 private:
  std::unique_ptr<ByteSource> inner_;
  Digest digest_;
  std::optional<uint64_t> size_;
  std::string name_;
  Sha256 hash_;
  uint64_t read_ = 0;
  bool checked_ = false;
};

// Wraps a possibly compressed stream (gzip, zstd, xz, bzip2, or none, detected from the
// first bytes) and yields the decompressed bytes. name is used in error messages.
std::unique_ptr<ByteSource> Decompress(std::unique_ptr<ByteSource> inner, std::string name);

}  // namespace imagefs
