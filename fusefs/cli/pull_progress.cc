#include "fusefs/cli/pull_progress.h"

#include "fusefs/cli/format.h"
#include "fusefs/cli/progress.h"

namespace imagefs {

void PullProgress::LayerStatus(const std::string& id, const std::string& status, uint64_t current,
                               uint64_t total) {
  std::string text = id + ": " + status;
  if (status == "Downloading" && total > 0) {
    text += " " + ProgressBar(current, total) + "  " + HumanSize(current) + "/" + HumanSize(total);
  }
  size_t i = 0;
  while (i < lines_.size() && lines_[i].id != id) ++i;
  if (i == lines_.size()) {
    lines_.push_back({id, text});
    std::fprintf(out_, "%s\n", text.c_str());
  } else if (lines_[i].text != text) {
    bool progress_only =
        status == "Downloading" && lines_[i].text.rfind(id + ": Downloading", 0) == 0;
    lines_[i].text = text;
    if (terminal_) {
      size_t up = lines_.size() - i;
      std::fprintf(out_, "\033[%zuA\r\033[K%s\033[%zuB\r", up, text.c_str(), up);
    } else if (!progress_only) {
      std::fprintf(out_, "%s\n",
                   status == "Downloading" ? (id + ": Downloading").c_str() : text.c_str());
    }
  }
  std::fflush(out_);
}

void PullProgress::Message(const std::string& line) {
  std::fprintf(out_, "%s\n", line.c_str());
  std::fflush(out_);
  lines_.clear();  // lines above a message are never redrawn
}

}  // namespace imagefs
