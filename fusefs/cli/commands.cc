#include "fusefs/cli/commands.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "fusefs/cli/format.h"
#include "fusefs/cli/output_file.h"
#include "fusefs/cli/progress.h"
#include "graph/base/fs_util.h"
#include "graph/check.h"
#include "graph/loader.h"
#include "graph/tree.h"
#include "graph/tree_export.h"
#include "graph/tree_file.h"

namespace imagefs {

namespace fs = std::filesystem;

using nlohmann::json;

int ReportError(const Error& error) {
  std::cerr << "imagefs: " << error.msg << "\n";
  return 1;
}

namespace {

std::string ShortId(const std::string& hex, bool no_trunc) {
  return no_trunc ? "sha256:" + hex : hex.substr(0, 12);
}

int64_t CreatedUnix(const ImageInfo& image) {
  return ParseRfc3339(image.created).value_or(image.registered);
}

}  // namespace

int CmdImages(Store& store, const ImagesOptions& options) {
  auto images = options.all ? store.Images() : store.Heads();
  std::sort(images.begin(), images.end(),
            [](const ImageInfo& a, const ImageInfo& b) { return CreatedUnix(a) > CreatedUnix(b); });
  Table table({"REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"});
  int64_t now = time(nullptr);
  std::map<std::string, std::vector<Reference>> tags_by_image;  // one pass, not one per image
  for (const auto& [name, id] : store.Tags()) {
    if (auto ref = ParseReference(name)) tags_by_image[id].push_back(*ref);
  }
  for (const ImageInfo& image : images) {
    std::vector<std::pair<std::string, std::string>> rows;
    for (const Reference& ref : tags_by_image[image.id])
      rows.emplace_back(ref.FamiliarName(), ref.tag);
    if (rows.empty()) rows.emplace_back("<none>", "<none>");
    for (const auto& [repo, tag] : rows) {
      int64_t created = CreatedUnix(image);
      if (options.json) {
        json j = {{"Repository", repo},
                  {"Tag", tag},
                  {"ID", "sha256:" + image.id},
                  {"CreatedAt", image.created},
                  {"CreatedSince", HumanAge(now - created)},
                  {"Size", HumanSize(image.size)},
                  {"SizeBytes", image.size}};
        std::cout << j.dump() << "\n";
      } else {
        table.Add({repo, tag, ShortId(image.id, options.no_trunc), HumanAge(now - created),
                   HumanSize(image.size)});
      }
    }
  }
  if (!options.json) table.Print(std::cout);
  return 0;
}

int CmdLayers(Store& store, bool no_trunc) {
  Table table({"CHAIN ID", "PARENT", "DIFF ID", "SIZE", "IMAGES"});
  for (const LayerInfo& layer : store.Layers()) {
    table.Add({ShortId(layer.chain_id.hex(), no_trunc),
               layer.parent ? ShortId(layer.parent->hex(), no_trunc) : "-",
               ShortId(layer.diff_id.hex(), no_trunc), HumanSize(layer.content_size),
               std::to_string(store.ImagesUsingLayer(layer.chain_id))});
  }
  table.Print(std::cout);
  return 0;
}

namespace {

Result<json> InspectImage(Store& store, const std::string& id) {
  ASSIGN_OR_RETURN(ImageInfo image, store.GetImage(id));
  ASSIGN_OR_RETURN(std::string config_text, store.ReadConfig(id));
  json config = json::parse(config_text, nullptr, false);
  json tags = json::array(), layers = json::array(), chain_ids = json::array();
  for (const Reference& ref : store.TagsOf(id)) tags.push_back(ref.FamiliarString());
  if (image.top_layer) {
    ASSIGN_OR_RETURN(auto chain, store.LayerChain(*image.top_layer));
    for (const LayerInfo& l : chain) {
      layers.push_back(l.diff_id.str());
      chain_ids.push_back(l.chain_id.str());
    }
  }
  auto field = [&](const char* key) {
    return config.is_object() && config.contains(key) ? config[key] : json(nullptr);
  };
  return json{{"Id", "sha256:" + id},
              {"RepoTags", tags},
              {"Parent", image.parent ? "sha256:" + *image.parent : ""},
              {"Created", image.created},
              {"Architecture", field("architecture")},
              {"Os", field("os")},
              {"Config", field("config")},
              {"Size", image.size},
              {"RootFS", {{"Type", "layers"}, {"Layers", layers}}},
              {"ChainIDs", chain_ids}};
}

Result<json> InspectLayer(Store& store, const Digest& chain_id) {
  ASSIGN_OR_RETURN(LayerInfo layer, store.GetLayer(chain_id));
  return json{{"ChainID", layer.chain_id.str()},
              {"DiffID", layer.diff_id.str()},
              {"Parent", layer.parent ? layer.parent->str() : ""},
              {"TarSize", layer.tar_size},
              {"Size", layer.content_size},
              {"Entries", layer.entries},
              {"Images", store.ImagesUsingLayer(chain_id)}};
}

}  // namespace

int CmdInspect(Store& store, const std::vector<std::string>& names) {
  json out = json::array();
  int rc = 0;
  for (const std::string& name : names) {
    auto id = store.ResolveImage(name);
    Result<json> item = id ? InspectImage(store, *id) : Result<json>(Fail(id.error()));
    if (!item && item.error().code == Code::kNotFound) {
      if (auto layer = store.ResolveLayerId(name)) item = InspectLayer(store, *layer);
    }
    if (!item) {
      rc = ReportError(item.error());
      continue;
    }
    out.push_back(std::move(*item));
  }
  std::cout << out.dump(4) << "\n";
  return rc;
}

int CmdTag(Store& store, const std::string& source, const std::string& target) {
  auto id = store.ResolveImage(source);
  if (!id) return ReportError(id.error());
  auto ref = ParseReference(target);
  if (!ref) return ReportError(ref.error());
  if (ref->digest)
    return ReportError(
        Error::Make(Code::kInvalid, "refusing to create a tag with a digest reference"));
  if (auto st = store.Tag(WithDefaultTag(*ref), *id); !st) return ReportError(st.error());
  return 0;
}

int CmdUntag(Store& store, const std::vector<std::string>& names) {
  int rc = 0;
  for (const std::string& name : names) {
    auto ref = ParseReference(name);
    Status st = ref ? store.Untag(*ref) : Status(Fail(ref.error()));
    if (!st) {
      rc = ReportError(st.error());
      continue;
    }
    std::cout << "Untagged: " << WithDefaultTag(*ref).FamiliarString() << "\n";
  }
  return rc;
}

namespace {

// Docker's rmi: a name whose image has other tags is only untagged; the last tag, or an
// ID, deletes the image and then the layers nothing else uses.
Status RemoveOne(Store& store, const std::string& name, bool force) {
  auto ref = ParseReference(name);
  std::optional<Reference> tag;
  if (ref && !ref->digest) {
    Reference full = WithDefaultTag(*ref);
    if (store.Tags().count(full.String())) tag = full;
  }
  auto id = store.ResolveImage(name);
  if (!id) {
    if (id.error().code != Code::kNotFound) return Fail(id.error());
    auto layer = store.ResolveLayerId(name);
    if (!layer) return Fail(id.error());
    RETURN_IF_ERROR(store.DeleteLayer(*layer));
    std::cout << "Deleted: " << layer->str() << "\n";
    return {};
  }
  if (tag && store.TagsOf(*id).size() > 1) {
    RETURN_IF_ERROR(store.Untag(*tag));
    std::cout << "Untagged: " << tag->FamiliarString() << "\n";
    return {};
  }
  auto tags = store.TagsOf(*id);
  auto layers_before = store.Layers();
  RETURN_IF_ERROR(store.DeleteImage(*id, force || tag.has_value()));
  for (const Reference& r : tags) std::cout << "Untagged: " << r.FamiliarString() << "\n";
  std::cout << "Deleted: sha256:" << *id << "\n";
  for (const LayerInfo& l : layers_before) {
    if (!store.GetLayer(l.chain_id)) std::cout << "Deleted: " << l.chain_id.str() << "\n";
  }
  return {};
}

}  // namespace

int CmdRm(Store& store, const std::vector<std::string>& names, bool force) {
  int rc = 0;
  for (const std::string& name : names) {
    if (auto st = RemoveOne(store, name, force); !st) rc = ReportError(st.error());
  }
  return rc;
}

}  // namespace imagefs

