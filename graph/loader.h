// The image loader: loads a legacy or modern `docker save` tarball, a skopeo
// docker-archive, or an OCI image layout (tarball or directory) into the store, parents
// first, skipping layers already present. Each image is all-or-nothing. Used by
// `imagefs load` and by the mount's import/ directory.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "graph/base/error.h"
#include "graph/platform.h"
#include "graph/reference.h"
#include "graph/store.h"

namespace imagefs {

struct LoadOptions {
  std::optional<Platform> platform;  // for multi-platform OCI indexes; default: the host's
  bool all_platforms = false;
};

struct LoadedImage {
  std::string id;
  std::vector<Reference> tags;
};

struct LoadReport {
  std::vector<LoadedImage> images;  // in load order
  std::vector<Error> failures;      // images that failed; each message names the image
  // Layers newly stored; loads that only found existing layers store none.
  size_t layers_stored = 0;
};

// Receives progress as layers stream in; called from the loading thread.
class LoadProgress {
 public:
  virtual ~LoadProgress() = default;
  virtual void LayerStarted(const std::string& id, uint64_t total_bytes) = 0;
  virtual void LayerProgress(const std::string& id, uint64_t done_bytes) = 0;
  virtual void LayerDone(const std::string& id, bool already_present) = 0;
};

// Fails as a whole only when the archive cannot be read or its format is unknown;
// otherwise reports each image's success or failure.
// Builds and saves the merged tree of an image (TreeFile) unless a valid one is saved, so
// that the first mount answers at once; a failure is logged, and the mount builds it.
void PrepareTree(const Store& store, const std::string& image_id);

Result<LoadReport> LoadArchive(Store& store, const std::filesystem::path& path,
                               const LoadOptions& options = {}, LoadProgress* progress = nullptr);

}  // namespace imagefs
