#include "fusefs/cli/progress.h"

#include "fusefs/cli/format.h"

namespace imagefs {

std::string ProgressBar(uint64_t done, uint64_t total, int width) {
  int filled = total == 0
                   ? width
                   : static_cast<int>(width * std::min<double>(1.0, double(done) / double(total)));
  std::string bar = "[";
  for (int i = 0; i < width; ++i) bar += i < filled - 1 ? '=' : (i == filled - 1 ? '>' : ' ');
  return bar + "]";
}

void TerminalLoadProgress::LayerStarted(const std::string& id, uint64_t total_bytes) {
  total_ = total_bytes;
  Draw(id, 0, false);
}

void TerminalLoadProgress::LayerProgress(const std::string& id, uint64_t done_bytes) {
  Draw(id, done_bytes, false);
}

void TerminalLoadProgress::LayerDone(const std::string& id, bool already_present) {
  if (already_present) {
    std::fprintf(out_, "\r\033[K%s: Layer already exists\n", id.c_str());
  } else {
    Draw(id, total_, true);
  }
  std::fflush(out_);
}

void TerminalLoadProgress::Draw(const std::string& id, uint64_t done, bool finished) {
  std::fprintf(out_, "\r\033[K%s: Loading layer %s  %s/%s%s", id.c_str(),
               ProgressBar(done, total_).c_str(), HumanSize(done).c_str(),
               HumanSize(total_).c_str(), finished ? "\n" : "");
  std::fflush(out_);
}

}  // namespace imagefs
