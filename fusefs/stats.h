// Stats: counters of the mount's EIO sites and of other notable events, by stable tag,
// shown as JSON in MOUNT/.imagefs/stats ({"eio": {...}, "events": {...}}). Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace imagefs {

class Stats {
 public:
  // An EIO answered at the site `tag`.
  void Bump(const std::string& tag) {
    std::lock_guard lock(mu_);
    ++counters_[tag];
  }
  void Note(const std::string& event) {
    std::lock_guard lock(mu_);
    ++events_[event];
  }
  std::string Json() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, uint64_t> counters_;  // guarded by mu_
  std::map<std::string, uint64_t> events_;    // guarded by mu_
};

}  // namespace imagefs
