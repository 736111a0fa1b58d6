#include "graph/base/error.h"

#include <cstring>

namespace imagefs {

const char* CodeName(Code code) {
  switch (code) {
    case Code::kOk: return "ok";
    case Code::kNotFound: return "not found";
    case Code::kInvalid: return "invalid";
    case Code::kCorrupt: return "corrupt";
    case Code::kIo: return "i/o error";
    case Code::kNetwork: return "network error";
    case Code::kAuth: return "authentication error";
    case Code::kExists: return "exists";
    case Code::kBusy: return "busy";
    case Code::kCancelled: return "cancelled";
    case Code::kUnsupported: return "unsupported";
  }
  return "unknown";
}

Error Error::FromErrno(std::string what, int e) {
  Code code = Code::kIo;
  if (e == ENOENT) code = Code::kNotFound;
  if (e == EEXIST) code = Code::kExists;
  return Error{code, e, std::move(what) + ": " + std::strerror(e)};
}

int Error::ToErrno() const {
  if (sys_errno != 0) return sys_errno;
  switch (code) {
    case Code::kOk: return 0;
    case Code::kNotFound: return ENOENT;
    case Code::kInvalid: return EINVAL;
    case Code::kAuth: return EACCES;
    case Code::kExists: return EEXIST;
    case Code::kBusy: return EBUSY;
    case Code::kCancelled: return EINTR;
    case Code::kUnsupported: return ENOTSUP;
    case Code::kCorrupt:
    case Code::kIo:
    case Code::kNetwork: return EIO;
  }
  return EIO;
}

}  // namespace imagefs
