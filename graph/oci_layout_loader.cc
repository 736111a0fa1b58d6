// Loads an OCI image layout (tarball or directory): index.json, nested indexes, image
// manifests, and their blobs, each verified against its descriptor's digest and size.
#include <set>

#include "graph/base/log.h"
#include "graph/descriptor.h"
#include "graph/loader_internal.h"
#include "graph/manifest.h"

namespace imagefs::loader {

using nlohmann::json;

namespace {

constexpr int kMaxIndexDepth = 8;
constexpr uint64_t kMaxDocumentBytes = 8u << 20;

std::string BlobMember(const Digest& d) { return "blobs/sha256/" + d.hex(); }

struct Candidate {
  Descriptor descriptor;
  std::vector<std::string> names;  // reference names from the index annotations
};

class OciLoader {
 public:
  OciLoader(Store& store, const ArchiveView& archive, const LoadOptions& options,
            LoadProgress* progress, LoadReport& report)
      : store_(store), archive_(archive), options_(options), progress_(progress), report_(report) {}

  Status Run() {
    ASSIGN_OR_RETURN(std::string layout_text, archive_.ReadSmall("oci-layout", 4096));
    ASSIGN_OR_RETURN(json layout, ParseJson(layout_text, archive_.name() + ": oci-layout"));
    if (!layout.is_object() || layout.value("imageLayoutVersion", json()) != "1.0.0") {
      return Fail(Code::kUnsupported,
                  archive_.name() + ": oci-layout: unsupported imageLayoutVersion");
    }
    ASSIGN_OR_RETURN(std::string index_text, archive_.ReadSmall("index.json", kMaxDocumentBytes));
    auto index = ParseManifest(index_text, kOciIndex);
    if (!index) return Fail(index.error().WithContext(archive_.name() + ": index.json"));
    if (!index->index)
      return Fail(Code::kInvalid, archive_.name() + ": index.json is not an index");
    RETURN_IF_ERROR(Walk(index->index->manifests, "index.json", 0, {}));
    return LoadSelected();
  }

 private:
  // Reads a small blob and checks it against its descriptor.
  Result<std::string> ReadBlob(const Descriptor& d) {
    std::string what = archive_.name() + ": blob " + d.digest.str();
    if (d.size > kMaxDocumentBytes)
      return Fail(Code::kInvalid, what + ": too large for a JSON document");
    auto text = archive_.ReadSmall(BlobMember(d.digest), kMaxDocumentBytes);
    if (!text) return Fail(text.error().WithContext(what));
    if (text->size() != d.size) {
      return Fail(Code::kCorrupt, what + ": has " + std::to_string(text->size()) +
                                      " bytes, its descriptor says " + std::to_string(d.size));
    }
    if (Sha256::Of(*text) != d.digest) return Fail(Code::kCorrupt, what + ": digest mismatch");
    return text;
  }

  std::vector<std::string> NamesOf(const Descriptor& d) {
    std::vector<std::string> names;
    if (d.annotations.contains("io.containerd.image.name") &&
        d.annotations["io.containerd.image.name"].is_string()) {
      names.push_back(d.annotations["io.containerd.image.name"].get<std::string>());
    } else if (d.annotations.contains("org.opencontainers.image.ref.name") &&
               d.annotations["org.opencontainers.image.ref.name"].is_string()) {
      names.push_back(d.annotations["org.opencontainers.image.ref.name"].get<std::string>());
    }
    return names;
  }

  // The documents ParseManifest decodes, with the archive's name in its errors.
  Result<Manifest> ReadManifest(const Descriptor& d, const std::string& what) {
    ASSIGN_OR_RETURN(std::string text, ReadBlob(d));
    auto m = ParseManifest(text, d.media_type);
    if (!m) return Fail(m.error().WithContext(what));
    return m;
  }

  Status Walk(const std::vector<Descriptor>& manifests, const std::string& what, int depth,
              const std::vector<std::string>& names) {
    if (depth > kMaxIndexDepth)
      return Fail(Code::kInvalid, archive_.name() + ": indexes nested too deep");
    for (size_t i = 0; i < manifests.size(); ++i) {
      const Descriptor& d = manifests[i];
      std::string entry = archive_.name() + ": " + what + " manifests[" + std::to_string(i) + "]";
      if (IsAttestation(d)) continue;
      std::vector<std::string> own = NamesOf(d);
      if (own.empty()) own = names;
      std::string type = d.media_type;
      std::optional<Manifest> doc;
      if (type.empty() ||
          IsIndexMediaType(type)) {  // old layouts omit the type: the document tells
        ASSIGN_OR_RETURN(doc, ReadManifest(d, entry));
        type = doc->media_type;
      }
      if (doc && doc->index) {
        RETURN_IF_ERROR(
            Walk(doc->index->manifests, "index " + d.digest.str().substr(0, 19), depth + 1, own));
      } else if (IsImageManifestMediaType(type)) {
        candidates_.push_back({d, own});
      } else {
        Logger("graph")->debug("load {}: skipping descriptor of type {}", entry, type);
      }
    }
    return {};
  }

