#include "graph/loader.h"

#include <map>
#include <set>

#include "graph/base/log.h"
#include "graph/loader_internal.h"
#include "graph/tree_file.h"

namespace imagefs {
namespace loader {

using nlohmann::json;

namespace {

// Reports the compressed bytes read so far, about once a megabyte.
class ProgressSource final : public ByteSource {
 public:
  ProgressSource(std::unique_ptr<ByteSource> inner, LoadProgress* progress, std::string id)
      : inner_(std::move(inner)), progress_(progress), id_(std::move(id)) {}
  Result<size_t> Read(char* buf, size_t len) override {
    ASSIGN_OR_RETURN(size_t n, inner_->Read(buf, len));
    done_ += n;
    if (progress_ && (done_ - reported_ >= (1u << 20) || n == 0)) {
      progress_->LayerProgress(id_, done_);
      reported_ = done_;
    }
    return n;
  }

 private:
  std::unique_ptr<ByteSource> inner_;
  LoadProgress* progress_;
  std::string id_;
  uint64_t done_ = 0, reported_ = 0;
};

std::string ShortName(const std::string& member) {
  std::string base = member.substr(member.rfind('/') + 1);
  if (base == "layer.tar" && member.find('/') != std::string::npos)
    base = member.substr(0, member.find('/'));
  return base.substr(0, 12);
}

}  // namespace

Result<json> ParseJson(const std::string& text, const std::string& what) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return Fail(Code::kInvalid, what + ": not valid JSON");
  return j;
}

Result<std::vector<Reference>> ParseTags(const std::vector<std::string>& names,
                                         const std::string& what) {
  std::vector<Reference> out;
  for (const std::string& name : names) {
    auto ref = ParseReference(name);
    if (!ref) return Fail(ref.error().WithContext(what + ": tag \"" + name + "\""));
    if (ref->digest) return Fail(Code::kInvalid, what + ": tag \"" + name + "\" has a digest");
    out.push_back(WithDefaultTag(*ref));
  }
  return out;
}

Result<Digest> ArchiveTransaction::AddLayer(const std::optional<Digest>& parent,
                                            const LayerInput& layer) {
  std::string id = ShortName(layer.member);
  if (layer.diff_id) {
    Digest chain = ChainIdOf(parent ? &*parent : nullptr, *layer.diff_id);
    ASSIGN_OR_RETURN(bool present, tx_.HoldIfPresent(chain));
    if (present) {
      if (progress_) progress_->LayerDone(id, true);
      return chain;
    }
  }
  auto size = archive_.Size(layer.member);
  if (!size) return Fail(size.error().WithContext("layer " + layer.member));
  if (progress_) progress_->LayerStarted(id, *size);
  auto member = archive_.OpenMember(layer.member);
  if (!member) return Fail(member.error().WithContext("layer " + layer.member));
  std::unique_ptr<ByteSource> src =
      std::make_unique<ProgressSource>(std::move(*member), progress_, id);
  std::string what = archive_.name() + ": " + layer.member;
  if (layer.blob_digest) {
    src = std::make_unique<VerifyingSource>(std::move(src), *layer.blob_digest, layer.blob_size,
                                            what);
  }
  src = Decompress(std::move(src), what);
  bool created = false;
  auto registered = tx_.AddLayer(parent, *src, layer.diff_id, &created);
  if (!registered) return Fail(registered.error().WithContext("layer " + layer.member));
  if (created) ++report_.layers_stored;
  if (progress_) progress_->LayerDone(id, !created);
  return registered->chain_id;
}

Result<ImageInfo> ArchiveTransaction::Commit(const ImageSpec& spec,
                                             const std::vector<Reference>& tags) {
  ASSIGN_OR_RETURN(ImageInfo image, tx_.Commit(spec, tags));
  report_.images.push_back({image.id, tags});
  return image;
}

namespace {

// Applies tags to an image that is in the store already, and reports it as loaded.
Status TagExisting(Store& store, const std::string& id, const std::vector<Reference>& tags,
                   LoadReport& report) {
  for (const Reference& tag : tags) RETURN_IF_ERROR(store.Tag(tag, id));
  report.images.push_back({id, tags});
  return {};
}

Result<std::vector<std::string>> StringArray(const json& entry, const char* key, bool nullable,
                                             const std::string& what) {
  std::vector<std::string> out;
  auto it = entry.find(key);
  if (it == entry.end() || it->is_null()) {
    if (nullable) return out;
    return Fail(Code::kInvalid, what + ": missing \"" + key + "\"");
  }
  if (!it->is_array())
    return Fail(Code::kInvalid, what + ": \"" + key + "\" must be an array of strings");
  for (const auto& v : *it) {
    if (!v.is_string())
      return Fail(Code::kInvalid, what + ": \"" + key + "\" must be an array of strings");
    out.push_back(v.get<std::string>());
  }
  return out;
}

// manifest.json entry: {"Config": "...", "RepoTags": [...], "Layers": [...]}.
Status LoadManifestEntry(Store& store, const ArchiveView& archive, const json& entry,
                         const std::string& what, LoadProgress* progress, LoadReport& report) {
  if (!entry.is_object() || !entry.contains("Config") || !entry["Config"].is_string()) {
    return Fail(Code::kInvalid, what + ": want an object with a \"Config\" string");
  }
  std::string config_member = entry["Config"].get<std::string>();
  ASSIGN_OR_RETURN(auto layers, StringArray(entry, "Layers", false, what));
  ASSIGN_OR_RETURN(auto repo_tags, StringArray(entry, "RepoTags", true, what));
  ASSIGN_OR_RETURN(auto tags, ParseTags(repo_tags, what));
  ASSIGN_OR_RETURN(std::string config, archive.ReadSmall(config_member));
  ASSIGN_OR_RETURN(json parsed, ParseJson(config, config_member));
  ASSIGN_OR_RETURN(auto diff_ids, DiffIdsOf(parsed, config_member));
  if (diff_ids.size() != layers.size()) {
    return Fail(Code::kInvalid, what + ": " + std::to_string(layers.size()) +
                                    " layers but config " + config_member + " lists " +
                                    std::to_string(diff_ids.size()) + " diff_ids");
  }
  for (const auto& layer : layers) {
    if (!archive.Exists(layer)) {
      auto why = archive.Size(layer);  // says why: missing, not a file, escaping symlink
      return Fail(Code::kInvalid,
                  what + ": layer " + layer + ": " + (why ? "unreadable" : why.error().msg));
    }
  }
  std::string id = Sha256::Of(config).hex();
  ASSIGN_OR_RETURN(UniqueFd lock, store.LockKey("image:" + id));
  RETURN_IF_ERROR(store.Refresh());
  if (store.GetImage(id)) return TagExisting(store, id, tags, report);
  ArchiveTransaction tx(store, archive, progress, report);
  std::optional<Digest> top;
  for (size_t i = 0; i < layers.size(); ++i) {
    ASSIGN_OR_RETURN(top, tx.AddLayer(top, {layers[i], diff_ids[i], {}, {}}));
  }
  return tx.Commit({id, config, top, {}}, tags).map([](const ImageInfo&) {});
}

Status LoadDockerManifest(Store& store, const ArchiveView& archive, LoadProgress* progress,
                          LoadReport& report) {
  ASSIGN_OR_RETURN(std::string text, archive.ReadSmall("manifest.json"));
  ASSIGN_OR_RETURN(json manifest, ParseJson(text, archive.name() + ": manifest.json"));
  if (!manifest.is_array()) {
    return Fail(Code::kInvalid, archive.name() + ": manifest.json: want a JSON array of images");
  }
  for (size_t i = 0; i < manifest.size(); ++i) {
    std::string what = archive.name() + ": manifest.json entry " + std::to_string(i);
    if (auto st = LoadManifestEntry(store, archive, manifest[i], what, progress, report); !st) {
      report.failures.push_back(st.error());
    }
  }
  return {};
}

// ---- Legacy (Docker <= 1.9): <id>/{json,layer.tar,VERSION} and repositories ------------

struct LegacyImage {
  std::string json_bytes;
  std::optional<std::string> parent;
};

class LegacyLoader {
 public:
  LegacyLoader(Store& store, const ArchiveView& archive, LoadProgress* progress, LoadReport& report)
      : store_(store), archive_(archive), progress_(progress), report_(report) {}

