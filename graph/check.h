// CheckStore: verifies a whole store (what `imagefs check` runs). Every diff's bytes
// against its DiffID and its index, every layer record against its ChainID, parent and
// diff, every image's config against its ID and its chain, tags, leftovers of interrupted
// work and orphans. With repair it removes what is broken or orphaned, never a sound image:
// an image is removed only when something it needs is broken.
#pragma once

#include <string>
#include <vector>

#include "graph/store.h"

namespace imagefs {

struct CheckProblem {
  std::string object;   // "image <id>", "layer <chain>", "diff <digest>", "tag <ref>", a path
  std::string problem;  // what is wrong
  std::string fix;      // what --repair does about it (or what the user can do)
  // Left by interrupted work (an orphan, a temporary file, a stale marker): harmless to every
  // image, removed by --repair. Anything else is damage.
  bool leftover = false;
};

struct CheckReport {
  size_t images = 0, layers = 0, diffs = 0, tags = 0;
  uint64_t bytes_hashed = 0;
  std::vector<CheckProblem> problems;
  std::vector<std::string> removed;  // with repair: what went, one line each
  std::vector<std::string> notes;    // what was not judged, and why
  bool clean() const { return problems.empty(); }
};

struct CheckOptions {
  bool repair = false;
};

// The store should be opened with StoreOptions::recover = false, so that leftovers of
// crashed writers are seen (and, with repair, removed when no other process uses it).
Result<CheckReport> CheckStore(Store& store, const CheckOptions& options = {});

}  // namespace imagefs
