#include "fusefs/stats.h"

#include <nlohmann/json.hpp>

namespace imagefs {

std::string Stats::Json() const {
  nlohmann::json j = nlohmann::json::object();
  {
    std::lock_guard lock(mu_);
    j["eio"] = counters_;
    j["events"] = events_;
  }
  return j.dump(2) + "\n";
}

}  // namespace imagefs