  Status Run() {
    for (const std::string& member : archive_.List()) {
      size_t slash = member.find('/');
      if (slash == std::string::npos || member.substr(slash + 1) != "json") continue;
      std::string id = member.substr(0, slash);
      if (!IsHex64(id)) {
        return Fail(Code::kInvalid, archive_.name() + ": legacy image directory \"" + id +
                                        "\" is not a valid image ID (64 lowercase hex)");
      }
      ASSIGN_OR_RETURN(LegacyImage image, ReadImage(id));
      images_.emplace(id, std::move(image));
    }
    if (images_.empty()) {
      return Fail(Code::kInvalid, archive_.name() +
                                      ": unknown archive format (no manifest.json, no OCI "
                                      "index.json, no legacy image directories)");
    }
    RETURN_IF_ERROR(ReadRepositories());
    for (const auto& [id, image] : images_) (void)Load(id);
    for (const auto& [id, error] : failed_) report_.failures.push_back(error);
    return {};
  }

 private:
  Result<LegacyImage> ReadImage(const std::string& id) {
    std::string what = id + "/json";
    LegacyImage image;
    ASSIGN_OR_RETURN(image.json_bytes, archive_.ReadSmall(what));
    ASSIGN_OR_RETURN(json j, ParseJson(image.json_bytes, archive_.name() + ": " + what));
    if (!j.is_object() || !j.contains("id") || !j["id"].is_string()) {
      return Fail(Code::kInvalid,
                  archive_.name() + ": " + what + ": want an object with an \"id\" string");
    }
    if (j["id"].get<std::string>() != id) {
      return Fail(Code::kInvalid, archive_.name() + ": " + what + ": id \"" +
                                      j["id"].get<std::string>() +
                                      "\" does not match its directory");
    }
    if (j.contains("parent") && !j["parent"].is_null()) {
      if (!j["parent"].is_string() || !IsHex64(j["parent"].get<std::string>())) {
        return Fail(Code::kInvalid,
                    archive_.name() + ": " + what + ": parent is not a valid image ID");
      }
      if (!j["parent"].get<std::string>().empty()) image.parent = j["parent"].get<std::string>();
    }
    return image;
  }

