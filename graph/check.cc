#include "graph/check.h"

#include <fcntl.h>
#include <unistd.h>

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "graph/base/fs_util.h"
#include "graph/descriptor.h"
#include "graph/lazy_cache.h"
#include "graph/records.h"
#include "graph/tar_index.h"

namespace imagefs {
namespace {

namespace fs = std::filesystem;

std::string Short(const std::string& hex) { return hex.substr(0, 12); }

bool IsHexName(const std::string& name) {
  return name.size() == 64 && name.find_first_not_of("0123456789abcdef") == std::string::npos;
}

std::vector<std::string> Entries(const fs::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) out.push_back(entry.path().filename());
  std::sort(out.begin(), out.end());
  return out;
}

// sha256 and size of a file, read in 1 MiB pieces.
Result<std::pair<Digest, uint64_t>> HashFile(const fs::path& path) {
  ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(path, O_RDONLY | O_CLOEXEC, 0));
  Sha256 hash;
  std::vector<char> buf(1 << 20);
  uint64_t total = 0;
  for (;;) {
    ssize_t n = read(fd.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return FailErrno("read " + path.string());
    if (n == 0) break;
    hash.Update(buf.data(), static_cast<size_t>(n));
    total += static_cast<uint64_t>(n);
  }
  return std::make_pair(hash.Finish(), total);
}

class Checker {
 public:
  explicit Checker(Store& store) : store_(store), root_(store.root()) {}

  CheckReport Run() {
    CheckDiffs();
    CheckLayers();
    CheckImages();
    CheckTags();
    CheckOrphansAndLeftovers();
    return std::move(report_);
  }

  // With the findings of Run: removes what is broken, children first, then what a crash
  // left (when no other process uses the store). Adds what went to report.removed; what
  // could not go shows in the check that follows.
  void Repair(CheckReport& report) {
    if ((!dangling_tags_.empty() || bad_tags_file_) && store_.DropDanglingTags()) {
      for (const std::string& ref : dangling_tags_) report.removed.push_back("tag " + ref);
      if (bad_tags_file_) report.removed.push_back("tags.json (not a tags file)");
    }
    RemoveInRounds(
        broken_images_, report,
        [&](const std::string& id) -> Status {
          if (store_.GetImage(id)) return store_.DeleteImage(id, /*force=*/true);
          return store_.Discard(fs::path("images") / id);
        },
        "image ");
    RemoveInRounds(
        broken_layers_, report,
        [&](const std::string& hex) -> Status {
          if (!fs::exists(root_ / "layers" / hex)) return {};  // went with an image
          auto chain = Digest::FromHex(hex);
          if (chain && store_.GetLayer(*chain)) return store_.DeleteLayer(*chain);
          return store_.Discard(fs::path("layers") / hex);
        },
        "layer ");
    for (const std::string& hex : broken_diffs_) {
      if (!fs::exists(root_ / "diffs" / hex)) continue;
      bool used = false;
      for (const LayerInfo& layer : store_.Layers()) used |= layer.diff_id.hex() == hex;
      if (!used && store_.Discard(fs::path("diffs") / hex)) report.removed.push_back("diff " + hex);
    }
    if (!report_leftovers_.empty() || has_orphans_) {
      if (store_.RecoverIfAlone())
        report.removed.push_back("leftovers of interrupted work, and layers no image uses");
    }
    if (size_t n = LazyCache(store_).DropStale()) {
      report.removed.push_back(std::to_string(n) + " lazy-pull marker(s) of images gone");
    }
  }

 private:
  // Children before parents: each round removes what nothing else needs any more.
  template <typename Remove>
  static void RemoveInRounds(std::set<std::string>& names, CheckReport& report, Remove remove,
                             const std::string& what) {
    for (bool progress = true; progress && !names.empty();) {
      progress = false;
      for (auto it = names.begin(); it != names.end();) {
        if (remove(*it)) {
          report.removed.push_back(what + *it);
          it = names.erase(it);
          progress = true;
        } else {
          ++it;
        }
      }
    }
  }

