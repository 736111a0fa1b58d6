// Prune: what `imagefs prune` removes from a store: layers no image uses, with `all` also
// images without tags that no image builds on; passthrough copies (made again on demand),
// the lazy cache's markers of images that are gone, and chunk caches of layers read by
// Range: those of layers now stored whole, with `all` every one.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "graph/base/digest.h"
#include "graph/base/error.h"
#include "graph/store.h"

namespace imagefs {

struct PruneReport {
  std::vector<std::string> images;  // IDs, in the order removed
  std::vector<Digest> layers;       // chain IDs
  uint64_t freed_bytes = 0;         // layer tars, passthrough copies, chunk caches
  std::vector<Error> errors;        // images that could not go (other than busy ones)
};

PruneReport Prune(Store& store, bool all);

}  // namespace imagefs