namespace imagefs {
namespace {

// Standard input is spooled into the store's scratch space: a tarball needs random access.
Result<fs::path> SpoolStdin(Store& store, TempDir& dir) {
  fs::path path = dir.path() / "stdin.tar";
  ASSIGN_OR_RETURN(UniqueFd out, OpenFile(path, O_WRONLY | O_CREAT | O_EXCL, 0600));
  std::vector<char> buf(1 << 20);
  while (true) {
    ssize_t n = ::read(STDIN_FILENO, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return FailErrno("read standard input");
    if (n == 0) break;
    RETURN_IF_ERROR(WriteAll(out.get(), buf.data(), static_cast<size_t>(n)));
  }
  (void)store;
  return path;
}

}  // namespace

int CmdLoad(Store& store, const LoadCmdOptions& options) {
  LoadOptions load_options;
  load_options.all_platforms = options.all_platforms;
  if (!options.platform.empty()) {
    auto p = ParsePlatform(options.platform);
    if (!p) return ReportError(p.error());
    load_options.platform = *p;
  }
  TerminalLoadProgress terminal(stderr);
  LoadProgress* progress = !options.quiet && isatty(STDERR_FILENO) ? &terminal : nullptr;
  int rc = 0;
  for (const std::string& file : options.files) {
    std::optional<TempDir> spool;
    fs::path path = file;
    if (file == "-") {
      auto dir = TempDir::Create(store.root() / "tmp", "stdin-");
      if (!dir) return ReportError(dir.error());
      spool.emplace(std::move(*dir));
      auto spooled = SpoolStdin(store, *spool);
      if (!spooled) return ReportError(spooled.error());
      path = *spooled;
    }
    auto report = LoadArchive(store, path, load_options, progress);
    if (!report) {
      rc = ReportError(report.error());
      continue;
    }
    for (const LoadedImage& image : report->images) {
      if (image.tags.empty()) std::cout << "Loaded image ID: sha256:" << image.id << "\n";
      for (const Reference& tag : image.tags)
        std::cout << "Loaded image: " << tag.FamiliarString() << "\n";
    }
    for (const Error& failure : report->failures) rc = ReportError(failure);
  }
  return rc;
}

}  // namespace imagefs

namespace imagefs {

int CmdExportRootfs(Store& store, const std::string& name, const std::string& output) {
  auto id = store.ResolveImage(name);
  if (!id) return ReportError(id.error());
  auto image = store.GetImage(*id);
  if (!image) return ReportError(image.error());
  // The saved tree when there is one (load and pull save it), else built.
  auto tree = image->top_layer ? TreeFile::Load(store, TreeKind::kMerged, *image->top_layer)
                               : Tree::BuildMerged(store, std::nullopt);
  if (!tree) return ReportError(tree.error().WithContext("image " + id->substr(0, 12)));
  if ((output.empty() || output == "-") && isatty(STDOUT_FILENO)) {
    return ReportError(Error::Make(Code::kInvalid,
                                   "refusing to write a tar to a terminal: use -o FILE or a pipe"));
  }
  auto out = OutputFile::Open(output);
  if (!out) return ReportError(out.error().WithContext("export"));
  Status st = ExportTree(**tree, out->fd());
  if (st) st = out->Commit();
  if (!st) return ReportError(st.error().WithContext("export to " + out->name()));
  return 0;
}

int CmdCheck(Store& store, bool repair, bool as_json) {
  auto report = CheckStore(store, {.repair = repair});
  if (!report) return ReportError(report.error());
  if (as_json) {
    json problems = json::array();
    for (const CheckProblem& p : report->problems)
      problems.push_back(
          {{"object", p.object}, {"problem", p.problem}, {"fix", p.fix}, {"leftover", p.leftover}});
    json out = {{"checked",
                 {{"images", report->images},
                  {"layers", report->layers},
                  {"diffs", report->diffs},
                  {"tags", report->tags},
                  {"bytes_hashed", report->bytes_hashed}}},
                {"problems", problems},
                {"removed", report->removed},
                {"notes", report->notes},
                {"clean", report->clean()}};
    std::cout << out.dump(2) << "\n";
    return report->clean() ? 0 : 1;
  }
  std::cout << "checked " << report->images << " images, " << report->layers << " layers, "
            << report->diffs << " diffs (" << HumanSize(report->bytes_hashed) << " hashed), "
            << report->tags << " tags\n";
  for (const std::string& line : report->removed) std::cout << "removed: " << line << "\n";
  for (const CheckProblem& p : report->problems)
    std::cout << (p.leftover ? "leftover: " : "problem: ") << p.object << ": " << p.problem
              << "\n  fix: " << p.fix << "\n";
  for (const std::string& note : report->notes) std::cout << "note: " << note << "\n";
  if (report->clean()) {
    std::cout << "the store is sound\n";
    return 0;
  }
  std::cout << report->problems.size() << " problem(s)" << (repair ? " left" : "") << "\n";
  return 1;
}

}  // namespace imagefs
