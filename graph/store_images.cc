// The store's images, tags, ID resolution and deletion.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <algorithm>
#include <ctime>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "graph/base/fs_util.h"
#include "graph/base/log.h"
#include "graph/store.h"
#include "graph/store_write_lock.h"

namespace imagefs {

namespace fs = std::filesystem;
namespace {

Result<std::string> StripIdPrefix(std::string_view prefix, const char* what) {
  if (prefix.rfind("sha256:", 0) == 0) prefix.remove_prefix(7);
  if (prefix.empty() || prefix.size() > 64 ||
      prefix.find_first_not_of("0123456789abcdef") != std::string_view::npos) {
    return Fail(Code::kInvalid, std::string("invalid ") + what + " ID \"" + std::string(prefix) +
                                    "\": want a prefix of 64 lowercase hex characters");
  }
  return std::string(prefix);
}

template <typename Map>
Result<std::string> FindUniquePrefix(const Map& map, const std::string& prefix, const char* what,
                                     std::string_view shown) {
  auto it = map.lower_bound(prefix);
  if (it == map.end() || it->first.compare(0, prefix.size(), prefix) != 0) {
    return Fail(Code::kNotFound, std::string("no such ") + what + ": " + std::string(shown));
  }
  auto next = std::next(it);
  if (next != map.end() && next->first.compare(0, prefix.size(), prefix) == 0) {
    return Fail(Code::kInvalid, std::string("ambiguous ") + what + " ID prefix \"" +
                                    std::string(shown) + "\": matches " + it->first.substr(0, 12) +
                                    ", " + next->first.substr(0, 12) + ", ...");
  }
  return it->first;
}

}  // namespace

// ---- Images -------------------------------------------------------------------------

Result<ImageInfo> Store::RegisterImage(const ImageSpec& spec) {
  if (!IsHex64(spec.id)) {
    return Fail(Code::kInvalid, "invalid image ID \"" + spec.id + "\": want 64 lowercase hex");
  }
  auto config = nlohmann::json::parse(spec.config, nullptr, false);
  if (config.is_discarded() || !config.is_object()) {
    return Fail(Code::kInvalid, "image " + spec.id + ": config is not a JSON object");
  }
  ImageInfo image;
  image.id = spec.id;
  image.top_layer = spec.top_layer;
  image.parent = spec.parent;
  if (config.contains("created") && config["created"].is_string()) {
    image.created = config["created"].get<std::string>();
  }
  image.registered = static_cast<int64_t>(time(nullptr));

  ASSIGN_OR_RETURN(auto lock, WriteLock::Acquire(this));
  if (auto existing = GetImage(spec.id)) return *existing;
  if (spec.parent && !GetImage(*spec.parent)) {
    return Fail(Code::kNotFound,
                "image " + spec.id + ": parent image " + *spec.parent + " is not in the store");
  }
  if (spec.top_layer) {
    auto chain = LayerChain(*spec.top_layer);
    if (!chain) {
      return Fail(Code::kNotFound,
                  "image " + spec.id + ": layer " + spec.top_layer->str() + " is not in the store");
    }
    for (const LayerInfo& l : *chain) image.size += l.content_size;
  }
  RETURN_IF_ERROR(Step("image:write"));
  ASSIGN_OR_RETURN(TempDir tmp, TempDir::Create(root_ / "tmp", "image-"));
  RETURN_IF_ERROR(WriteNewFile(tmp.path() / "config.json", spec.config));
  RETURN_IF_ERROR(WriteNewFile(tmp.path() / "image.json", EncodeImageRecord(image)));
  RETURN_IF_ERROR(Step("image:commit"));
  RETURN_IF_ERROR(tmp.Commit(root_ / "images" / spec.id));
  {
    std::unique_lock l(mu_);
    images_[spec.id] = image;
  }
  RETURN_IF_ERROR(BumpGeneration());
  GraphLog()->info("register image id={} layer={}", spec.id,
                   spec.top_layer ? spec.top_layer->str() : "none");
  return image;
}

Result<ImageInfo> Store::GetImage(const std::string& id) const {
  std::shared_lock lock(mu_);
  auto it = images_.find(id);
  if (it == images_.end()) return Fail(Code::kNotFound, "no such image: " + id);
  return it->second;
}

Result<std::string> Store::ReadConfig(const std::string& id) const {
  if (!IsHex64(id)) return Fail(Code::kInvalid, "invalid image ID \"" + id + "\"");
  return ReadFile(root_ / "images" / id / "config.json");
}

std::vector<ImageInfo> Store::Images() const {
  std::shared_lock lock(mu_);
  std::vector<ImageInfo> out;
  for (const auto& [id, image] : images_) out.push_back(image);
  return out;
}

std::vector<ImageInfo> Store::Heads() const {
  std::shared_lock lock(mu_);
  std::set<std::string> parents;
  for (const auto& [id, image] : images_) {
    if (image.parent) parents.insert(*image.parent);
  }
  std::vector<ImageInfo> out;
  for (const auto& [id, image] : images_) {
    if (!parents.count(id)) out.push_back(image);
  }
  return out;
}

std::vector<std::string> Store::Children(const std::string& id) const {
  std::shared_lock lock(mu_);
  std::vector<std::string> out;
  for (const auto& [child, image] : images_) {
    if (image.parent == id) out.push_back(child);
  }
  return out;
}

// ---- Resolution ---------------------------------------------------------------------

Result<std::string> Store::ResolveImageId(std::string_view prefix) const {
  ASSIGN_OR_RETURN(std::string hex, StripIdPrefix(prefix, "image"));
  std::shared_lock lock(mu_);
  return FindUniquePrefix(images_, hex, "image", prefix);
}

Result<Digest> Store::ResolveLayerId(std::string_view prefix) const {
  ASSIGN_OR_RETURN(std::string hex, StripIdPrefix(prefix, "layer"));
  std::shared_lock lock(mu_);
  ASSIGN_OR_RETURN(std::string found, FindUniquePrefix(layers_, hex, "layer", prefix));
  return Digest::FromHex(found);
}

Result<std::string> Store::ResolveImage(std::string_view name_or_id) const {
  if (auto ref = ParseReference(name_or_id); ref && !ref->digest) {
    std::shared_lock lock(mu_);
    auto it = tags_.find(WithDefaultTag(*ref).String());
    if (it != tags_.end()) return it->second;
  }
  if (!StripIdPrefix(name_or_id, "image")) {
    return Fail(Code::kNotFound, "no such image: " + std::string(name_or_id));
  }
  return ResolveImageId(name_or_id);
}

// ---- Tags ---------------------------------------------------------------------------

Status Store::WriteTagsLocked(const std::map<std::string, std::string>& tags) {
  nlohmann::json j = {{"tags", tags}};
  RETURN_IF_ERROR(WriteFileAtomic(root_ / "tags.json", j.dump(2) + "\n"));
  {
    std::unique_lock l(mu_);
    tags_ = tags;
  }
  return BumpGeneration();
}

Status Store::Tag(const Reference& ref, const std::string& image_id) {
  if (ref.tag.empty() || ref.digest) {
    return Fail(Code::kInvalid, "tag " + ref.String() + ": a tag needs a name:tag without digest");
  }
  ASSIGN_OR_RETURN(auto lock, WriteLock::Acquire(this));
  if (!GetImage(image_id)) return Fail(Code::kNotFound, "no such image: " + image_id);
  auto tags = Tags();
  tags[ref.String()] = image_id;
  return WriteTagsLocked(tags);
}

Status Store::Untag(const Reference& ref) {
  ASSIGN_OR_RETURN(auto lock, WriteLock::Acquire(this));
  auto tags = Tags();
  if (tags.erase(WithDefaultTag(ref).String()) == 0) {
    return Fail(Code::kNotFound, "no such tag: " + WithDefaultTag(ref).FamiliarString());
  }
  return WriteTagsLocked(tags);
}

Status Store::DropDanglingTags() {
  ASSIGN_OR_RETURN(auto lock, WriteLock::Acquire(this));  // reloaded: tags_ holds only sound ones
  return WriteTagsLocked(Tags());
}

std::map<std::string, std::string> Store::Tags() const {
  std::shared_lock lock(mu_);
  return tags_;
}

std::vector<Reference> Store::TagsOf(const std::string& image_id) const {
  std::vector<Reference> out;
  for (const auto& [name, id] : Tags()) {
    if (id != image_id) continue;
    if (auto ref = ParseReference(name)) out.push_back(*ref);
  }
  return out;
}

// ---- Deletion -----------------------------------------------------------------------

std::string Store::LayerBusyReasonLocked(const Digest& chain_id) const {
  std::shared_lock lock(mu_);
  for (const auto& [id, image] : images_) {
    if (image.top_layer == chain_id) return "image " + id.substr(0, 12) + " uses it";
  }
  for (const auto& [hex, layer] : layers_) {
    if (layer.parent == chain_id) return "layer " + hex.substr(0, 12) + " is its child";
  }
  fs::path retain = root_ / "retain" / chain_id.hex();
  if (fs::exists(retain)) {
    auto fd = LockFile(retain, LOCK_EX | LOCK_NB);
    if (!fd && fd.error().code == Code::kBusy) return "an in-flight transfer holds it";
  }
  return "";
}

Status Store::RemoveLayerLocked(const LayerInfo& layer) {
  RETURN_IF_ERROR(RemoveDirAtomically(root_ / "layers" / layer.chain_id.hex()));
  bool diff_shared = false;
  {
    std::unique_lock l(mu_);
    layers_.erase(layer.chain_id.hex());
    for (const auto& [hex, other] : layers_) diff_shared |= other.diff_id == layer.diff_id;
  }
  if (!diff_shared) {
    RETURN_IF_ERROR(RemoveDirAtomically(root_ / "diffs" / layer.diff_id.hex()));
    std::lock_guard l(index_mu_);
    indexes_.erase(layer.diff_id.hex());
    blobs_.erase(layer.diff_id.hex());
  }
  GraphLog()->info("remove layer chain_id={}", layer.chain_id.str());
  return BumpGeneration();
}

Status Store::CollectLayersLocked(std::optional<Digest> from) {
  while (from) {
    auto layer = GetLayer(*from);
    if (!layer || !LayerBusyReasonLocked(*from).empty()) return {};
    RETURN_IF_ERROR(RemoveLayerLocked(*layer));
    from = layer->parent;
  }
  return {};
}

Status Store::DeleteImage(const std::string& id, bool force) {
  ASSIGN_OR_RETURN(auto lock, WriteLock::Acquire(this));
  ASSIGN_OR_RETURN(ImageInfo image, GetImage(id));
  auto children = Children(id);
  if (!children.empty()) {
    return Fail(Code::kBusy, "cannot remove image " + id.substr(0, 12) + ": image " +
                                 children.front().substr(0, 12) + " has it as parent");
  }
  std::set<std::string> repos;
  auto tags = Tags();
  for (auto it = tags.begin(); it != tags.end();) {
    if (it->second == id) {
      if (auto ref = ParseReference(it->first)) repos.insert(ref->Name());
      it = tags.erase(it);
    } else {
      ++it;
    }
  }
  if (!force && repos.size() > 1) {
    return Fail(Code::kBusy,
                "cannot remove image " + id.substr(0, 12) +
                    ": it is referenced in multiple repositories (untag it, or force)");
  }
  RETURN_IF_ERROR(WriteTagsLocked(tags));
  RETURN_IF_ERROR(RemoveDirAtomically(root_ / "images" / id));
  {
    std::unique_lock l(mu_);
    images_.erase(id);
  }
  RETURN_IF_ERROR(BumpGeneration());
  GraphLog()->info("remove image id={}", id);
  return CollectLayersLocked(image.top_layer);
}

Status Store::DeleteLayer(const Digest& chain_id) {
  ASSIGN_OR_RETURN(auto lock, WriteLock::Acquire(this));
  ASSIGN_OR_RETURN(LayerInfo layer, GetLayer(chain_id));
  std::string reason = LayerBusyReasonLocked(chain_id);
  if (!reason.empty()) {
    return Fail(Code::kBusy, "cannot remove layer " + chain_id.hex().substr(0, 12) + ": " + reason);
  }
  return RemoveLayerLocked(layer);
}

Result<UniqueFd> Store::LockKey(std::string_view key) {
  return LockFile(root_ / "locks" / Sha256::Of(key).hex(), LOCK_EX);
}

Result<RetainHandle> Store::Retain(const Digest& chain_id) {
  ASSIGN_OR_RETURN(UniqueFd fd, LockFile(root_ / "retain" / chain_id.hex(), LOCK_SH));
  return RetainHandle(std::move(fd));
}

}  // namespace imagefs