  Status ReadRepositories() {
    if (!archive_.Exists("repositories")) return {};
    ASSIGN_OR_RETURN(std::string text, archive_.ReadSmall("repositories"));
    std::string what = archive_.name() + ": repositories";
    ASSIGN_OR_RETURN(json j, ParseJson(text, what));
    if (!j.is_object()) return Fail(Code::kInvalid, what + ": want {\"name\": {\"tag\": \"id\"}}");
    for (const auto& [name, tags] : j.items()) {
      if (!tags.is_object())
        return Fail(Code::kInvalid, what + ": \"" + name + "\" must map tags to IDs");
      for (const auto& [tag, id] : tags.items()) {
        if (!id.is_string() || !IsHex64(id.get<std::string>())) {
          return Fail(Code::kInvalid,
                      what + ": " + name + ":" + tag + " does not name a valid image ID");
        }
        ASSIGN_OR_RETURN(auto refs, ParseTags({name + ":" + tag}, what));
        tags_[id.get<std::string>()].push_back(refs.front());
      }
    }
    return {};
  }

  // Loads an image after its parents, without recursion: first walks down the parent
  // links (bounded by kMaxChain, refusing cycles) to an image already stored or the base,
  // then loads the chain base first. A failure is remembered for every image it dooms,
  // each naming the root cause once.
  Result<std::optional<Digest>> Load(const std::string& start) {
    std::vector<std::string> chain;  // start first, base last
    std::set<std::string> seen;
    std::optional<Digest> below;  // top layer under chain.back()
    for (std::string cur = start;;) {
      if (auto it = failed_.find(cur); it != failed_.end())
        return FailChain(chain, cur, root_cause_[cur]);
      if (auto existing = store_.GetImage(cur)) {
        below = existing->top_layer;
        break;
      }
      if (!seen.insert(cur).second) {
        std::string cycle;
        for (const auto& c : chain) cycle += c.substr(0, 12) + " -> ";
        return FailChain(chain, "",
                         archive_.name() + ": parent cycle: " + cycle + cur.substr(0, 12));
      }
      if (chain.size() >= kMaxChain) {
        return FailChain(chain, "",
                         archive_.name() + ": parent chain longer than " +
                             std::to_string(kMaxChain) + " images");
      }
      chain.push_back(cur);
      const LegacyImage& image = images_.at(cur);
      if (!image.parent) break;
      if (!images_.count(*image.parent) && !store_.GetImage(*image.parent)) {
        return FailChain(chain, "",
                         archive_.name() + ": image " + cur.substr(0, 12) + ": parent " +
                             *image.parent + " is neither in the archive nor in the store");
      }
      cur = *image.parent;
    }
    for (size_t i = chain.size(); i-- > 0;) {
      auto top = LoadOne(chain[i], below);
      if (!top) {
        chain.resize(i + 1);
        return FailChain(chain, "", top.error().msg);
      }
      below = *top;
    }
    return below;
  }

