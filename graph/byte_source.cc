#include "graph/byte_source.h"

#include <archive.h>
#include <archive_entry.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace imagefs {

Result<size_t> FdSource::Read(char* buf, size_t len) {
  while (true) {
    ssize_t n = ::read(fd_.get(), buf, len);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno != EINTR) return FailErrno("read " + name_);
  }
}

Result<size_t> MemorySource::Read(char* buf, size_t len) {
  size_t n = std::min(len, data_.size() - pos_);
  std::memcpy(buf, data_.data() + pos_, n);
  pos_ += n;
  return n;
}

namespace {

// Runs libarchive's "raw" format, whose filters (gzip, zstd, xz, bzip2, none) detect the
// compression from the stream; the one raw entry is the decompressed data.
class DecompressingSource final : public ByteSource {
 public:
  DecompressingSource(std::unique_ptr<ByteSource> inner, std::string name)
      : inner_(std::move(inner)), name_(std::move(name)), in_buf_(1 << 20) {}
  ~DecompressingSource() override {
    if (a_ != nullptr) archive_read_free(a_);
  }

  Result<size_t> Read(char* buf, size_t len) override {
    if (!error_.msg.empty()) return Fail(error_);
    if (a_ == nullptr) RETURN_IF_ERROR(Start());
    if (eof_) return 0;
    la_ssize_t n = archive_read_data(a_, buf, len);
    if (n < 0) return Fail(Failure());
    if (n == 0) {
      eof_ = true;
      RETURN_IF_ERROR(DrainInner());
    }
    return static_cast<size_t>(n);
  }

 private:
  Status Start() {
    a_ = archive_read_new();
    if (a_ == nullptr) throw std::bad_alloc();
    archive_read_support_filter_all(a_);
    archive_read_support_format_raw(a_);
    archive_read_support_format_empty(a_);
    if (archive_read_open(a_, this, nullptr, &ReadCallback, nullptr) != ARCHIVE_OK) {
      return Fail(Failure());
    }
    archive_entry* entry;
    int r = archive_read_next_header(a_, &entry);
    if (r == ARCHIVE_EOF) {
      eof_ = true;
      return DrainInner();
    }
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN) return Fail(Failure());
    return {};
  }

  // Reads the input to its end, so that a verifying source below sees all of it (and
  // reports a digest mismatch) before the caller takes the output as complete.
  Status DrainInner() {
    if (!error_.msg.empty()) return Fail(error_);
    while (!inner_eof_) {
      ASSIGN_OR_RETURN(size_t n, inner_->Read(in_buf_.data(), in_buf_.size()));
      inner_eof_ = n == 0;
    }
    return {};
  }

  Error Failure() {
    if (!error_.msg.empty()) return error_;  // the inner source's own error
    const char* why = archive_error_string(a_);
    return Error::Make(Code::kCorrupt, name_ + ": " + (why ? why : "cannot decompress"));
  }

  static la_ssize_t ReadCallback(archive*, void* self_ptr, const void** out) noexcept {
    auto* self = static_cast<DecompressingSource*>(self_ptr);
    try {
      auto n = self->inner_->Read(self->in_buf_.data(), self->in_buf_.size());
      if (n && *n == 0) self->inner_eof_ = true;
      if (!n) {
        self->error_ = n.error();
        return -1;
      }
      *out = self->in_buf_.data();
      return static_cast<la_ssize_t>(*n);
    } catch (...) {
      self->error_ = Error::Make(Code::kIo, self->name_ + ": out of memory");
      return -1;
    }
  }

  std::unique_ptr<ByteSource> inner_;
  std::string name_;
  std::vector<char> in_buf_;
  archive* a_ = nullptr;
  bool eof_ = false;
  bool inner_eof_ = false;
  Error error_{Code::kOk, 0, ""};
};

}  // namespace

Result<size_t> VerifyingSource::Read(char* buf, size_t len) {
  ASSIGN_OR_RETURN(size_t n, inner_->Read(buf, len));
  hash_.Update(buf, n);
  read_ += n;
  if (size_ && read_ > *size_) {
    return Fail(Code::kCorrupt, name_ + ": blob is larger than its descriptor's " +
                                    std::to_string(*size_) + " bytes");
  }
  if (n == 0 && !checked_) {
    checked_ = true;
    if (size_ && read_ != *size_) {
      return Fail(Code::kCorrupt, name_ + ": blob has " + std::to_string(read_) +
                                      " bytes, its descriptor says " + std::to_string(*size_));
    }
    Digest got = hash_.Finish();
    if (got != digest_) {
      return Fail(Code::kCorrupt, name_ + ": digest mismatch: expected " + digest_.str() +
                                      ", got " + got.str());
    }
  }
  return n;
}

std::unique_ptr<ByteSource> Decompress(std::unique_ptr<ByteSource> inner, std::string name) {
  return std::make_unique<DecompressingSource>(std::move(inner), std::move(name));
}

}  // namespace imagefs
