#include "graph/image_archive.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "graph/base/fs_util.h"

namespace imagefs {
namespace {

using nlohmann::json;

void PutOctal(char* field, size_t width, uint64_t value) {
  // width-1 octal digits and a NUL; values that do not fit use base-256 (GNU, as Go does).
  if (value < (uint64_t{1} << (3 * (width - 1)))) {
    std::snprintf(field, width, "%0*llo", static_cast<int>(width - 1),
                  static_cast<unsigned long long>(value));
    return;
  }
  std::memset(field, 0, width);
  for (size_t i = width - 1; i > 0; --i) {
    field[i] = static_cast<char>(value & 0xff);
    value >>= 8;
  }
  field[0] = static_cast<char>(0x80);
}

// A ustar header; names here are at most 100 bytes (64-hex IDs and fixed names).
std::string Header(const std::string& name, char type, uint64_t size, uint32_t mode,
                   int64_t mtime) {
  std::string h(512, '\0');
  std::memcpy(h.data(), name.data(), std::min<size_t>(name.size(), 100));
  PutOctal(&h[100], 8, mode);
  PutOctal(&h[108], 8, 0);
  PutOctal(&h[116], 8, 0);
  PutOctal(&h[124], 12, size);
  PutOctal(&h[136], 12, static_cast<uint64_t>(std::max<int64_t>(0, mtime)));
  h[156] = type;
  std::memcpy(&h[257],
              "ustar\0"
              "00",
              8);
  std::memset(&h[148], ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  std::snprintf(&h[148], 8, "%06o", sum);
  h[155] = ' ';
  return h;
}

bool IsLegacy(const ImageInfo& image, const json& config) {
  return image.parent.has_value() || !config.is_object() || !config.contains("rootfs");
}

}  // namespace

void ImageArchive::AddBytes(std::string bytes) {
  if (bytes.empty()) return;
  uint64_t len = bytes.size();
  segments_.push_back({size_, len, std::move(bytes), nullptr});
  size_ += len;
}

void ImageArchive::Pad() {
  if (size_ % 512 != 0) AddBytes(std::string(512 - size_ % 512, '\0'));
}

void ImageArchive::AddDir(const std::string& name, int64_t mtime) {
  AddBytes(Header(name + "/", '5', 0, 0755, mtime));
}

void ImageArchive::AddFile(const std::string& name, std::string content, int64_t mtime) {
  AddBytes(Header(name, '0', content.size(), 0644, mtime));
  AddBytes(std::move(content));
  Pad();
}

Status ImageArchive::AddLayerFile(const std::string& name, const Store& store,
                                  const LayerInfo& layer, bool open_blob, int64_t mtime) {
  std::shared_ptr<const LayerBlob> blob;
  uint64_t len = layer.tar_size;
  if (open_blob) {
    ASSIGN_OR_RETURN(blob, store.OpenBlob(layer.diff_id));
    len = blob->index->tar_size();
  }
  AddBytes(Header(name, '0', len, 0644, mtime));
  if (len > 0) {
    segments_.push_back({size_, len, {}, std::move(blob)});
    size_ += len;
  }
  Pad();
  return {};
}

struct ImageArchive::Plan {
  bool open_blobs = false;
  int64_t mtime = 0;              // of the image being added
  std::set<std::string> written;  // layer directories and configs already in the archive
  json manifest = json::array();
  json repositories = json::object();
};

Result<std::shared_ptr<const ImageArchive>> ImageArchive::Build(const Store& store,
                                                                const std::string& image_id) {
  return Build(store, std::vector<std::string>{image_id});
}

Result<std::shared_ptr<const ImageArchive>> ImageArchive::Build(
    const Store& store, const std::vector<std::string>& image_ids) {
  ASSIGN_OR_RETURN(auto archive, Layout(store, image_ids, /*open_blobs=*/true));
  return std::shared_ptr<const ImageArchive>(std::move(archive));
}

Result<uint64_t> ImageArchive::Measure(const Store& store, const std::string& image_id) {
  ASSIGN_OR_RETURN(auto archive, Layout(store, {image_id}, /*open_blobs=*/false));
  return archive->size();
}

Result<std::shared_ptr<ImageArchive>> ImageArchive::Layout(
    const Store& store, const std::vector<std::string>& image_ids, bool open_blobs) {
  std::shared_ptr<ImageArchive> archive(new ImageArchive());
  Plan plan;
  plan.open_blobs = open_blobs;
  std::set<std::string> seen;
  std::optional<std::string> legacy, modern;
  for (const std::string& image_id : image_ids) {
    if (!seen.insert(image_id).second) continue;
    ASSIGN_OR_RETURN(ImageInfo image, store.GetImage(image_id));
    ASSIGN_OR_RETURN(std::string config, store.ReadConfig(image_id));
    json parsed = json::parse(config, nullptr, false);
    plan.mtime = ParseRfc3339(image.created).value_or(0);
    if (IsLegacy(image, parsed)) {
      legacy = image_id;
      RETURN_IF_ERROR(archive->AddLegacyImage(store, image, plan));
    } else {
      modern = image_id;
      RETURN_IF_ERROR(archive->AddModernImage(store, image, std::move(config), plan));
    }
    if (legacy && modern) {
      return Fail(Code::kUnsupported,
                  "legacy image " + legacy->substr(0, 12) + " cannot be saved with modern image " +
                      modern->substr(0, 12) +
                      " in one archive (docker load would skip it): save them apart");
    }
  }
  if (!plan.manifest.empty()) archive->AddFile("manifest.json", plan.manifest.dump(), plan.mtime);
  if (!plan.repositories.empty())
    archive->AddFile("repositories", plan.repositories.dump(), plan.mtime);
  archive->AddBytes(std::string(1024, '\0'));
  return archive;
}

// The v1 chain, base first: each image is its own directory with its own layer and JSON,
// so that loading the archive gives the same IDs.
Status ImageArchive::AddLegacyImage(const Store& store, const ImageInfo& image, Plan& plan) {
  std::vector<ImageInfo> chain;
  for (std::optional<std::string> id = image.id; id;) {
    ASSIGN_OR_RETURN(ImageInfo link, store.GetImage(*id));
    if (chain.size() > 4096) return Fail(Code::kCorrupt, "image parent chain is too long");
    chain.push_back(link);
    id = link.parent;
  }
  std::reverse(chain.begin(), chain.end());
  for (const ImageInfo& link : chain) {
    if (!plan.written.insert(link.id).second) continue;
    AddDir(link.id, plan.mtime);
    AddFile(link.id + "/VERSION", "1.0", plan.mtime);
    ASSIGN_OR_RETURN(std::string v1_json, store.ReadConfig(link.id));
    AddFile(link.id + "/json", std::move(v1_json), plan.mtime);
    if (!link.top_layer)
      return Fail(Code::kUnsupported, "legacy image " + link.id + " has no layer");
    ASSIGN_OR_RETURN(LayerInfo layer, store.GetLayer(*link.top_layer));
    RETURN_IF_ERROR(
        AddLayerFile(link.id + "/layer.tar", store, layer, plan.open_blobs, plan.mtime));
  }
  for (const Reference& ref : store.TagsOf(image.id))
    plan.repositories[ref.FamiliarName()][ref.tag] = image.id;
  return {};
}

// Docker's layout: a v1-compatible directory per layer, the config, a manifest.json entry.
Status ImageArchive::AddModernImage(const Store& store, const ImageInfo& image, std::string config,
                                    Plan& plan) {
  std::vector<LayerInfo> chain;
  if (image.top_layer) {
    ASSIGN_OR_RETURN(chain, store.LayerChain(*image.top_layer));
  }
  json layer_paths = json::array();
  std::string parent_v1;
  for (const LayerInfo& layer : chain) {
    // A v1-compatible ID per layer, derived as Docker does from the chain and parent.
    json v1 = {{"created", "1970-01-01T00:00:00Z"}, {"layer_id", layer.chain_id.str()}};
    if (!parent_v1.empty()) v1["parent"] = parent_v1;
    std::string v1_id = Sha256::Of(v1.dump()).hex();
    layer_paths.push_back(v1_id + "/layer.tar");
    parent_v1 = v1_id;
    if (!plan.written.insert(v1_id).second) continue;  // shared with an image before
    v1.erase("layer_id");
    v1["id"] = v1_id;
    AddDir(v1_id, plan.mtime);
    AddFile(v1_id + "/VERSION", "1.0", plan.mtime);
    AddFile(v1_id + "/json", v1.dump(), plan.mtime);
    RETURN_IF_ERROR(AddLayerFile(v1_id + "/layer.tar", store, layer, plan.open_blobs, plan.mtime));
  }
  std::vector<std::string> repo_tags;
  for (const Reference& ref : store.TagsOf(image.id)) {
    repo_tags.push_back(ref.FamiliarString());
    if (!parent_v1.empty()) plan.repositories[ref.FamiliarName()][ref.tag] = parent_v1;
  }
  if (plan.written.insert(image.id + ".json").second)
    AddFile(image.id + ".json", std::move(config), plan.mtime);
  plan.manifest.push_back({{"Config", image.id + ".json"},
                           {"RepoTags", repo_tags.empty() ? json(nullptr) : json(repo_tags)},
                           {"Layers", layer_paths}});
  return {};
}

Result<size_t> ImageArchive::Read(uint64_t off, size_t len, char* buf) const {
  if (off >= size_) return 0;
  len = static_cast<size_t>(std::min<uint64_t>(len, size_ - off));
  auto it = std::upper_bound(segments_.begin(), segments_.end(), off,
                             [](uint64_t o, const Segment& s) { return o < s.offset; });
  --it;
  size_t done = 0;
  for (; done < len && it != segments_.end(); ++it) {
    uint64_t in = off + done - it->offset;
    size_t n = static_cast<size_t>(std::min<uint64_t>(len - done, it->length - in));
    if (it->blob) {
      RETURN_IF_ERROR(PreadAll(it->blob->fd.get(), buf + done, n, static_cast<off_t>(in)));
    } else {
      std::memcpy(buf + done, it->bytes.data() + in, n);
    }
    done += n;
  }
  return done;
}

}  // namespace imagefs
