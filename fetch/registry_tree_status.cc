// The mount's .imagefs/ reports on registry/: pulls.json, errors.json, lazy.json and
// streams.json.
#include <ctime>
#include <nlohmann/json.hpp>

#include "fetch/registry_tree.h"

namespace imagefs::fetch {
namespace {

constexpr size_t kMaxErrors = 20;

}  // namespace

void RegistryTree::RecordError(const std::string& what, const Error& error) {
  if (error.code == Code::kCancelled && closing_) return;  // the mount stopping: no error
  nlohmann::json j = {{"time", static_cast<int64_t>(std::time(nullptr))},
                      {"ref", what},
                      {"errno", error.ToErrno()},
                      {"error", error.msg}};
  std::lock_guard lock(mu_);
  errors_.push_back(j.dump());
  while (errors_.size() > kMaxErrors) errors_.pop_front();
}

std::map<std::string, std::string> RegistryTree::StatusFiles() {
  std::lock_guard lock(mu_);
  nlohmann::json pulls = nlohmann::json::array();
  for (const auto& [key, pull] : active_) {
    nlohmann::json layers = nlohmann::json::array();
    uint64_t current = 0, total = 0;
    for (const auto& [id, l] : pull.layers) {
      layers.push_back(
          {{"layer", id}, {"status", l.status}, {"bytes", l.current}, {"total", l.total}});
      current += l.current;
      total += l.total;
    }
    pulls.push_back({{"ref", pull.ref},
                     {"started", pull.started},
                     {"bytes", current},
                     {"total", total},
                     {"layers", layers}});
  }
  std::string errors = "[";
  for (size_t i = 0; i < errors_.size(); ++i) errors += (i ? ",\n " : "\n ") + errors_[i];
  errors += errors_.empty() ? "]\n" : "\n]\n";
  nlohmann::json lazy = nlohmann::json::array();
  for (const auto& [key, image] : lazy_) {
    nlohmann::json layers = nlohmann::json::array();
    uint64_t requests = 0, bytes = 0, errors_seen = 0;
    for (const auto& l : image.layers) {
      if (!l) {
        layers.push_back({{"stored", true}});
        continue;
      }
      layers.push_back({{"layer", l->descriptor().digest.str()},
                        {"size", l->descriptor().size},
                        {"chunks", l->layout().chunks.size()},
                        {"chunks_present", l->chunks_present()},
                        {"requests", l->requests()},
                        {"bytes_fetched", l->bytes_fetched()},
                        {"errors", l->errors()},
                        {"completed_from_chunks", l->streamed()}});
      requests += l->requests();
      bytes += l->bytes_fetched();
      errors_seen += l->errors();
    }
    lazy.push_back({{"ref", image.ref},
                    {"state", image.state},
                    {"reads_from", image.from_store ? "store" : "chunks"},
                    {"requests", requests},
                    {"bytes_fetched", bytes},
                    {"errors", errors_seen},
                    {"layers", layers}});
  }
  nlohmann::json streams = nlohmann::json::array();
  for (const auto& [key, image] : streamed_) {
    nlohmann::json layers = nlohmann::json::array();
    for (const StreamingRootfs::Layer& l : image.rootfs->layers()) {
      if (!l.streaming) {
        layers.push_back({{"stored", true}});
        continue;
      }
      layers.push_back({{"diff_id", l.streaming->diff_id().str()},
                        {"bytes", l.streaming->bytes_written()},
                        {"members", l.streaming->members()},
                        {"indexed", l.streaming->indexed()}});
    }
    streams.push_back({{"ref", image.ref}, {"state", image.state}, {"layers", layers}});
  }
  return {{"pulls.json", pulls.dump(1) + "\n"},
          {"errors.json", errors},
          {"lazy.json", lazy.dump(1) + "\n"},
          {"streams.json", streams.dump(1) + "\n"}};
}

}  // namespace imagefs::fetch