  void Problem(std::string object, std::string problem, std::string fix) {
    report_.problems.push_back({std::move(object), std::move(problem), std::move(fix)});
  }
  void Leftover(std::string object, std::string problem) {
    report_.problems.push_back(
        {std::move(object), std::move(problem), "--repair removes it", true});
  }

  void CheckDiffs() {
    for (const std::string& name : Entries(root_ / "diffs")) {
      fs::path dir = root_ / "diffs" / name;
      std::string object = "diff sha256:" + name;
      ++report_.diffs;
      if (!IsHexName(name)) {
        Problem(dir.string(), "not a diff of this store", "--repair removes it");
        broken_diffs_.insert(name);
        continue;
      }
      auto hashed = HashFile(dir / "layer.tar");
      if (!hashed) {
        Problem(object, hashed.error().msg, "--repair removes it and the images that use it");
        broken_diffs_.insert(name);
        continue;
      }
      report_.bytes_hashed += hashed->second;
      diff_sizes_[name] = hashed->second;
      if (hashed->first.hex() != name) {
        Problem(object, "layer.tar hashes to " + hashed->first.str() + " (its bytes changed)",
                "--repair removes it and the images that use it; load or pull them again");
        broken_diffs_.insert(name);
        continue;
      }
      auto index = TarIndex::Open(dir / "index");
      if (!index || (*index)->tar_size() != hashed->second) {
        Problem(object,
                "its index " + (index ? std::string("describes another size of tar")
                                      : "does not read: " + index.error().msg),
                "--repair removes it and the images that use it; load or pull them again");
        broken_diffs_.insert(name);
      }
    }
  }

  void CheckLayers() {
    std::map<std::string, LayerInfo> records;
    for (const std::string& name : Entries(root_ / "layers")) {
      ++report_.layers;
      auto text = ReadFile(root_ / "layers" / name / "layer.json");
      auto layer = text ? DecodeLayerRecord(*text) : Result<LayerInfo>(Fail(text.error()));
      if (!layer || layer->chain_id.hex() != name) {
        Problem("layer " + name,
                layer ? "its record names layer " + layer->chain_id.hex() : layer.error().msg,
                "--repair removes it and the images that use it");
        broken_layers_.insert(name);
        continue;
      }
      records.emplace(name, std::move(*layer));
    }
    for (const auto& [hex, layer] : records) {
      std::string object = "layer " + hex;
      const Digest* parent = layer.parent ? &*layer.parent : nullptr;
      std::string diff = layer.diff_id.hex();
      if (ChainIdOf(parent, layer.diff_id).hex() != hex) {
        Problem(object, "its ChainID does not follow from its parent and DiffID",
                "--repair removes it and the images that use it");
      } else if (layer.parent && !records.count(layer.parent->hex())) {
        Problem(object, "its parent " + layer.parent->str() + " is not in the store",
                "--repair removes it and the images that use it");
      } else if (!diff_sizes_.count(diff) && !broken_diffs_.count(diff)) {
        Problem(object, "its diff " + layer.diff_id.str() + " is not in the store",
                "--repair removes it and the images that use it");
      } else if (diff_sizes_.count(diff) && diff_sizes_[diff] != layer.tar_size) {
        Problem(object,
                "its record says " + std::to_string(layer.tar_size) +
                    " bytes of tar, the diff has " + std::to_string(diff_sizes_[diff]),
                "--repair removes it and the images that use it");
      } else {
        continue;
      }
      broken_layers_.insert(hex);
    }
    // A layer over a broken one is broken too (its rootfs cannot be built).
    std::function<bool(const std::string&)> broken = [&](const std::string& hex) -> bool {
      if (broken_layers_.count(hex)) return true;
      auto it = records.find(hex);
      if (it == records.end()) return true;
      if (broken_diffs_.count(it->second.diff_id.hex())) return true;
      return it->second.parent && broken(it->second.parent->hex());
    };
    for (const auto& [hex, layer] : records) {
      if (broken(hex)) broken_layers_.insert(hex);
      if (layer.parent) parents_.insert(layer.parent->hex());
    }
    records_ = std::move(records);
  }

