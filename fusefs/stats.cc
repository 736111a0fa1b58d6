#include "fusefs/stats.h"

#include <nlohmann/json.hpp>

namespace imagefs {

std::string Stats::Json() const {
  nlohmann::json j = nlohmann::json::object();
  {
    std::lock_guard lock(mu_);
    for (const auto& [tag, n] : counters_) j["eio"][tag] = n;
  }
  if (!j.contains("eio")) j["eio"] = nlohmann::json::object();
  return j.dump(2) + "\n";
}

}  // namespace imagefs
