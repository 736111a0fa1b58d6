// Helpers shared by the libFuzzer targets: scratch directories (on tmpfs when the runner
// gives one, since the store fsyncs every registration), inputs written to files for
// parsers only reachable through a path, and the check that aborts on a broken invariant.
#pragma once

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "graph/base/fs_util.h"
#include "graph/base/log.h"

namespace imagefs::fuzz {

// A fuzzer must not spend its time formatting log lines nobody reads.
inline void QuietLogs() {
  static const bool done = [] {
    InitLogging(spdlog::level::off);
    return true;
  }();
  (void)done;
}

// One input; defined by each target, called by fuzz_entry.cc with logging off.
void FuzzOne(std::string_view input);

// An invariant the code promises; a violation is a finding, so crash where libFuzzer sees it.
#define FUZZ_CHECK(cond)                                                                 \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)

// A directory removed when the process exits normally. $FUZZ_TMPDIR (scripts/fuzz.sh
// points it at /dev/shm) else $TMPDIR else /tmp.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& prefix) {
    const char* base = std::getenv("FUZZ_TMPDIR");
    if (base == nullptr || *base == '\0') base = std::getenv("TMPDIR");
    std::filesystem::path dir = base != nullptr && *base != '\0' ? base : "/tmp";
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    std::string tmpl = (dir / (prefix + "-XXXXXX")).string();
    if (mkdtemp(tmpl.data()) == nullptr) {
      std::perror("mkdtemp");
      std::abort();
    }
    path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Writes the input to `path` (replacing it); aborts if it cannot (not a finding).
inline void WriteInput(const std::filesystem::path& path, std::string_view data) {
  auto fd = OpenFile(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (!fd || !WriteAll(fd->get(), data.data(), data.size())) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    std::abort();
  }
}

// Splits an input at each `separator` into at most max_parts parts (the last keeps the rest).
inline std::vector<std::string_view> SplitInput(std::string_view data, std::string_view separator,
                                                size_t max_parts) {
  std::vector<std::string_view> parts;
  while (parts.size() + 1 < max_parts) {
    size_t at = data.find(separator);
    if (at == std::string_view::npos) break;
    parts.push_back(data.substr(0, at));
    data.remove_prefix(at + separator.size());
  }
  parts.push_back(data);
  return parts;
}

}  // namespace imagefs::fuzz
