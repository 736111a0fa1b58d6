// `imagefs diff A B`: the paths added (A), removed (D) and changed (C) from image A's
// rootfs to image B's, from their merged trees (graph/tree_diff.h).
#include <iostream>
#include <nlohmann/json.hpp>

#include "fusefs/cli/commands.h"
#include "graph/tree_diff.h"
#include "graph/tree_file.h"

namespace imagefs {
namespace {

Result<std::shared_ptr<const Tree>> RootfsOf(Store& store, const std::string& name) {
  ASSIGN_OR_RETURN(std::string id, store.ResolveImage(name));
  ASSIGN_OR_RETURN(ImageInfo image, store.GetImage(id));
  auto tree = image.top_layer ? TreeFile::Load(store, TreeKind::kMerged, *image.top_layer)
                              : Tree::BuildMerged(store, std::nullopt);
  if (!tree) return Fail(tree.error().WithContext("image " + id.substr(0, 12)));
  return tree;
}

}  // namespace

int CmdDiff(Store& store, const std::string& from, const std::string& to, bool as_json) {
  auto a = RootfsOf(store, from);
  if (!a) return ReportError(a.error());
  auto b = RootfsOf(store, to);
  if (!b) return ReportError(b.error());
  auto changes = DiffTrees(**a, **b);
  if (!changes) return ReportError(changes.error());
  for (const TreeChange& c : *changes) {
    const char* kind = c.kind == TreeChange::Kind::kAdded     ? "A"
                       : c.kind == TreeChange::Kind::kRemoved ? "D"
                                                              : "C";
    if (as_json) {
      nlohmann::json j = {{"Kind", kind}, {"Path", c.path}, {"Changes", c.what}};
      std::cout << j.dump() << "\n";
      continue;
    }
    std::cout << kind << " " << c.path;
    for (size_t i = 0; i < c.what.size(); ++i) std::cout << (i ? ", " : " (") << c.what[i];
    std::cout << (c.what.empty() ? "" : ")") << "\n";
  }
  return 0;
}

}  // namespace imagefs