  // Records `root` as the failure of every image in chain (child first): the last one
  // fails with root itself (when failed_parent is empty), the others because of it.
  tl::unexpected<Error> FailChain(const std::vector<std::string>& chain,
                                  const std::string& failed_parent, const std::string& root) {
    for (size_t i = chain.size(); i-- > 0;) {
      const std::string& id = chain[i];
      std::string parent = i + 1 < chain.size() ? chain[i + 1] : failed_parent;
      std::string msg = parent.empty()
                            ? root
                            : archive_.name() + ": image " + id.substr(0, 12) + ": its parent " +
                                  parent.substr(0, 12) + " failed to load: " + root;
      failed_.emplace(id, Error::Make(Code::kInvalid, msg));
      root_cause_.emplace(id, root);
    }
    return Fail(Code::kInvalid, root);
  }

  // Registers one image whose parent (if any) is stored, with `below` its top layer.
  Result<std::optional<Digest>> LoadOne(const std::string& id, const std::optional<Digest>& below) {
    const LegacyImage& image = images_.at(id);
    ASSIGN_OR_RETURN(UniqueFd lock, store_.LockKey("image:" + id));
    RETURN_IF_ERROR(store_.Refresh());
    if (auto existing = store_.GetImage(id)) return existing->top_layer;
    std::string layer_member = id + "/layer.tar";
    if (!archive_.Exists(layer_member)) {
      auto why = archive_.Size(layer_member);
      return Fail(Code::kInvalid, archive_.name() + ": image " + id.substr(0, 12) + ": " +
                                      (why ? "layer.tar unreadable" : why.error().msg));
    }
    ArchiveTransaction tx(store_, archive_, progress_, report_);
    ASSIGN_OR_RETURN(Digest top, tx.AddLayer(below, {layer_member, {}, {}, {}}));
    auto committed = tx.Commit({id, image.json_bytes, top, image.parent}, tags_[id]);
    if (!committed) return Fail(committed.error().WithContext("image " + id.substr(0, 12)));
    return std::optional<Digest>(top);
  }

  Store& store_;
  const ArchiveView& archive_;
  LoadProgress* progress_;
  LoadReport& report_;
  std::map<std::string, LegacyImage> images_;
  std::map<std::string, std::vector<Reference>> tags_;
  std::map<std::string, Error> failed_;
  // Docker's layer stores cap chains near 125; real v1 chains stay far below this.
  static constexpr size_t kMaxChain = 1024;
  std::map<std::string, std::string> root_cause_;  // image -> the failure that doomed it
};

}  // namespace
}  // namespace loader

void PrepareTree(const Store& store, const std::string& image_id) {
  auto image = store.GetImage(image_id);
  if (!image || !image->top_layer) return;
  if (auto tree = TreeFile::Load(store, TreeKind::kMerged, *image->top_layer); !tree) {
    Logger("graph")->warn("image {}: its tree is not saved, a mount will build it: {}", image_id,
                          tree.error().msg);
  }
}

Result<LoadReport> LoadArchive(Store& store, const std::filesystem::path& path,
                               const LoadOptions& options, LoadProgress* progress) {
  ASSIGN_OR_RETURN(auto archive, ArchiveView::Open(path, store.root() / "tmp"));
  LoadReport report;
  Status st;
  // Docker >= 25 writes both manifest.json and an OCI layout; like Docker, prefer the
  // manifest, which carries the tags.
  if (archive->Exists("manifest.json")) {
    st = loader::LoadDockerManifest(store, *archive, progress, report);
  } else if (archive->Exists("index.json") && archive->Exists("oci-layout")) {
    st = loader::LoadOciLayout(store, *archive, options, progress, report);
  } else {
    st = loader::LegacyLoader(store, *archive, progress, report).Run();
  }
  if (!st) return Fail(st.error());
  for (const auto& image : report.images) {
    Logger("graph")->info("load image id={} from={}", image.id, path.string());
    PrepareTree(store, image.id);
  }
  return report;
}

}  // namespace imagefs
