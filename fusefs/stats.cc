#include "fusefs/stats.h"

#include <malloc.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

namespace imagefs {
namespace {

// What the daemon holds, to tell a leak from a cache or a mapped file: malloc's bytes in
// use and freed-but-kept, and the resident set split as the kernel counts it.
nlohmann::json Memory() {
  nlohmann::json j = nlohmann::json::object();
  struct mallinfo2 m = mallinfo2();
  j["heap_in_use_bytes"] = m.uordblks + m.hblkhd;
  j["heap_free_kept_bytes"] = m.fordblks;
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    for (const char* key : {"VmRSS", "RssAnon", "RssFile", "RssShmem"}) {
      std::string prefix = std::string(key) + ":";
      // strtoull, not stoull: a line it cannot parse gives 0, never an exception in an op.
      if (line.rfind(prefix, 0) == 0)
        j[std::string(key) + "_kib"] = std::strtoull(line.c_str() + prefix.size(), nullptr, 10);
    }
  }
  return j;
}

}  // namespace

std::string Stats::Json() const {
  nlohmann::json j = nlohmann::json::object();
  {
    std::lock_guard lock(mu_);
    j["eio"] = counters_;
    j["events"] = events_;
  }
  return j.dump(2) + "\n";
}

std::string Stats::MemoryJson() { return Memory().dump(2) + "\n"; }

}  // namespace imagefs