  // The diff IDs of a chain, base first; empty when a layer is missing.
  std::vector<Digest> ChainDiffs(std::optional<Digest> top) const {
    std::vector<Digest> diffs;
    for (size_t depth = 0; top && depth <= records_.size(); ++depth) {
      auto it = records_.find(top->hex());
      if (it == records_.end()) return {};
      diffs.insert(diffs.begin(), it->second.diff_id);
      top = it->second.parent;
    }
    return diffs;
  }

  void CheckImages() {
    std::map<std::string, ImageInfo> images;
    for (const std::string& id : Entries(root_ / "images")) {
      ++report_.images;
      std::string object = "image " + id;
      auto text = ReadFile(root_ / "images" / id / "image.json");
      auto image = text ? DecodeImageRecord(*text) : Result<ImageInfo>(Fail(text.error()));
      if (!image || image->id != id) {
        Problem(object, image ? "its record names image " + image->id : image.error().msg,
                "--repair removes it");
        broken_images_.insert(id);
        continue;
      }
      auto config = ReadFile(root_ / "images" / id / "config.json");
      auto parsed = config ? nlohmann::json::parse(*config, nullptr, false) : nlohmann::json();
      bool legacy = image->parent.has_value() || !parsed.is_object() || !parsed.contains("rootfs");
      if (!config) {
        Problem(object, "its config does not read: " + config.error().msg, "--repair removes it");
      } else if (!legacy && Sha256::Of(*config).hex() != id) {
        Problem(object, "its config hashes to " + Sha256::Of(*config).str() + ", not to its ID",
                "--repair removes it; load or pull it again");
      } else if (image->top_layer && broken_layers_.count(image->top_layer->hex())) {
        Problem(object, "a layer of its chain is broken (see above)",
                "--repair removes it; load or pull it again");
      } else if (image->top_layer && !records_.count(image->top_layer->hex())) {
        Problem(object, "its layer " + image->top_layer->str() + " is not in the store",
                "--repair removes it; load or pull it again");
      } else if (!legacy && !DiffsMatch(parsed, *image, object)) {
        Problem(object, "its config's diff_ids are not the DiffIDs of its layer chain",
                "--repair removes it; load or pull it again");
      } else {
        images.emplace(id, std::move(*image));
        continue;
      }
      broken_images_.insert(id);
    }
    // A legacy image over a broken or missing parent is broken too.
    for (bool changed = true; changed;) {
      changed = false;
      for (const auto& [id, image] : images) {
        if (broken_images_.count(id) || !image.parent) continue;
        if (broken_images_.count(*image.parent) || !images.count(*image.parent)) {
          Problem("image " + id, "its parent image " + Short(*image.parent) + " is broken or gone",
                  "--repair removes it");
          broken_images_.insert(id);
          changed = true;
        }
      }
    }
    for (const auto& [id, image] : images) {
      if (broken_images_.count(id)) continue;
      sound_images_.insert(id);
      for (auto top = image.top_layer; top;) {
        used_layers_.insert(top->hex());
        auto it = records_.find(top->hex());
        top = it == records_.end() ? std::nullopt : it->second.parent;
      }
    }
  }

  bool DiffsMatch(const nlohmann::json& config, const ImageInfo& image, const std::string& what) {
    auto diff_ids = DiffIdsOf(config, what);
    return diff_ids && *diff_ids == ChainDiffs(image.top_layer);
  }

  void CheckTags() {
    auto text = ReadFile(root_ / "tags.json");
    if (!text) return;
    auto j = nlohmann::json::parse(*text, nullptr, false);
    if (!j.is_object() || !j.contains("tags") || !j["tags"].is_object()) {
      Problem((root_ / "tags.json").string(), "not a tags file",
              "--repair writes it again, without tags");
      bad_tags_file_ = true;
      return;
    }
    for (const auto& [ref, id] : j["tags"].items()) {
      ++report_.tags;
      std::string target = id.is_string() ? id.get<std::string>() : "";
      if (sound_images_.count(target) || broken_images_.count(target)) continue;
      Problem("tag " + ref, "points at image " + Short(target) + ", which is not in the store",
              "--repair removes the tag");
      dangling_tags_.push_back(ref);
    }
  }

