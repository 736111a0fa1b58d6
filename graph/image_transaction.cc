#include "graph/image_transaction.h"

#include "graph/base/log.h"

namespace imagefs {

ImageTransaction::~ImageTransaction() {
  if (committed_) return;
  for (auto it = created_.rbegin(); it != created_.rend(); ++it) {
    if (auto st = store_.DeleteLayer(*it); !st) {
      Logger("graph")->warn("roll back layer {}: {}", it->str(), st.error().msg);
    }
  }
}

Result<LayerInfo> ImageTransaction::AddLayer(const std::optional<Digest>& parent, ByteSource& tar,
                                             const std::optional<Digest>& diff_id, bool* created) {
  bool stored = false;
  ASSIGN_OR_RETURN(LayerInfo layer, store_.RegisterLayer(parent, tar, diff_id, &stored));
  if (stored) created_.push_back(layer.chain_id);
  if (created != nullptr) *created = stored;
  return layer;
}

Result<ImageInfo> ImageTransaction::Commit(const ImageSpec& spec,
                                           const std::vector<Reference>& tags) {
  ASSIGN_OR_RETURN(ImageInfo image, store_.RegisterImage(spec));
  committed_ = true;  // the image holds its layers now
  for (const Reference& tag : tags) RETURN_IF_ERROR(store_.Tag(tag, image.id));
  return image;
}

}  // namespace imagefs
