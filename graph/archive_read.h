// libarchive read handles: their deleter, and their error text.
#pragma once

#include <archive.h>

#include <string>

namespace imagefs {

struct ArchiveReadDeleter {
  void operator()(archive* a) const { archive_read_free(a); }
};

// libarchive leaves its error string null after some failures (a header cut short by the
// end of the input): never hand that null to std::string.
inline std::string ArchiveError(archive* a) {
  const char* why = archive_error_string(a);
  return why != nullptr ? why : "malformed or truncated tar";
}

}  // namespace imagefs