  Status LoadSelected() {
    Platform wanted = options_.platform.value_or(HostPlatform());
    std::vector<const Candidate*> selected;
    ManifestIndex with_platform;  // the choice among these is the puller's (SelectPlatform)
    std::set<std::string> available;
    for (const Candidate& c : candidates_) {
      if (!c.descriptor.platform || options_.all_platforms) {
        selected.push_back(&c);
      } else {
        with_platform.manifests.push_back(c.descriptor);
      }
      if (c.descriptor.platform) available.insert(Normalize(*c.descriptor.platform).String());
    }
    if (!with_platform.manifests.empty()) {
      if (auto chosen = SelectPlatform(with_platform, wanted)) {
        for (const Candidate& c : candidates_) {
          if (c.descriptor.digest == chosen->digest && c.descriptor.platform == chosen->platform) {
            selected.push_back(&c);
            break;
          }
        }
      }
    }
    if (selected.empty()) {
      std::string list;
      for (const auto& p : available) list += (list.empty() ? "" : ", ") + p;
      return Fail(Code::kNotFound, archive_.name() + ": no image for platform " + wanted.String() +
                                       (list.empty() ? "" : " (it has " + list + ")"));
    }
    for (const Candidate* c : selected) {
      if (auto st = LoadManifest(*c); !st) report_.failures.push_back(st.error());
    }
    return {};
  }

  Status LoadManifest(const Candidate& c) {
    std::string what = archive_.name() + ": manifest " + c.descriptor.digest.str();
    ASSIGN_OR_RETURN(Manifest manifest, ReadManifest(c.descriptor, what));
    if (!manifest.image) return Fail(Code::kInvalid, what + ": not an image manifest");
    const Descriptor& config_desc = manifest.image->config;
    ASSIGN_OR_RETURN(std::string config, ReadBlob(config_desc));
    ASSIGN_OR_RETURN(json parsed, ParseJson(config, what + ": config"));
    ASSIGN_OR_RETURN(auto diff_ids, DiffIdsOf(parsed, what + ": config"));
    std::vector<Descriptor> layers;
    for (size_t i = 0; i < manifest.image->layers.size(); ++i) {
      std::string lw = what + ": layers[" + std::to_string(i) + "]";
      const Descriptor& d = manifest.image->layers[i];
      if (d.media_type.find("encrypted") != std::string::npos) {
        return Fail(Code::kUnsupported,
                    lw + ": encrypted layers (" + d.media_type + ") are not supported");
      }
      if (!archive_.Exists(BlobMember(d.digest))) {
        return Fail(Code::kNotFound, lw + ": blob " + d.digest.str() + " is missing");
      }
      layers.push_back(d);
    }
    if (layers.size() != diff_ids.size()) {
      return Fail(Code::kInvalid, what + ": " + std::to_string(layers.size()) +
                                      " layers but the config lists " +
                                      std::to_string(diff_ids.size()) + " diff_ids");
    }
    std::vector<Reference> tags;
    for (const std::string& name : c.names) {
      auto parsed_tags = ParseTags({name}, what);
      if (parsed_tags) {
        tags.push_back(parsed_tags->front());
      } else {
        Logger("graph")->warn("load {}: not tagging it \"{}\": {}", what, name,
                              parsed_tags.error().msg);
      }
    }
    std::string id = config_desc.digest.hex();
    ASSIGN_OR_RETURN(UniqueFd lock, store_.LockKey("image:" + id));
    RETURN_IF_ERROR(store_.Refresh());
    if (store_.GetImage(id)) {
      for (const Reference& tag : tags) RETURN_IF_ERROR(store_.Tag(tag, id));
      report_.images.push_back({id, tags});
      return {};
    }
    ArchiveTransaction tx(store_, archive_, progress_, report_);
    std::optional<Digest> top;
    for (size_t i = 0; i < layers.size(); ++i) {
      ASSIGN_OR_RETURN(top, tx.AddLayer(top, {BlobMember(layers[i].digest), diff_ids[i],
                                              layers[i].digest, layers[i].size}));
    }
    ASSIGN_OR_RETURN(ImageInfo image, tx.Commit({id, config, top, {}}, tags));
    return {};
  }

  Store& store_;
  const ArchiveView& archive_;
  const LoadOptions& options_;
  LoadProgress* progress_;
  LoadReport& report_;
  std::vector<Candidate> candidates_;
};

}  // namespace

Status LoadOciLayout(Store& store, const ArchiveView& archive, const LoadOptions& options,
                     LoadProgress* progress, LoadReport& report) {
  return OciLoader(store, archive, options, progress, report).Run();
}

}  // namespace imagefs::loader
