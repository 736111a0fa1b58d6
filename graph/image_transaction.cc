#include "graph/image_transaction.h"

#include "graph/base/log.h"

namespace imagefs {

ImageTransaction::~ImageTransaction() {
  holds_.clear();  // our own holds would keep the layers from being rolled back
  if (committed_) return;
  for (auto it = created_.rbegin(); it != created_.rend(); ++it) {
    if (auto st = store_.DeleteLayer(*it); !st) {
      Logger("graph")->warn("roll back layer {}: {}", it->str(), st.error().msg);
    }
  }
}

Result<LayerInfo> ImageTransaction::AddLayer(const std::optional<Digest>& parent, ByteSource& tar,
                                             const std::optional<Digest>& diff_id, bool* created) {
  // Held before it is looked up where its ChainID is known in advance; else right after,
  // checking that no other process removed it in between.
  if (diff_id) {
    ASSIGN_OR_RETURN(RetainHandle hold,
                     store_.Retain(ChainIdOf(parent ? &*parent : nullptr, *diff_id)));
    holds_.push_back(std::move(hold));
  }
  bool stored = false;
  ASSIGN_OR_RETURN(LayerInfo layer, store_.RegisterLayer(parent, tar, diff_id, &stored));
  if (stored) created_.push_back(layer.chain_id);
  if (!diff_id) {
    ASSIGN_OR_RETURN(RetainHandle hold, store_.Retain(layer.chain_id));
    holds_.push_back(std::move(hold));
    RETURN_IF_ERROR(store_.Refresh());
    if (!store_.GetLayer(layer.chain_id)) {
      return Fail(Code::kBusy, "layer " + layer.chain_id.str() +
                                   " was removed by another process while its image was "
                                   "being registered: try again");
    }
  }
  if (created != nullptr) *created = stored;
  return layer;
}

Result<bool> ImageTransaction::HoldIfPresent(const Digest& chain) {
  ASSIGN_OR_RETURN(RetainHandle hold, store_.Retain(chain));
  holds_.push_back(std::move(hold));
  RETURN_IF_ERROR(store_.Refresh());  // another process may have removed it before the hold
  return store_.GetLayer(chain).has_value();
}

Result<ImageInfo> ImageTransaction::Commit(const ImageSpec& spec,
                                           const std::vector<Reference>& tags) {
  ASSIGN_OR_RETURN(ImageInfo image, store_.RegisterImage(spec));
  committed_ = true;  // the image holds its layers now
  for (const Reference& tag : tags) RETURN_IF_ERROR(store_.Tag(tag, image.id));
  return image;
}

}  // namespace imagefs
