// The mount's root: images/, layers/, tags/, import/ and registry/, and the hidden
// .imagefs/ (status files; looked up by name, never listed).
#include "fusefs/nodes/common_kinds.h"
#include "fusefs/nodes/kinds.h"

namespace imagefs::kinds {
namespace {

class RootKind : public FixedDirKind {
 public:
  Result<NodeEntry> Lookup(MountNodes& m, const VNode&, const std::string& name,
                           RemoteAccess access) const override {
    if (name == ".imagefs") return m.Describe(m.inodes().Synthetic(VKind::kMetaDir, ""), access);
    auto kind = ChildKind(m, name);
    if (!kind) return Fail(Errno(ENOENT, name));
    return m.Describe(m.inodes().Synthetic(*kind, ""), access);
  }

  Result<std::vector<DirEntry>> List(MountNodes& m, const VNode&, RemoteAccess) const override {
    std::vector<DirEntry> out;
    for (const char* name : {"images", "layers", "tags", "import", "registry"})
      out.push_back({name, m.inodes().Synthetic(*ChildKind(m, name), "")});
    return out;
  }

 private:
  static std::optional<VKind> ChildKind(MountNodes& m, const std::string& name) {
    if (name == "images") return VKind::kImagesDir;
    if (name == "layers") return VKind::kLayersDir;
    if (name == "tags") return VKind::kTagsDir;
    if (name == "registry") return VKind::kRegistryDir;
    if (name == "import")
      return m.options().import_link.empty() ? VKind::kImportDir : VKind::kImportLink;
    return std::nullopt;
  }
};

}  // namespace

const NodeKind& Root() { return The<RootKind>(); }

}  // namespace imagefs::kinds
