// OutputFile: where a command writes what the user named with -o. A new path or a regular
// file is replaced atomically: written to a temporary file beside it, fsynced and renamed
// over it, so that an interrupted write leaves the old file or the new one, never half of
// one; a symlink is followed to its target and stays. Anything else (a device, a FIFO, a
// socket, /dev/stdout, /proc/self/fd/N) is written in place, and nothing the command did
// not create is ever removed. "-" or "" is standard output. Not thread-safe; one at a time
// per process (a signal handler removes the temporary file of the live one).
#pragma once

#include <string>

#include "graph/base/error.h"
#include "graph/base/unique_fd.h"

namespace imagefs {

class OutputFile {
 public:
  static Result<OutputFile> Open(const std::string& path);
  OutputFile(OutputFile&& other) noexcept;
  OutputFile& operator=(OutputFile&&) = delete;
  ~OutputFile();  // removes the temporary file unless Commit() renamed it

  int fd() const;
  // What to call it in messages: the path as the user gave it, or "standard output".
  const std::string& name() const { return name_; }
  bool is_stdout() const { return !fd_.valid(); }
  // Makes the output durable and visible: fsync (where the file has such a thing) and,
  // for an atomic write, the rename over the target.
  Status Commit();

 private:
  OutputFile() = default;

  std::string name_;
  UniqueFd fd_;           // invalid: standard output
  std::string target_;    // atomic writes: the path renamed over (symlinks resolved)
  std::string tmp_;       // atomic writes: the temporary file, until committed
  bool regular_ = false;  // fsync errors count only for regular files
};

}  // namespace imagefs
