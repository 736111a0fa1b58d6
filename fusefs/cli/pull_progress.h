// Pull output as Docker prints it: on a terminal, one line per layer redrawn in place
// ("a3ed95caeb02: Downloading [==>     ] 1.2MB/4.5MB"); otherwise each status change
// once, as plain lines. Called from the pulling thread only.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "fetch/puller.h"

namespace imagefs {

class PullProgress final : public fetch::PullObserver {
 public:
  PullProgress(FILE* out, bool terminal) : out_(out), terminal_(terminal) {}
  void LayerStatus(const std::string& id, const std::string& status, uint64_t current,
                   uint64_t total) override;
  void Message(const std::string& line) override;

 private:
  struct Line {
    std::string id;
    std::string text;
  };
  FILE* out_;
  bool terminal_;
  std::vector<Line> lines_;  // layer lines, in the order they appeared
};

}  // namespace imagefs
