// ImageTransaction: registers one image's layers and then the image, or nothing: layers
// this transaction stored are removed again (unless another image or a retain holds them)
// when it ends without a commit. Every layer it adds is retained until then, so that a
// concurrent rm or prune (of any process) leaves the layers of an image being registered
// alone: until its image commits, nothing else uses them. The one way images enter the store: the
// loaders (docker save, OCI layout, legacy) and the puller all register through it.
#pragma once

#include <optional>
#include <vector>

#include "graph/store.h"

namespace imagefs {

class ImageTransaction {
 public:
  explicit ImageTransaction(Store& store) : store_(store) {}
  ImageTransaction(const ImageTransaction&) = delete;
  ImageTransaction& operator=(const ImageTransaction&) = delete;
  ~ImageTransaction();

  // The layer on top of `parent` whose uncompressed tar is `tar`, read only if the store
  // lacks the layer (with diff_id given, a diff stored already is used as it is). Sets
  // *created when this call stored the layer.
  Result<LayerInfo> AddLayer(const std::optional<Digest>& parent, ByteSource& tar,
                             const std::optional<Digest>& diff_id, bool* created = nullptr);
  // Holds the layer `chain` as AddLayer does, and says whether the store has it: a loader
  // that finds it there adds it to the image without reading its tar.
  Result<bool> HoldIfPresent(const Digest& chain);
  // Registers the image and its tags, and commits: its layers stay.
  Result<ImageInfo> Commit(const ImageSpec& spec, const std::vector<Reference>& tags = {});

 private:
  Store& store_;
  std::vector<Digest> created_;      // layers this transaction stored, bottom first
  std::vector<RetainHandle> holds_;  // one per layer added, until the commit or the end
  bool committed_ = false;
};

}  // namespace imagefs
