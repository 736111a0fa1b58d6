#include "graph/image_archive.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

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

Result<std::shared_ptr<const ImageArchive>> ImageArchive::Build(const Store& store,
                                                                const std::string& image_id) {
  ASSIGN_OR_RETURN(auto archive, Layout(store, image_id, /*open_blobs=*/true));
  return std::shared_ptr<const ImageArchive>(std::move(archive));
}

Result<uint64_t> ImageArchive::Measure(const Store& store, const std::string& image_id) {
  ASSIGN_OR_RETURN(auto archive, Layout(store, image_id, /*open_blobs=*/false));
  return archive->size();
}

Result<std::shared_ptr<ImageArchive>> ImageArchive::Layout(const Store& store,
                                                           const std::string& image_id,
                                                           bool open_blobs) {
  ASSIGN_OR_RETURN(ImageInfo image, store.GetImage(image_id));
  ASSIGN_OR_RETURN(std::string config, store.ReadConfig(image_id));
  json parsed = json::parse(config, nullptr, false);
  int64_t mtime = ParseRfc3339(image.created).value_or(0);
  std::shared_ptr<ImageArchive> archive(new ImageArchive());
  json repositories = json::object();
  std::vector<std::string> repo_tags;
  for (const Reference& ref : store.TagsOf(image_id)) {
    repo_tags.push_back(ref.FamiliarString());
  }

  if (IsLegacy(image, parsed)) {
    // The v1 chain, base first: each image is its own directory with its own layer.
    std::vector<ImageInfo> chain;
    for (std::optional<std::string> id = image_id; id;) {
      ASSIGN_OR_RETURN(ImageInfo link, store.GetImage(*id));
      if (chain.size() > 4096) return Fail(Code::kCorrupt, "image parent chain is too long");
      chain.push_back(link);
      id = link.parent;
    }
    std::reverse(chain.begin(), chain.end());
    for (const ImageInfo& link : chain) {
      archive->AddDir(link.id, mtime);
      archive->AddFile(link.id + "/VERSION", "1.0", mtime);
      ASSIGN_OR_RETURN(std::string v1_json, store.ReadConfig(link.id));
      archive->AddFile(link.id + "/json", std::move(v1_json), mtime);
      if (!link.top_layer)
        return Fail(Code::kUnsupported, "legacy image " + link.id + " has no layer");
      ASSIGN_OR_RETURN(LayerInfo layer, store.GetLayer(*link.top_layer));
      RETURN_IF_ERROR(
          archive->AddLayerFile(link.id + "/layer.tar", store, layer, open_blobs, mtime));
    }
    for (const Reference& ref : store.TagsOf(image_id))
      repositories[ref.FamiliarName()][ref.tag] = image_id;
  } else {
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
      v1.erase("layer_id");
      v1["id"] = v1_id;
      archive->AddDir(v1_id, mtime);
      archive->AddFile(v1_id + "/VERSION", "1.0", mtime);
      archive->AddFile(v1_id + "/json", v1.dump(), mtime);
      RETURN_IF_ERROR(archive->AddLayerFile(v1_id + "/layer.tar", store, layer, open_blobs, mtime));
      layer_paths.push_back(v1_id + "/layer.tar");
      parent_v1 = v1_id;
    }
    archive->AddFile(image_id + ".json", config, mtime);
    json manifest = json::array({{{"Config", image_id + ".json"},
                                  {"RepoTags", repo_tags.empty() ? json(nullptr) : json(repo_tags)},
                                  {"Layers", layer_paths}}});
    archive->AddFile("manifest.json", manifest.dump(), mtime);
    if (!parent_v1.empty()) {
      for (const Reference& ref : store.TagsOf(image_id))
        repositories[ref.FamiliarName()][ref.tag] = parent_v1;
    }
  }
  if (!repositories.empty()) archive->AddFile("repositories", repositories.dump(), mtime);
  archive->AddBytes(std::string(1024, '\0'));
  return archive;
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
