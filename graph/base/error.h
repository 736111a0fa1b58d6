// Error and Result: the value-based error vocabulary shared by every module.
// An Error keeps a stable Code (what callers branch on), the errno that caused it
// (what the kernel is told) and a message that grows context as it rises.
#pragma once

#include <cerrno>
#include <string>
#include <tl/expected.hpp>
#include <utility>

namespace imagefs {

enum class Code {
  kOk = 0,
  kNotFound,
  kInvalid,  // bad input from a user or a file: malformed, out of range
  kCorrupt,  // stored or received data that fails verification
  kIo,       // an operating-system call failed
  kNetwork,
  kAuth,
  kExists,
  kBusy,  // refused because something else depends on or holds it
  kCancelled,
  kUnsupported,
};

const char* CodeName(Code code);

struct Error {
  Code code = Code::kIo;
  int sys_errno = 0;
  std::string msg;

  static Error Make(Code code, std::string msg) { return Error{code, 0, std::move(msg)}; }
  // Captures errno now: call it directly after the failing syscall.
  static Error FromErrno(std::string what) {
    int e = errno;
    return FromErrno(std::move(what), e);
  }
  static Error FromErrno(std::string what, int e);

  // Prefixes the message: "load layer X: open foo: No such file or directory".
  Error WithContext(const std::string& context) const& {
    Error copy = *this;
    copy.msg = context + ": " + msg;
    return copy;
  }
  Error WithContext(const std::string& context) && {
    msg = context + ": " + msg;
    return std::move(*this);
  }
  // The errno the kernel should see for this error.
  int ToErrno() const;
  std::string ToString() const { return msg; }
};

// tl::expected with [[nodiscard]] on the type, so no caller can drop an error silently.
template <typename T>
class [[nodiscard]] Result : public tl::expected<T, Error> {
 public:
  using Base = tl::expected<T, Error>;
  using Base::Base;
  Result(const Base& b) : Base(b) {}        // NOLINT: results of and_then/map convert back
  Result(Base&& b) : Base(std::move(b)) {}  // NOLINT
};
using Status = Result<void>;

inline tl::unexpected<Error> Fail(Code code, std::string msg) {
  return tl::unexpected(Error::Make(code, std::move(msg)));
}
inline tl::unexpected<Error> FailErrno(std::string what) {
  return tl::unexpected(Error::FromErrno(std::move(what)));
}
inline tl::unexpected<Error> Fail(Error e) { return tl::unexpected(std::move(e)); }

}  // namespace imagefs

// Propagates an error from an expression returning Status or Result<T>.
#define IMAGEFS_CONCAT_INNER(a, b) a##b
#define IMAGEFS_CONCAT(a, b) IMAGEFS_CONCAT_INNER(a, b)
#define RETURN_IF_ERROR(expr)                                                          \
  do {                                                                                 \
    auto imagefs_status_ = (expr);                                                     \
    if (!imagefs_status_) return ::tl::unexpected(std::move(imagefs_status_).error()); \
  } while (0)
#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr)                \
  auto tmp = (expr);                                         \
  if (!tmp) return ::tl::unexpected(std::move(tmp).error()); \
  lhs = std::move(*tmp)
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(IMAGEFS_CONCAT(imagefs_result_, __LINE__), lhs, expr)
