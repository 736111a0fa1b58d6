// Stats: counters of the mount's EIO sites and of other notable events, by stable tag,
// shown as JSON in MOUNT/.imagefs/stats ({"eio": {...}, "events": {...}}); and what the
// daemon holds in memory, in MOUNT/.imagefs/memory. Thread-safe.
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
  // malloc's bytes in use and kept free, VmRSS and its anonymous/file/shmem parts (KiB):
  // enough to tell a leak (grows) from a cache or a mapped file.
  static std::string MemoryJson();

 private:
  mutable std::mutex mu_;
  std::map<std::string, uint64_t> counters_;  // guarded by mu_
  std::map<std::string, uint64_t> events_;    // guarded by mu_
};

}  // namespace imagefs