  void CheckOrphansAndLeftovers() {
    if (!store_.Alone()) {
      // Their loads, pulls and uploads in progress look like what a crash leaves.
      report_.notes.push_back(
          "another process uses the store: unused layers and tmp/ are not judged");
    } else {
      CheckOrphans();
    }
    // Files in locks/ and retain/ are not leftovers: a flock dies with its process, and
    // the files stay by design (the next open alone clears them).
    for (const std::string& id : Entries(root_ / "cache" / "lazy")) {
      if (sound_images_.count(id) || broken_images_.count(id)) continue;
      Leftover((root_ / "cache" / "lazy" / id).string(), "lazy-pull marker of an image gone");
    }
    CheckChunkCaches();
  }

  // Chunk caches (<DiffID>-<blob>) of layers read by Range: not judged here. Their chunks
  // are checked against their digests when first read after each open, and those of layers
  // the store now holds whole are prune's to drop. The report says how many there are.
  void CheckChunkCaches() {
    std::set<std::string> stored;
    for (const auto& [hex, layer] : records_) stored.insert(layer.diff_id.hex());
    size_t serving = 0, done = 0;
    for (const std::string& name : Entries(root_ / "cache" / "chunks")) {
      ++(stored.count(name.substr(0, name.find('-'))) ? done : serving);
    }
    if (serving > 0) {
      report_.notes.push_back(std::to_string(serving) +
                              " chunk cache(s) of layers read by Range: each chunk is verified "
                              "when first read after an open, not here");
    }
    if (done > 0) {
      report_.notes.push_back(std::to_string(done) +
                              " chunk cache(s) of layers the store now holds whole: "
                              "`imagefs prune` drops them");
    }
  }

  void CheckOrphans() {
    for (const auto& [hex, layer] : records_) {
      if (broken_layers_.count(hex) || used_layers_.count(hex) || parents_.count(hex)) continue;
      Leftover("layer " + hex, "no image uses it (a registration was interrupted)");
      has_orphans_ = true;
    }
    std::set<std::string> diffs_used;
    for (const auto& [hex, layer] : records_) diffs_used.insert(layer.diff_id.hex());
    for (const auto& [hex, size] : diff_sizes_) {
      if (diffs_used.count(hex) || broken_diffs_.count(hex)) continue;
      Leftover("diff sha256:" + hex, "no layer uses it (a registration was interrupted)");
      has_orphans_ = true;
    }
    for (const std::string& name : Entries(root_ / "tmp")) {
      Leftover((root_ / "tmp" / name).string(), "temporary file of interrupted work");
      report_leftovers_.push_back(root_ / "tmp" / name);
    }
  }

  Store& store_;
  fs::path root_;
  CheckReport report_;
  std::map<std::string, uint64_t> diff_sizes_;  // diffs whose bytes hash to their name
  std::map<std::string, LayerInfo> records_;    // layer records that read
  std::set<std::string> broken_diffs_, broken_layers_, broken_images_;
  std::set<std::string> parents_, used_layers_, sound_images_;
  std::vector<std::string> dangling_tags_;
  std::vector<fs::path> report_leftovers_;
  bool has_orphans_ = false;
  bool bad_tags_file_ = false;
};

}  // namespace

Result<CheckReport> CheckStore(Store& store, const CheckOptions& options) {
  // Beside a running mount or command, a registration or removal seen half done would look
  // like damage (a layer whose diff is still being committed, or already removed): writers
  // wait while the store is read. Repairs take the lock themselves, one change at a time.
  auto scan = [&store](Checker& checker) -> Result<CheckReport> {
    ASSIGN_OR_RETURN(auto paused, store.PauseWriters());
    return checker.Run();
  };
  Checker checker(store);
  ASSIGN_OR_RETURN(CheckReport found, scan(checker));
  if (!options.repair || found.clean()) return found;
  checker.Repair(found);
  // What is left after the repair, checked again from scratch.
  Checker again(store);
  ASSIGN_OR_RETURN(CheckReport after, scan(again));
  after.removed = std::move(found.removed);
  return after;
}

}  // namespace imagefs
