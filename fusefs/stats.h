// Stats: counters of the mount's EIO sites (and other notable events) by stable tag,
// shown as JSON in MOUNT/.imagefs/stats. Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace imagefs {

class Stats {
 public:
  void Bump(const std::string& tag) {
    std::lock_guard lock(mu_);
    ++counters_[tag];
  }
  std::string Json() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, uint64_t> counters_;  // guarded by mu_
};

}  // namespace imagefs
