// Docker-style progress lines on a terminal ("Loading layer [=====>    ] 1.2MB/4.5MB"),
// redrawn in place; nothing at all when the output is not a terminal.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "graph/loader.h"

namespace imagefs {

// A bar of `width` cells for done/total, as Docker draws it: "[====>     ]".
std::string ProgressBar(uint64_t done, uint64_t total, int width = 50);

class TerminalLoadProgress final : public LoadProgress {
 public:
  explicit TerminalLoadProgress(FILE* out) : out_(out) {}
  void LayerStarted(const std::string& id, uint64_t total_bytes) override;
  void LayerProgress(const std::string& id, uint64_t done_bytes) override;
  void LayerDone(const std::string& id, bool already_present) override;

 private:
  void Draw(const std::string& id, uint64_t done, bool finished);
  FILE* out_;
  uint64_t total_ = 0;
};

}  // namespace imagefs
